"""SLO checks (SLO-001..007) against real Prometheus servers.

A sandbox of this module's own (ports 30xxx) feeds its Prometheus with real traffic; the
faults are real too: PostgreSQL stopped (5xx answers), latency injected through the service's
fault endpoint. Burn rates need days of history: a second Prometheus, started here, reads TSDB
blocks that `promtool tsdb create-blocks-from openmetrics` built from series this module
writes, ending now, so every number in the evidence is known in advance.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest
import yaml

from opsverify import profile as profiles
from opsverify import sandbox, slo
from opsverify.drivers import prometheus as prom
from opsverify.history import DeclaredWindow, Span
from tests.helpers import opsverify, readiness, running_sandbox, write_profile

ALL = " or ".join(f"SLO-00{i}" for i in range(1, 8))
SCRAPED = 12  # seconds: two scrape intervals of the sandbox's Prometheus (5 s) and a margin


@pytest.fixture(scope="module")
def settings() -> Iterator[sandbox.Settings]:
    with running_sandbox(30000, "slo") as state:
        yield state


def results(profile: Path, run_dir: Path, select: str = ALL) -> dict[str, dict]:
    """Run the shipped SLO checks; each result by id and subject (the SLO's name, or the
    service's for SLO-001..005)."""
    outcome = opsverify("run", "--env", str(profile), "--run-dir", str(run_dir), "-k", select)
    assert outcome.code in (0, 1), outcome.output
    return {
        f"{c['id']}[{c['parameter'].removeprefix('prometheus-')}]": c
        for c in readiness(run_dir)["checks"]
    }


def statuses(found: dict[str, dict]) -> dict[str, str]:
    return {key: check["status"] for key, check in found.items()}


def evidence(run_dir: Path, check: dict, name: str) -> object:
    (path,) = [p for p in check["evidence"] if name in p]
    return json.loads((run_dir / path).read_text())


@contextlib.contextmanager
def api(settings: sandbox.Settings) -> Iterator[httpx.Client]:
    """The sandbox service itself on loopback, with its bearer token (read from the
    sandbox's secrets file, never printed)."""
    token = settings.layout().api_token.read_text().strip()
    with httpx.Client(
        base_url=f"http://127.0.0.1:{settings.ports.service}/api/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ) as client:
        yield client


def traffic(client: httpx.Client, count: int, workers: int = 1) -> list[int]:
    """``count`` item listings, ``workers`` at a time: their status codes. Before the burst,
    one request and a scrape: Prometheus counts a counter's growth from its first sample, so
    a status code's series must exist before the requests that count."""
    client.get("/items")
    time.sleep(6)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda _: client.get("/items").status_code, range(count)))


SERVICE = "cronos-ai"
HEALTHY = {
    **{f"SLO-00{i}[{SERVICE}]": "passed" for i in range(1, 6)},
    **{
        f"SLO-00{i}[{SERVICE}/requests-{o}]": "passed"
        for i in (6, 7)
        for o in ("availability", "latency")
    },
}


def test_a_healthy_sandbox_meets_every_slo_with_its_queries_as_evidence(
    settings: sandbox.Settings, tmp_path: Path
) -> None:
    with api(settings) as client:
        answers = traffic(client, 50)
    assert set(answers) == {200}
    time.sleep(SCRAPED)
    found = results(write_profile(settings, tmp_path), tmp_path / "run")
    assert statuses(found) == HEALTHY
    availability = found[f"SLO-001[{SERVICE}]"]
    assert availability["figures"] == {"availability_percent": 100.0, "uptime_percent": 100.0}
    (ratio, up) = evidence(tmp_path / "run", availability, "queries")
    assert 'cronos_ai_http_requests_total{job="cronos-ai",status=~"5.."}[12h]' in ratio["promql"]
    assert "total" in {r["metric"]["opsverify_part"] for r in ratio["result"]}
    # Scrapes of the targets counted over the whole window (no drill declared one), at one
    # instant: successful ones and all.
    for function in ("sum_over_time", "count_over_time"):
        assert f'(sum({function}(up{{job="cronos-ai"}}[12h] @ ' in up["promql"]
    assert found[f"SLO-002[{SERVICE}]"]["figures"]["p95_ms"] < 100
    assert found[f"SLO-005[{SERVICE}]"]["figures"]["peak_rps"] > 0.1
    budget = evidence(
        tmp_path / "run", found[f"SLO-006[{SERVICE}/requests-availability]"], "budget"
    )
    assert budget["budget_remaining_percent"] == 100 and budget["sli_percent"] == 100
    table = evidence(tmp_path / "run", found[f"SLO-007[{SERVICE}/requests-latency]"], "burn_rates")
    assert [(p["long_window"], p["short_window"], p["factor"]) for p in table["pairs"]] == [
        ("1h", "5m", 14.4),
        ("6h", "30m", 6),
        ("1d", "2h", 3),
        ("3d", "6h", 1),
    ]


def test_stopped_database_fails_availability_error_rate_and_the_availability_budget(
    settings: sandbox.Settings, tmp_path: Path
) -> None:
    # Measured during the outage: bringing PostgreSQL back polls the service's health.
    sandbox.stop(settings, "postgres")
    try:
        with api(settings) as client:
            answers = traffic(client, 100)
        time.sleep(SCRAPED)
        # One minute: this burst, and not much of the healthy traffic before it.
        found = results(write_profile(settings, tmp_path, slo__window="1m"), tmp_path / "run")
    finally:
        sandbox.start(settings, "postgres")
    assert answers.count(503) == 100, answers
    assert statuses(found) == {
        **HEALTHY,
        f"SLO-001[{SERVICE}]": "failed",
        f"SLO-004[{SERVICE}]": "failed",
        f"SLO-006[{SERVICE}/requests-availability]": "failed",
        f"SLO-007[{SERVICE}/requests-availability]": "failed",
    }
    # 100 answers of 503 among them and some 200s: the healthy test's, Prometheus's scrapes.
    availability = found[f"SLO-001[{SERVICE}]"]
    served = availability["figures"]["availability_percent"]
    assert served < 75 and availability["figures"]["uptime_percent"] == 100
    assert f"availability {served:.3f}% (" in availability["message"]
    assert "5xx of" in availability["message"] and "above 99.9%" in availability["message"]
    assert found[f"SLO-004[{SERVICE}]"]["figures"]["error_rate_percent"] > 25
    assert "error budget exhausted" in found[f"SLO-006[{SERVICE}/requests-availability]"]["message"]
    assert "1h/5m at" in found[f"SLO-007[{SERVICE}/requests-availability]"]["message"]


def test_injected_latency_fails_p95_and_p99_with_the_measured_figure(
    settings: sandbox.Settings, tmp_path: Path
) -> None:
    with api(settings) as client:
        client.put("/faults", json={"latency_ms": 1200}).raise_for_status()
        try:
            answers = traffic(client, 48, workers=8)
        finally:
            client.delete("/faults").raise_for_status()
    assert set(answers) == {200}
    time.sleep(SCRAPED)
    profile = write_profile(settings, tmp_path, slo__window="1m")
    found = results(profile, tmp_path / "run", select="SLO-002 or SLO-003")
    assert statuses(found) == {f"SLO-002[{SERVICE}]": "failed", f"SLO-003[{SERVICE}]": "failed"}
    p95 = found[f"SLO-002[{SERVICE}]"]
    measured = p95["figures"]["p95_ms"]
    assert 1000 < measured <= 2500  # 1.2 s answers fall in the histogram's 1..2.5 s bucket
    assert f"P95 latency {measured:.0f} ms over 1m; the objective is below 500 ms" in p95["message"]
    (query,) = evidence(tmp_path / "run", p95, "queries")
    assert query["promql"].startswith("histogram_quantile(0.95, sum by (le) (rate(")
    assert found[f"SLO-003[{SERVICE}]"]["figures"]["p99_ms"] > measured


def test_an_sli_over_series_without_samples_fails_never_passes(
    settings: sandbox.Settings, tmp_path: Path
) -> None:
    nowhere = 'job="cronos-ai",route="/nowhere"'
    requests = f"cronos_ai_http_requests_total{{{nowhere}"  # its closing brace: below
    profile = write_profile(
        settings,
        tmp_path,
        slo__metrics__selector=nowhere,
        slo__specs=[],
        slo__objectives=[
            {
                "name": "nowhere",
                "objective": 99,
                "bad": f'sum(increase({requests},status=~"5.."}}[$window]))',
                "total": f"sum(increase({requests}}}[$window]))",
            }
        ],
    )
    found = results(profile, tmp_path / "run")
    assert statuses(found) == {
        **{f"SLO-00{i}[{SERVICE}]": "failed" for i in range(1, 6)},
        "SLO-006[nowhere]": "failed",
        "SLO-007[nowhere]": "failed",
    }
    for check in found.values():
        # What was asked, over which window, in words: never "… is None".
        assert check["message"].startswith("no "), check
        assert 'route="/nowhere"' in check["message"], check
        assert "over the last " in check["message"], check
        assert "the series does not exist or had no samples" in check["message"], check
        assert "None" not in check["message"], check
        assert evidence(tmp_path / "run", check, "queries")  # what was asked, and got nothing


# --- burn rates on known series --------------------------------------------------------------

STEP = 30  # seconds between samples
PER_STEP = 300  # requests per step: 10 req/s
HISTORY = 3 * 86400 + 3600  # the longest burn-rate window (3d) and an hour before it


def openmetrics(
    last_hour_errors: dict[str, int], end: int, down: dict[str, list[tuple[int, int]]]
) -> str:
    """3 days and an hour of request counters per job, one sample every 30 s up to ``end``:
    no error until the last hour, then ``last_hour_errors[job]`` 5xx answers per 300. And
    ``up`` of each job of ``down``, over the same time: 0 at the samples within its (from,
    to) ranges, in seconds before ``end``, 1 elsewhere."""
    lines = ["# TYPE up gauge"]
    for job, ranges in down.items():
        for t in range(end - HISTORY, end + 1, STEP):
            value = 0 if any(a <= end - t <= b for a, b in ranges) else 1
            lines.append(f'up{{job="{job}"}} {value} {t}')
    lines.append("# TYPE cronos_ai_http_requests counter")
    for job, errors in last_hour_errors.items():
        for status in ("200", "500"):
            count = 0
            for t in range(end - HISTORY, end + 1, STEP):
                bad = errors if t > end - 3600 else 0
                count += bad if status == "500" else PER_STEP - bad
                labels = f'job="{job}",status="{status}"'
                lines.append(f"cronos_ai_http_requests_total{{{labels}}} {count} {t}")
    return "\n".join([*lines, "# EOF", ""])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def backfilled_prometheus(
    folder: Path,
    last_hour_errors: dict[str, int],
    down: dict[str, list[tuple[int, int]]] | None = None,
    end: int | None = None,
) -> Iterator[str]:
    """A Prometheus of its own over TSDB blocks of ``openmetrics`` series ending at ``end``
    (default: now): its URL."""
    end = end or int(time.time()) // STEP * STEP
    source, data = folder / "series.om", folder / "tsdb"
    source.write_text(openmetrics(last_hour_errors, end, down or {}))
    argv = ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    config = folder / "prometheus.yml"
    config.write_text("global: {}\n")  # nothing to scrape: the blocks are all it knows
    url = f"http://127.0.0.1:{free_port()}"
    with (folder / "prometheus.log").open("wb") as log:
        server = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address={url.removeprefix('http://')}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while not _ready(url):
                assert server.poll() is None, (folder / "prometheus.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "Prometheus not ready within 30 s"
                time.sleep(0.2)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)


def _ready(url: str) -> bool:
    with contextlib.suppress(httpx.TransportError):
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    return False


@pytest.fixture(scope="module")
def known_series(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # 6 of 300 requests fail in the last hour of "burning" (2 %): 20x the budget of 99.9 %.
    with backfilled_prometheus(
        tmp_path_factory.mktemp("known"), {"burning": 6, "healthy": 0}
    ) as url:
        yield url


def objective(job: str) -> dict:
    requests = f'cronos_ai_http_requests_total{{job="{job}"'
    return {
        "name": job,
        "objective": 99.9,
        "window": "3d",
        "bad": f'sum(increase({requests},status=~"5.."}}[{{{{window}}}}]))',
        "total": f"sum(increase({requests}}}[{{{{window}}}}]))",
    }


def known_profile(folder: Path, url: str, **slo: object) -> Path:
    profile = {
        "name": "known",
        "tier": "sandbox",
        "monitoring": {"prometheus": {"url": url}},
        "slo": {
            "window": "30m",  # within the last hour, whose error ratio is 2 % throughout
            "availability": 99.9,
            "latency_p95": "500ms",
            "error_rate": 1,
            "throughput_rps": 9.9,
            "metrics": {
                "requests": "cronos_ai_http_requests_total",
                "duration": "cronos_ai_http_request_duration_seconds",  # no series: deselected
                "selector": 'job="burning"',
                "code_label": "status",
            },
            "objectives": [objective("burning"), objective("healthy")],
            **slo,
        },
    }
    path = folder / "known.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


def test_burn_rates_of_known_series_fail_the_fast_pair_only(known_series, tmp_path) -> None:
    run = tmp_path / "run"
    found = results(known_profile(tmp_path, known_series), run, select="SLO-006 or SLO-007")
    assert statuses(found) == {
        "SLO-006[burning]": "passed",
        "SLO-006[healthy]": "passed",
        "SLO-007[burning]": "failed",
        "SLO-007[healthy]": "passed",
    }
    pairs = evidence(run, found["SLO-007[burning]"], "burn_rates")["pairs"]
    burns = {(p["long_window"], p["short_window"]): p for p in pairs}
    # The last hour is all errors at 2 %: 20x. Longer windows dilute it with error-free time.
    assert burns["1h", "5m"]["long_burn_rate"] == pytest.approx(20, rel=1e-6)
    assert burns["1h", "5m"]["short_burn_rate"] == pytest.approx(20, rel=1e-6)
    assert burns["6h", "30m"]["long_burn_rate"] == pytest.approx(20 / 6, rel=0.01)
    assert burns["1d", "2h"]["long_burn_rate"] == pytest.approx(20 / 24, rel=0.01)
    assert burns["3d", "6h"]["long_burn_rate"] == pytest.approx(20 / 72, rel=0.01)
    assert burns["3d", "6h"]["short_burn_rate"] == pytest.approx(20 / 6, rel=0.01)
    assert [p["burning"] for p in pairs] == [True, False, False, False]
    message = found["SLO-007[burning]"]["message"]
    assert "burning burns its error budget: 1h/5m at 20.0x and 20.0x (limit 14.4x)" in message
    healthy = evidence(run, found["SLO-007[healthy]"], "burn_rates")["pairs"]
    assert {p["long_burn_rate"] for p in healthy} == {p["short_burn_rate"] for p in healthy} == {0}
    # 3 days: 120 x 6 errors among 8640 x 300 requests; the budget is 0.1 % of them.
    budget = evidence(run, found["SLO-006[burning]"], "budget")
    spent = 100 * (720 / (8640 * 300)) / 0.001
    assert budget["budget_spent_percent"] == pytest.approx(spent, rel=0.01)
    assert budget["budget_remaining_percent"] == pytest.approx(100 - spent, rel=0.01)


def test_slis_of_known_series_are_exact(known_series, tmp_path) -> None:
    run = tmp_path / "run"
    profile = known_profile(tmp_path, known_series)
    found = results(profile, run, select="SLO-001 or SLO-004 or SLO-005")
    assert statuses(found) == {
        "SLO-001[service]": "failed",
        "SLO-004[service]": "failed",
        "SLO-005[service]": "failed",
    }
    assert found["SLO-001[service]"]["figures"]["availability_percent"] == pytest.approx(98)
    assert found["SLO-004[service]"]["figures"]["error_rate_percent"] == pytest.approx(2)
    # 9.8 successful answers a second in the last hour (10 before it), just below 9.9.
    throughput = found["SLO-005[service]"]
    assert throughput["figures"]["peak_rps"] == pytest.approx(9.8)
    assert "peak 9.80 req/s of successful answers (1m average) within 30m" in throughput["message"]


# --- uptime around declared windows, on known series -----------------------------------------


@pytest.fixture(scope="module")
def flapping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, datetime]]:
    """``up{job="flapping"}`` every 30 s: down for 20 samples 30..39.5 minutes before the
    end (a drill's stopped primary), and for 2 samples 9.5..10 minutes before it (an outage
    nobody declared)."""
    end = int(time.time()) // STEP * STEP
    down = {"flapping": [(1800, 2370), (570, 600)]}
    with backfilled_prometheus(tmp_path_factory.mktemp("up"), {}, down, end) as url:
        yield url, datetime.fromtimestamp(end, UTC)


def test_up_inside_a_declared_window_gives_way_to_the_outage_users_saw(flapping) -> None:
    url, end = flapping
    reader = slo.Reader(partial(prom.query, profiles.Prometheus(url=url)))
    # 15 s off the samples, so that no sample sits on a boundary.
    now, window = end - timedelta(seconds=15), timedelta(hours=1)
    drill = DeclaredWindow(
        Span(end - timedelta(seconds=2715), end - timedelta(seconds=1515)),
        outages=(Span(end - timedelta(seconds=2400), end - timedelta(seconds=2340)),),
    )
    found = slo.uptime(reader, 'job="flapping"', window, [drill], now)
    # Outside the window's 20 minutes: 80 scrapes, 2 failed; inside: 40, 20 failed.
    assert (found.scrapes, found.failed) == (80, 2)
    assert (found.excluded_scrapes, found.excluded_failed) == (40, 20)
    assert (found.declared, found.outage) == (timedelta(minutes=20), timedelta(seconds=60))
    # 2/80 of the 40 minutes outside (60 s), and the minute measured through the load balancer.
    assert found.down == timedelta(seconds=120)
    assert found.share == pytest.approx(1 - 120 / 3600)
    # Declared by nobody, every failed scrape counts: 22 of 120.
    plain = slo.uptime(reader, 'job="flapping"', window, [], now)
    assert (plain.scrapes, plain.failed, plain.excluded_scrapes) == (120, 22, 0)
    assert plain.share == pytest.approx(1 - 22 / 120)
    # A window over the whole hour leaves only what users saw through the load balancer.
    everything = DeclaredWindow(Span(now - window, now), drill.outages)
    assert slo.uptime(reader, 'job="flapping"', window, [everything], now).share == (
        pytest.approx(1 - 60 / 3600)
    )
