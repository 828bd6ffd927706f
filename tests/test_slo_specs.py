"""SLO definitions: the shipped OpenSLO and Sloth files import; a broken spec names its file and
key (and stops a run with exit 4); one objective written inline, in Sloth and in OpenSLO
measures the same in a real Prometheus."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from opsverify import profile as profiles
from opsverify import slo
from tests.helpers import ROOT, opsverify
from tests.test_profile import _expected  # the same '# expect: …' first line
from tests.test_slo_checks import backfilled_prometheus

DATA = ROOT / "tests" / "data" / "slo"
BROKEN = sorted((DATA / "broken").glob("*.yaml"))


def test_shipped_specs_hold_the_handbook_objectives() -> None:
    (availability,) = slo.import_spec(ROOT / "slo" / "cronos-ai.sloth.yaml")
    assert (availability.name, availability.objective) == ("requests-availability", 99.9)
    assert availability.window == timedelta(days=30)  # Sloth's default period
    assert slo.render(availability.bad, timedelta(hours=1)) == (
        'sum(rate(cronos_ai_http_requests_total{job="cronos-ai",status=~"5.."}[1h]))'
    )
    (latency,) = slo.import_spec(ROOT / "slo" / "cronos-ai.openslo.yaml")
    assert (latency.name, latency.objective, latency.window) == (
        "requests-latency",
        95,
        timedelta(days=30),
    )
    # Counters without a range, read as increases over the window.
    assert slo.render(latency.good, timedelta(minutes=5)) == (
        'sum(increase(cronos_ai_http_request_duration_seconds_bucket{job="cronos-ai",le="0.5"}[5m]))'
    )


@pytest.mark.parametrize("name", ["local", "staging.example", "production.example"])
def test_every_shipped_profile_imports_the_specs(name: str) -> None:
    loaded = profiles.load(ROOT / "environments" / f"{name}.yaml")
    assert loaded.slo is not None
    assert [s.file for s in loaded.slo.specs] == [
        ROOT / "slo" / "cronos-ai.sloth.yaml",
        ROOT / "slo" / "cronos-ai.openslo.yaml",
    ]
    assert [o.name for o in loaded.slo.definitions()] == [
        "requests-availability",
        "requests-latency",
    ]


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_a_broken_spec_names_its_file_and_key(path: Path) -> None:
    with pytest.raises(slo.SpecError) as raised:
        slo.import_spec(path)
    assert f"{path}: {_expected(path)}" in str(raised.value)


def test_a_broken_spec_stops_the_run_with_exit_4(tmp_path: Path) -> None:
    spec = DATA / "broken" / "openslo_threshold_metric.yaml"
    profile = tmp_path / "p.yaml"
    slo_section = {"availability": 99.9, "latency_p95": "500ms", "error_rate": 1}
    slo_section |= {"throughput_rps": 1000, "specs": [str(spec)]}
    profile.write_text(yaml.safe_dump({"name": "p", "tier": "staging", "slo": slo_section}))
    outcome = opsverify("run", "--env", str(profile), "--run-dir", str(tmp_path / "run"))
    assert outcome.code == 4, outcome.output
    assert f"{profile}: slo.specs[0]: {spec}: {_expected(spec)}" in outcome.stderr
    assert "Traceback" not in outcome.output
    assert not (tmp_path / "run").exists()


def test_window_placeholders_of_every_dialect_read_alike() -> None:
    window = timedelta(minutes=90)
    forms = ["{{window}}", "{{ .window }}", "{{.window}}", "$window", "${window}"]
    assert {slo.render(f"rate(x[{form}])", window) for form in forms} == {"rate(x[90m])"}
    assert [slo.promql_duration(timedelta(seconds=s)) for s in (2592000, 450, 1.5)] == [
        "30d",
        "450s",
        "1500ms",
    ]


def test_a_latency_objective_counts_the_bucket_of_its_threshold() -> None:
    def good(threshold: str) -> str:
        latency = {"histogram": "d", "selector": 'job="a"', "threshold": threshold}
        objective = profiles.SloObjective(name="fast", objective=99, latency=latency)
        query = slo.indicator(objective).good
        assert query is not None
        return query

    assert good("500ms") == 'sum(increase(d_bucket{job="a",le="0.5"}[{{window}}]))'
    # Python's client writes le="1.0", Go's le="1".
    assert good("1s") == r'sum(increase(d_bucket{job="a",le=~"1|1\\.0"}[{{window}}]))'


def test_imported_objectives_without_a_window_take_the_slo_window() -> None:
    section = profiles.Slo(
        window="7d",
        availability=99.9,
        latency_p95="500ms",
        error_rate=1,
        throughput_rps=1,
        specs=[str(DATA / "good" / "availability.openslo.yaml")],
    )
    windows = {o.name: o.window for o in section.definitions()}
    assert windows == {
        "openslo-bad": timedelta(days=3),
        "openslo-good-99.9": timedelta(days=7),
        "openslo-good-99": timedelta(days=7),
        "openslo-raw": timedelta(days=7),  # its spec gives none
    }


@pytest.fixture(scope="module")
def burning(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with backfilled_prometheus(tmp_path_factory.mktemp("burning"), {"burning": 6}) as url:
        yield url


def at_one_instant(url: str) -> slo.Query:
    """Queries evaluated at one fixed time, so different queries see the same samples."""
    now = httpx.get(f"{url}/api/v1/query", params={"query": "time()"}, timeout=10)
    instant = now.json()["data"]["result"][0]  # a scalar: [time, "value"]

    def query(promql: str) -> list:
        response = httpx.get(
            f"{url}/api/v1/query", params={"query": promql, "time": instant}, timeout=10
        )
        response.raise_for_status()
        return response.json()["data"]["result"]

    return query


def test_one_objective_inline_in_sloth_and_in_openslo_measures_the_same(burning: str) -> None:
    requests = 'cronos_ai_http_requests_total{job="burning"'
    inline = profiles.SloObjective(
        name="inline",
        objective=99.9,
        bad=f'sum(increase({requests},status=~"5.."}}[{{{{window}}}}]))',
        total=f"sum(increase({requests}}}[{{{{window}}}}]))",
    )
    imported = [
        *slo.import_spec(DATA / "good" / "availability.sloth.yaml"),
        *slo.import_spec(DATA / "good" / "availability.openslo.yaml"),
    ]
    assert len(imported) == 6
    reader = slo.Reader(at_one_instant(burning))
    for window in (timedelta(minutes=5), timedelta(hours=6), timedelta(days=3)):
        expected = slo.error_ratio(reader, slo.indicator(inline), window).error_ratio
        assert 0 < expected < 0.03
        for objective in imported:
            measured = slo.error_ratio(reader, slo.indicator(objective), window).error_ratio
            assert measured == pytest.approx(expected, rel=1e-9), (objective.name, window)
    # The last hour of these series fails 6 of every 300 requests.
    one_hour = slo.error_ratio(reader, slo.indicator(inline), timedelta(hours=1))
    assert one_hour.error_ratio == pytest.approx(0.02, rel=1e-9)


# --- objectives of several services ------------------------------------------------------------

SERVICES = DATA / "services"


def slo_profile(folder: Path, specs: list[Path], **section: object) -> Path:
    slo_section = {"availability": 99.9, "latency_p95": "500ms", "error_rate": 1}
    slo_section |= {"throughput_rps": 1000, "specs": [str(s) for s in specs], **section}
    path = folder / "p.yaml"
    path.write_text(yaml.safe_dump({"name": "p", "tier": "staging", "slo": slo_section}))
    return path


def test_sloth_specs_of_two_services_keep_an_objective_each_named_by_its_service(
    tmp_path: Path,
) -> None:
    specs = [SERVICES / "myservice.sloth.yaml", SERVICES / "otherservice.sloth.yaml"]
    loaded = profiles.load(slo_profile(tmp_path, specs))
    assert loaded.slo is not None
    objectives = {o.key: o.objective for o in loaded.slo.definitions()}
    assert objectives == {
        "myservice/requests-availability": 99.9,
        "otherservice/requests-availability": 99.5,
    }
    found, _ = profiles.subjects(loaded, "slo_objective")
    assert [key for key, _ in found] == list(objectives)  # the check's parameter


def test_one_service_and_name_twice_is_refused_naming_both_files_and_keys(tmp_path: Path) -> None:
    plain, resource = SERVICES / "myservice.sloth.yaml", SERVICES / "myservice.k8s.yaml"
    profile = slo_profile(tmp_path, [plain, resource])
    with pytest.raises(profiles.ProfileError) as raised:
        profiles.load(profile)
    assert str(raised.value) == (
        f"{profile}: slo: objective myservice/requests-availability is defined twice:"
        f" {plain}: slos[0] and {resource}: spec.slos[0]"
    )


def test_sloths_multi_document_form_holds_several_services() -> None:
    found = slo.import_spec(SERVICES / "multifile.sloth.yaml")
    assert [(o.key, o.objective) for o in found] == [
        ("myservice/requests-availability", 99.9),
        ("myservice2/requests-availability", 99.99),
    ]


def test_a_sloth_kubernetes_resource_reads_like_the_plain_spec() -> None:
    (plain,) = slo.import_spec(SERVICES / "myservice.sloth.yaml")
    availability, error_ratio = slo.import_spec(SERVICES / "myservice.k8s.yaml")
    assert availability.model_dump() == plain.model_dump()
    assert (error_ratio.key, error_ratio.objective) == ("myservice/requests-error-ratio", 99)
    assert slo.render(error_ratio.error_ratio, timedelta(hours=1)).startswith(
        'sum(rate(http_request_duration_seconds_count{job="myservice",code=~"5.."}[1h]))'
    )


def test_openslo_objectives_are_named_by_their_service() -> None:
    found = slo.import_spec(DATA / "good" / "availability.openslo.yaml")
    assert {o.key for o in found} == {
        "burning/openslo-bad",
        "burning/openslo-good-99.9",
        "burning/openslo-good-99",
        "burning/openslo-raw",
    }


def test_no_samples_says_what_was_counted_over_which_window(burning: str) -> None:
    reader = slo.Reader(at_one_instant(burning))
    requests = 'cronos_ai_http_requests_total{job="nowhere"'
    metrics = profiles.SliMetrics(
        requests="cronos_ai_http_requests_total",
        duration="cronos_ai_http_request_duration_seconds",
        selector='job="nowhere"',
        code_label="status",
    )
    with pytest.raises(slo.NoSamples) as raised:
        slo.error_ratio(reader, slo.requests(metrics), timedelta(days=30))
    assert str(raised.value) == (
        f"no requests counted by sum(increase({requests}}}[30d])) over the last 30d:"
        " the series does not exist or had no samples"
    )
    # Series that exist and counted nothing: the 5xx counter before the last hour.
    quiet = 'cronos_ai_http_requests_total{job="burning",status="500"}[$window] offset 2h'
    quiet = f"sum(increase({quiet}))"
    objective = profiles.SloObjective(name="quiet", objective=99, bad=quiet, total=quiet)
    with pytest.raises(slo.NoSamples) as raised:
        slo.error_ratio(reader, slo.indicator(objective), timedelta(minutes=30))
    assert str(raised.value) == (
        f"no events counted by {slo.render(quiet, timedelta(minutes=30))} over the last 30m:"
        " its series counted none"
    )
    with pytest.raises(slo.NoSamples) as raised:
        slo.quantile(reader, metrics, 0.95, timedelta(minutes=15))
    assert str(raised.value).startswith("no request durations recorded by histogram_quantile(")
    assert str(raised.value).endswith(
        " over the last 15m: the series does not exist or had no samples"
    )
