"""LOAD-001 through the real CLI against a sandbox of its own: Locust in its own process,
thresholds judged from its statistics, the run recorded for APP-013, the token kept out of
every file and the terminal, early abort, and the production guard."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from opsverify import profile as profiles
from opsverify import sandbox
from opsverify.drivers import locust
from opsverify.history import History
from tests.helpers import ROOT, Outcome, opsverify, readiness, running_sandbox, write_profile

SMOKE = {"name": "smoke", "users": 5, "spawn_rate": 5, "run_time": "5s"}
# Locustfiles written the way Locust's documentation writes them (tests/data/load/locustfiles/).
LOCUSTFILES = ROOT / "tests" / "data" / "load" / "locustfiles"


@pytest.fixture(scope="module")
def settings() -> Iterator[sandbox.Settings]:
    with running_sandbox(29000, "load") as state:
        yield state


@pytest.fixture(scope="module")
def token(settings: sandbox.Settings) -> str:
    return settings.layout().api_token.read_text().strip()


def run(settings, tmp_path: Path, *extra: str, select: str = "LOAD-001", **changes) -> Outcome:
    """``opsverify run`` of ``select`` against the local profile with ``changes`` applied."""
    profile = write_profile(settings, tmp_path, **changes)
    args = ["--env", str(profile), "--run-dir", str(tmp_path / "run"), "-k", select, *extra]
    return opsverify("run", *args, cwd=ROOT)


def checks(tmp_path: Path) -> dict[str, dict]:
    """The run's results by id and parameter: LOAD-001[smoke]."""
    found = readiness(tmp_path / "run")["checks"]
    return {f"{c['id']}[{c['parameter']}]" if c["parameter"] else c["id"]: c for c in found}


def assert_secret_kept(token: str, tmp_path: Path, outcome: Outcome) -> None:
    """Not in the terminal, not in any file of the run folder or the history."""
    assert token not in outcome.output
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
    assert leaks == []


def test_smoke_profile_passes_and_is_recorded_for_app_013(settings, token, tmp_path) -> None:
    """The shipped local profile, as `opsverify run --cadence predeploy` runs it."""
    outcome = run(settings, tmp_path, "--cadence", "predeploy", select="LOAD-001 or APP-013")
    assert outcome.code == 0, outcome.output
    results = checks(tmp_path)
    smoke = results["LOAD-001[smoke]"]
    assert smoke["status"] == "passed", smoke["message"]
    assert results["LOAD-001[standard]"]["status"] == "not_applicable"
    assert results["LOAD-001[standard]"]["message"] == (
        "load profile standard runs monthly, not predeploy"
    )
    figures = smoke["figures"]
    assert figures["requests"] > 100 and figures["failures"] == 0 and figures["users"] == 10
    assert figures["rps"] >= 100 and figures["aborted"] is False
    assert 9 <= figures["duration_s"] < 30
    evidence = {Path(p).name.split("-", 1)[1] for p in smoke["evidence"]}
    assert {"locust-stats.csv", "locust-report.html", "thresholds.json"} <= evidence
    report = next(p for p in smoke["evidence"] if p.endswith("locust-report.html"))
    assert "<html" in (tmp_path / "run" / report).read_text()
    records = History(tmp_path / "history").records("load")
    passed = [r for r in records if r.parameter == "smoke"]
    assert [r.status for r in passed] == ["passed"] and passed[0].figures == figures
    assert results["APP-013"]["status"] == "passed", results["APP-013"]["message"]
    assert_secret_kept(token, tmp_path, outcome)


def test_impossible_threshold_fails_and_aborts_early(settings, token, tmp_path) -> None:
    """Locust's master with two local workers, stopped a few seconds in: a 60 s run ends
    well before its run time, and says which threshold stopped it and when."""
    impossible = {
        **SMOKE,
        "name": "impossible",
        "run_time": "60s",
        "processes": 2,
        "cadences": ["predeploy"],
        "thresholds": [
            {"threshold": "rps >= 1000000", "abort_on_fail": True, "delay_abort_eval": "3s"},
            "error_rate < 1%",
        ],
    }
    outcome = run(settings, tmp_path, load__profiles=[impossible])
    assert outcome.code == 1, outcome.output
    check = checks(tmp_path)["LOAD-001[impossible]"]
    assert check["status"] == "failed"
    assert "of 60 s: rps >= 1000000 (measured" in check["message"]
    assert "was already lost" in check["message"]
    figures = check["figures"]
    assert figures["aborted"] is True and 3 <= figures["aborted_at_s"] < 15
    assert figures["duration_s"] < 30 and figures["requests"] > 0
    assert any(p.endswith("locust-report.html") for p in check["evidence"])
    assert History(tmp_path / "history").records("load")[-1].status == "failed"
    assert_secret_kept(token, tmp_path, outcome)


def test_threshold_on_a_request_never_made_fails_with_no_samples(settings, tmp_path) -> None:
    profile = {**SMOKE, "thresholds": ["p95 < 1s", "GET /api/v1/reports: p95 < 1s"]}
    outcome = run(settings, tmp_path, load__profiles=[profile])
    assert outcome.code == 1, outcome.output
    check = checks(tmp_path)["LOAD-001[smoke]"]
    assert check["status"] == "failed"
    assert check["message"].endswith(
        "1 of 2 thresholds failed: GET /api/v1/reports: p95 < 1s "
        "(no samples: no request to GET /api/v1/reports was made)"
    )


def test_injected_errors_fail_the_error_rate_with_the_measured_figure(
    settings, token, tmp_path
) -> None:
    faults = f"http://127.0.0.1:{settings.ports.service}/api/v1/faults"
    headers = {"Authorization": f"Bearer {token}"}
    profile = {**SMOKE, "thresholds": ["error_rate < 1%", "/health: error_rate < 1%"]}
    with httpx.Client(timeout=5, headers=headers) as client:
        client.put(faults, json={"error_ratio": 0.5}).raise_for_status()
        try:
            outcome = run(settings, tmp_path, load__profiles=[profile])
        finally:
            client.delete(faults).raise_for_status()
    assert outcome.code == 1, outcome.output
    check = checks(tmp_path)["LOAD-001[smoke]"]
    rate = check["figures"]["error_rate"]
    # Half the API requests fail; /health (1 in 11 requests) is never faulted.
    assert 30 < rate < 60, rate
    said = re.search(
        r"1 of 2 thresholds failed: error_rate < 1% \(measured ([\d.]+)%\)", check["message"]
    )
    assert said and float(said[1]) == pytest.approx(rate, abs=0.01), check["message"]
    assert "; most frequent failure: " in check["message"] and "500" in check["message"]
    assert any(p.endswith("locust-failures.csv") for p in check["evidence"])
    assert_secret_kept(token, tmp_path, outcome)


@contextlib.contextmanager
def stopped(settings: sandbox.Settings, component: str) -> Iterator[None]:
    """One of the sandbox's components stopped for the block, as an outage stops it."""
    sandbox.stop(settings, component)
    try:
        yield
    finally:
        sandbox.start(settings, component)


def test_failed_requests_are_no_throughput(settings, tmp_path) -> None:
    """The service behind the load balancer is down: nginx answers every request with 502.
    That is no throughput, overall or for one request, and a product failure, not an
    unreachable target."""
    profile = {
        **SMOKE,
        "users": 50,
        "spawn_rate": 50,
        "thresholds": ["rps >= 1", "GET /health: rps >= 0.2"],
    }
    quickstart = str(LOCUSTFILES / "quickstart.py")
    with stopped(settings, "cronos-ai"):
        outcome = run(settings, tmp_path, load__locustfile=quickstart, load__profiles=[profile])
    assert outcome.code == 1, outcome.output
    check = checks(tmp_path)["LOAD-001[smoke]"]
    assert check["status"] == "failed" and not check["unreachable"], check["message"]
    figures = check["figures"]
    assert figures["requests"] > 0 and figures["failures"] == figures["requests"]
    assert figures["rps"] == 0
    assert "rps >= 1 (measured 0/s)" in check["message"]
    assert "GET /health: rps >= 0.2 (measured 0/s)" in check["message"]
    assert "502" in check["message"]


@pytest.mark.parametrize("kind", ["quickstart", "fast"])  # HttpUser, FastHttpUser
def test_unchanged_locustfiles_trust_the_profiles_ca(settings, tmp_path, kind) -> None:
    """The sandbox's certificate is signed by a CA of its own, which the profile names."""
    profile = {**SMOKE, "users": 50, "spawn_rate": 50, "thresholds": ["error_rate < 1%"]}
    locustfile = str(LOCUSTFILES / f"{kind}.py")
    outcome = run(settings, tmp_path, load__locustfile=locustfile, load__profiles=[profile])
    assert outcome.code == 0, outcome.output
    check = checks(tmp_path)["LOAD-001[smoke]"]
    assert check["status"] == "passed", check["message"]
    assert check["figures"]["requests"] > 0 and check["figures"]["failures"] == 0


@pytest.mark.parametrize("kind", ["quickstart", "fast"])
def test_a_ca_that_did_not_sign_the_target_is_a_certificate_finding(
    settings, tmp_path, kind
) -> None:
    """The same locustfiles told to trust public CAs only (certifi's bundle): every request
    fails on the certificate, a finding about the target, not an unreachable one."""
    import certifi

    profile = {**SMOKE, "users": 50, "spawn_rate": 50, "thresholds": ["error_rate < 1%"]}
    outcome = run(
        settings,
        tmp_path,
        load__locustfile=str(LOCUSTFILES / f"{kind}.py"),
        load__ca_file=certifi.where(),
        load__profiles=[profile],
    )
    assert outcome.code == 1, outcome.output
    check = checks(tmp_path)["LOAD-001[smoke]"]
    assert check["status"] == "failed" and not check["unreachable"], check["message"]
    assert "CERTIFICATE_VERIFY_FAILED" in check["message"]


def test_a_run_that_stops_itself_early_cannot_pass(settings, tmp_path) -> None:
    """Five requests and two seconds into a 10 s run the locustfile quits: Locust's own rate
    of those five requests is hundreds per second. The run did not happen as planned."""
    profile = {
        **SMOKE,
        "users": 1,
        "spawn_rate": 1,
        "run_time": "10s",
        "thresholds": ["rps >= 100", "p95 < 1s", "error_rate < 1%"],
    }
    stops = str(LOCUSTFILES / "stops_itself.py")
    outcome = run(settings, tmp_path, load__locustfile=stops, load__profiles=[profile])
    assert outcome.code == 1, outcome.output
    check = checks(tmp_path)["LOAD-001[smoke]"]
    assert check["status"] == "failed" and not check["unreachable"]
    ended = re.search(r"the load ended after ([\d.]+) s of its 10 s run time", check["message"])
    assert ended and 1.5 <= float(ended[1]) < 5, check["message"]
    assert "5 requests, fewer than the 100 the profile needs (min_requests)" in check["message"]
    figures = check["figures"]
    assert figures["requests"] == 5 and figures["load_s"] == pytest.approx(float(ended[1]), 0.1)
    assert figures["rps"] < 5  # successful requests over the seconds the load lasted
    judged = json.loads(
        (tmp_path / "run" / next(p for p in check["evidence"] if "thresholds" in p)).read_text()
    )
    assert {v["result"] for v in judged} == {"fail"}
    assert all(v["measured"] is not None for v in judged)


def test_a_full_run_with_too_few_requests_cannot_pass(settings, tmp_path) -> None:
    """Two quickstart users for 5 s make a handful of requests: a p95 over them says
    nothing."""
    profile = {**SMOKE, "users": 2, "spawn_rate": 2, "thresholds": ["p95 < 1s"]}
    quickstart = str(LOCUSTFILES / "quickstart.py")
    outcome = run(settings, tmp_path, load__locustfile=quickstart, load__profiles=[profile])
    assert outcome.code == 1, outcome.output
    check = checks(tmp_path)["LOAD-001[smoke]"]
    made = check["figures"]["requests"]
    assert 0 < made < 20
    needs = "fewer than the 100 the profile needs (min_requests)"
    assert f"{made} requests, {needs}" in check["message"]
    assert "ended after" not in check["message"]
    # The same run with a minimum it meets passes.
    enough = {**profile, "min_requests": 1}
    again = tmp_path / "again"
    again.mkdir()
    outcome = run(settings, again, load__locustfile=quickstart, load__profiles=[enough])
    assert checks(again)["LOAD-001[smoke]"]["status"] == "passed", outcome.output


def test_a_load_shape_is_bounded_by_the_run_time_and_judged(settings, tmp_path) -> None:
    """A four-minute LoadTestShape under a 6 s load profile: stopped at 6 s as Locust stops
    other runs, its statistics judged, the shape named."""
    profile = {
        **SMOKE,
        "run_time": "6s",
        "min_requests": 10,
        "thresholds": ["error_rate < 1%", "rps >= 100000"],
    }
    stages = str(LOCUSTFILES / "stages.py")
    outcome = run(settings, tmp_path, load__locustfile=stages, load__profiles=[profile])
    assert outcome.code == 1, outcome.output
    check = checks(tmp_path)["LOAD-001[smoke]"]
    message = check["message"]
    assert "LoadTestShape StagesShape" in message and "1 of 2 thresholds failed" in message
    assert "rps >= 100000 (measured" in message and "ended after" not in message
    figures = check["figures"]
    assert figures["shape"] == "StagesShape" and figures["requests"] >= 10
    assert 5.5 <= figures["load_s"] < 8 and figures["duration_s"] < 30
    command = json.loads(
        (tmp_path / "run" / next(p for p in check["evidence"] if "command" in p)).read_text()
    )
    assert command["run"]["shape"] == "StagesShape"


def test_a_run_past_its_deadline_keeps_its_figures(settings, tmp_path, monkeypatch) -> None:
    """Users that hang when stopped keep Locust from finishing; stopped at its deadline it
    still writes its statistics, and the verdict reports them."""
    monkeypatch.setattr(locust, "GRACE_S", 4)  # a 3 s run may take 7 s in all
    plan = locust.Plan(
        LOCUSTFILES / "stuck_on_stop.py",
        f"https://127.0.0.1:{settings.ports.https}",
        users=2,
        spawn_rate=2,
        run_time_s=3,
        ca_file=settings.layout().ca_cert,
    )
    outcome = locust.run(plan, tmp_path)
    assert outcome.timed_out and outcome.stats is not None
    assert outcome.stats.total.requests > 0
    assert outcome.figures()["requests"] == outcome.stats.total.requests
    assert any("did not finish within 7 s" in p for p in outcome.problems(min_requests=1))


def test_a_database_outage_stops_the_load_test(settings, token, tmp_path) -> None:
    """With the database down the items API answers 503 while /health still answers 200:
    the load test stops within seconds instead of spending the error budget it judges."""
    profile = {**SMOKE, "run_time": "30s", "thresholds": ["error_rate < 1%"]}
    with stopped(settings, "postgres"):
        outcome = run(settings, tmp_path, load__profiles=[profile])
    assert outcome.code == 1, outcome.output
    check = checks(tmp_path)["LOAD-001[smoke]"]
    assert check["status"] == "failed" and not check["unreachable"]
    message = check["message"]
    said = re.search(r"stopped at ([\d.]+) s of 30 s: the target stopped answering: ", message)
    assert said and 5 <= float(said[1]) < 15, message
    assert "in the last 5 s" in message and "503" in message
    assert check["figures"]["aborted"] is True and check["figures"]["duration_s"] < 25
    assert_secret_kept(token, tmp_path, outcome)


def test_a_host_nothing_listens_on_is_unreachable(settings, tmp_path) -> None:
    closed = f"https://127.0.0.1:{settings.ports.dr_service}"  # no DR site runs: refused
    profile = {**SMOKE, "thresholds": ["error_rate < 1%"]}
    outcome = run(settings, tmp_path, load__host=closed, load__profiles=[profile])
    assert outcome.code == 1, outcome.output
    check = checks(tmp_path)["LOAD-001[smoke]"]
    assert check["status"] == "failed" and check["unreachable"], check["message"]
    assert check["message"].startswith(f"cannot reach 127.0.0.1:{settings.ports.dr_service}: ")
    assert "Connection refused" in check["message"]


@pytest.mark.parametrize("allow_destructive", [False, True])
def test_production_refuses_load_without_explicit_permission(
    settings, tmp_path, allow_destructive
) -> None:
    """Refused before Locust starts: no evidence, nothing measured."""
    outcome = run(
        settings,
        tmp_path,
        "--cadence",
        "predeploy",
        tier="production",
        allow_destructive=allow_destructive,
        backup__time_scale=1,  # compressed time is a sandbox's alone
    )
    check = checks(tmp_path)["LOAD-001[smoke]"]
    assert check["status"] == "not_applicable", outcome.output
    assert check["message"].startswith("refused: a destructive check against production")
    assert check["evidence"] == [] and check["figures"] == {}


@pytest.mark.parametrize("name", ["staging.example", "production.example"])
def test_examples_load_as_the_handbook_says(name: str) -> None:
    """`locust --users 100 --spawn-rate 10 --run-time 10m`, held to p95 < 500 ms,
    error rate < 1 % and 1,000 requests/s."""
    load = profiles.load(ROOT / "environments" / f"{name}.yaml").load
    assert load is not None and load.locustfile == ROOT / "load" / "locustfile.py"
    standard = next(p for p in load.profiles if p.name == "standard")
    assert (standard.users, standard.spawn_rate) == (100, 10)
    assert standard.run_time == timedelta(minutes=10) and standard.cadences == ["monthly"]
    assert [str(t.threshold) for t in standard.thresholds] == [
        "p95 < 500ms",
        "error_rate < 1%",
        "rps >= 1000",
    ]
    assert load.host is not None and "cronos-ai.com" in str(load.host)


def test_local_profile_loads_the_sandbox_through_its_load_balancer() -> None:
    local = profiles.load(ROOT / "environments" / "local.yaml")
    assert local.load is not None and local.service is not None
    assert local.load.host == local.service.base_url
    assert local.load.ca_file == local.service.ca_file
    assert local.load.token == local.service.auth.token
    assert {p.name: p.cadences for p in local.load.profiles} == {
        "smoke": ["predeploy"],
        "standard": ["monthly"],
    }


# --- the driver on its own: Locust against a closed loopback port, no sandbox needed ------

CLOSED = "https://127.0.0.1:9"  # discard port, not listening here: every request fails fast


def _plan(locustfile: Path, run_time_s: int = 2) -> locust.Plan:
    return locust.Plan(locustfile, CLOSED, users=2, spawn_rate=2, run_time_s=run_time_s)


def _alive(folder: Path) -> list[int]:
    """Processes whose command line names ``folder``: what is left of a Locust run."""
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and str(folder).encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
    return found


def test_a_run_past_its_deadline_is_stopped_and_its_group_killed(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(locust, "GRACE_S", -26)  # a 30 s run may take 4 s in all
    plan = locust.Plan(
        ROOT / "load" / "locustfile.py", CLOSED, users=2, spawn_rate=2, run_time_s=30, processes=2
    )
    outcome = locust.run(plan, tmp_path)
    assert outcome.timed_out and outcome.seconds < 4 + locust.STOP_S
    assert _alive(tmp_path) == []


def test_a_locustfile_that_cannot_load_is_locusts_failure(tmp_path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_anywhere\n")
    outcome = locust.run(_plan(broken), tmp_path)
    assert outcome.exit_code not in (0, None) and outcome.stats is None
    assert "no_such_module_anywhere" in outcome.log_tail


def test_exceptions_in_the_locustfiles_tasks_fail_the_check(settings, tmp_path) -> None:
    """A locustfile that raises does not make the load it describes, whatever it measured."""
    raising = tmp_path / "raising.py"
    raising.write_text(
        "from locust import User, task, constant\n"
        "class Broken(User):\n"
        "    wait_time = constant(0.5)\n"
        "    @task\n"
        "    def crash(self):\n"
        "        raise RuntimeError('task bug')\n"
    )
    profile = {**SMOKE, "run_time": "2s", "thresholds": ["error_rate < 1%"]}
    outcome = run(settings, tmp_path, load__locustfile=str(raising), load__profiles=[profile])
    assert outcome.code == 1, outcome.output
    message = checks(tmp_path)["LOAD-001[smoke]"]["message"]
    assert "the locustfile's tasks raised exceptions: " in message and "task bug" in message


def test_kubernetes_manifests_run_the_pinned_locust_with_bounded_resources() -> None:
    load = ROOT / "load"
    kustomization = yaml.safe_load((load / "kustomization.yaml").read_text())
    assert kustomization["configMapGenerator"] == [
        {"name": "locustfile", "files": ["locustfile.py"]}
    ]
    docs = [
        d for r in kustomization["resources"] for d in yaml.safe_load_all((load / r).read_text())
    ]
    assert sorted(d["kind"] for d in docs) == ["Deployment", "Deployment", "Service"]
    pinned = re.search(r'"locust==([\d.]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert {"name": "locustfile", "configMap": {"name": "locustfile"}} in pod["volumes"]
        for container in pod["containers"]:
            assert container["image"] == f"locustio/locust:{pinned[1]}"
            assert container["resources"]["requests"] and container["resources"]["limits"]
            assert "/mnt/locust/locustfile.py" in container["args"]
    (service,) = [d for d in docs if d["kind"] == "Service"]
    assert service["spec"]["type"] == "ClusterIP"
