"""DRL-002, the DR failover drill, against a real sandbox (port block 31000): the primary
cronos-ai and PostgreSQL stop, the DR site is restored (restic, point-in-time recovery) and
serves through nginx, then the drill fails back. Healthy, it passes with measured RTO and RPO
inside the objectives; a failing, hanging or interrupted step fails it naming the step, and
failback still leaves the primary serving and nothing of the DR site behind.
"""

from __future__ import annotations

import json
import math
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from opsverify import profile as profiles
from opsverify import sandbox
from opsverify.history import WINDOW_KEY, DeclaredWindow, History
from tests.helpers import OPSVERIFY, ROOT, opsverify, readiness, running_sandbox, write_profile

# The drill's steps on a sandbox, as its evidence lists them, when every step goes well.
STEPS = [
    "fingerprint live data (before)",
    "inject",
    "the load balancer stops answering healthy",
    "activate",
    "choose the newest full backup",  # the sandbox's activation: the newest full backup
    "restore the snapshot's files",  # recovered to the newest moment the WAL archive holds
    "collect the WAL archived before the reference time",
    "recover the database to its newest moment",
    "switch",
    "first healthy answer through the load balancer",
    "the DR site's newest heartbeat before the disaster",
    "probe items through the load balancer",
    "failback",
    "healthy through the load balancer after failback",
    "fingerprint live data (after)",
]


@pytest.fixture(scope="module")
def settings() -> Iterator[sandbox.Settings]:
    with running_sandbox(31000, "failover") as state:
        yield state


@pytest.fixture(scope="module")
def profile(settings: sandbox.Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sandbox with a full backup taken now, for the DR site to be restored from."""
    path = write_profile(settings, tmp_path_factory.mktemp("profile"))
    full_backup(path)
    return path


def full_backup(profile: Path) -> None:
    made = opsverify("backup", "create", "--env", str(profile))
    assert made.code == 0, made.output


@pytest.fixture
def backed_up_after(profile: Path) -> Iterator[Path]:
    """For a test whose drill crashes PostgreSQL: that loses the WAL being written, where a
    later drill's recovery from an older base backup would stop. A full backup taken after
    the test leaves the module's next drill its own disaster to recover to."""
    yield profile
    full_backup(profile)


def drill_run(profile: Path, folder: Path) -> dict:
    outcome = opsverify("run", "--env", str(profile), "--run-dir", str(folder), "-k", "DRL-002")
    assert outcome.code in (0, 1), outcome.output
    return next(c for c in readiness(folder)["checks"] if c["id"] == "DRL-002")


def steps_of(folder: Path) -> list[dict]:
    return json.loads(next(folder.glob("evidence/DRL-002/*-steps.json")).read_text())


def assert_primary_serves_alone(settings: sandbox.Settings, profile: Path) -> None:
    """After any drill: the primary answers through nginx, nothing is left of the DR site."""
    layout = settings.layout()
    assert layout.nginx_upstream.read_text() == f"server 127.0.0.1:{settings.ports.service};\n"
    assert {c.name: c.state for c in sandbox.status(settings)} == dict.fromkeys(
        sandbox.PROGRAMS, "running"
    )
    trust = ssl.create_default_context(cafile=layout.ca_cert)
    ready = httpx.get(f"https://127.0.0.1:{settings.ports.https}/ready", verify=trust, timeout=5)
    assert ready.status_code == 200
    with pytest.raises(httpx.ConnectError):  # the DR site's service is gone
        httpx.get(f"http://127.0.0.1:{settings.ports.dr_service}/health", timeout=2)
    scratch = profiles.load(profile).dr.scratch
    assert not scratch.exists() or list(scratch.iterdir()) == []
    leftovers = subprocess.run(
        ["pgrep", "-f", str(scratch)], capture_output=True, text=True, timeout=10, check=False
    )
    assert leftovers.stdout == ""  # no DR PostgreSQL left running


def slo_run(profile: Path, folder: Path) -> dict:
    """SLO-001 alone; its history is the folder's parent's (with the drills run there)."""
    outcome = opsverify("run", "--env", str(profile), "--run-dir", str(folder), "-k", "SLO-001")
    assert outcome.code in (0, 1), outcome.output
    return next(c for c in readiness(folder)["checks"] if c["id"] == "SLO-001")


def availability_of(folder: Path) -> dict:
    return json.loads(next(folder.glob("evidence/SLO-001/*/*-availability.json")).read_text())


SCRAPED = 12  # seconds: two scrape intervals of the sandbox's Prometheus (5 s) and a margin
WINDOW_S = 12 * 3600  # the sandbox's slo.window, 12h


# First in the module: in the sandbox's slo.window (12h), its Prometheus has seen no outage but
# the ones this test makes and records.
def test_slo_001_counts_what_users_saw_of_a_drill_and_every_outage_outside_one(
    settings: sandbox.Settings, backed_up_after: Path, tmp_path: Path
) -> None:
    # The DR site serves 6 s longer (a verify hook): a scrape (every 5 s) sees the stopped
    # primary.
    verify = {"command": ["sleep", "6"], "timeout": "30s"}
    drill = drill_run(
        write_profile(settings, tmp_path, dr__failover__verify=verify), tmp_path / "drill"
    )
    assert drill["status"] == "passed", drill["message"]
    figures = drill["figures"]
    assert figures["failover_outage_s"] > 0 and figures["failback_outage_s"] >= 0
    (record,) = History(tmp_path / "history").records("dr-failover")
    window = DeclaredWindow.from_dict(record.details[WINDOW_KEY])
    assert [o.during for o in window.outages][:1] == ["failover"]
    outage = sum(o.seconds for o in window.outages)
    measured = figures["failover_outage_s"] + figures["failback_outage_s"]
    assert outage == pytest.approx(measured, abs=0.002)
    steps = steps_of(tmp_path / "drill")
    started = [datetime.fromisoformat(s["started"]) for s in steps]  # each a moment
    assert window.span.start <= started[1] and started[-2] <= window.span.end  # inject..failback
    time.sleep(SCRAPED)

    # An objective the window holds the failover in: its seconds through the load balancer
    # (3 to 10 on this machine) and 5 to spare.
    expected = 100 * (1 - outage / WINDOW_S)
    objective = math.floor(10_000 * (1 - (outage + 5) / WINDOW_S)) / 100
    slo_profile = write_profile(settings, tmp_path / "p", slo__availability=objective)
    after = slo_run(slo_profile, tmp_path / "slo")
    seen = availability_of(tmp_path / "slo")
    assert after["status"] == "passed", after["message"]
    # Nothing but the outage through the load balancer cost availability...
    assert after["figures"]["uptime_percent"] == pytest.approx(expected)
    # ...while the primary's failed scrapes in the drill's window did not.
    assert seen["uptime"]["excluded_failed_scrapes"] >= 1
    assert seen["uptime"]["failed_scrapes"] == 0
    assert [(w["check"], w["run"]) for w in seen["uptime"]["declared"]] == [("DRL-002", "drill")]
    # Without the drill's record (another history), the stopped primary fails SLO-001.
    unexplained = slo_run(slo_profile, tmp_path / "elsewhere" / "slo")
    assert unexplained["status"] == "failed"
    assert "failed scrapes of the service's targets" in unexplained["message"]
    # At the handbook's 99.9 %, 43 s of 12 hours: the failover's own outage decides.
    strict = write_profile(settings, tmp_path / "strict", slo__availability=99.9)
    shipped = slo_run(strict, tmp_path / "slo-99.9")
    fits = expected > 99.9
    assert shipped["status"] == ("passed" if fits else "failed"), shipped["message"]
    if not fits:
        assert "s of outage through the load balancer during DRL-002" in shipped["message"]

    # The service stopped with no drill: SLO-001 fails, the drill's window still excused.
    sandbox.stop(settings, "cronos-ai")
    try:
        time.sleep(30)
    finally:
        sandbox.start(settings, "cronos-ai")
    time.sleep(SCRAPED)
    down = slo_run(slo_profile, tmp_path / "slo-down")
    assert down["status"] == "failed"
    assert "failed scrapes of the service's targets outside declared windows" in down["message"]
    outside = availability_of(tmp_path / "slo-down")["uptime"]
    assert outside["failed_scrapes"] >= 3 and outside["excluded_failed_scrapes"] >= 1


def test_a_drill_whose_outage_through_the_load_balancer_was_long_costs_availability(
    settings: sandbox.Settings, backed_up_after: Path, tmp_path: Path
) -> None:
    # The switch changes nothing (a DNS change that never happened): the load balancer stays
    # on the stopped primary until health_timeout, then the drill fails back.
    drill_profile = write_profile(
        settings,
        tmp_path,
        dr__failover__switch={"command": ["true"], "timeout": "10s"},
        dr__failover__health_timeout="20s",
        slo__window="15m",
        slo__availability=98,  # 18 s of the 15-minute window: less than this drill's outage
    )
    drill = drill_run(drill_profile, tmp_path / "drill")
    assert drill["status"] == "failed"
    assert drill["figures"]["failed_step"] == "first healthy answer through the load balancer"
    outage = drill["figures"]["failover_outage_s"]
    assert outage > 20
    time.sleep(SCRAPED)
    after = slo_run(drill_profile, tmp_path / "slo")
    assert after["status"] == "failed"
    assert availability_of(tmp_path / "slo")["uptime"]["outage_s"] == pytest.approx(
        outage + drill["figures"]["failback_outage_s"], abs=0.01
    )
    assert "s of outage through the load balancer during DRL-002" in after["message"]


def test_a_failover_drill_on_a_healthy_sandbox_passes_inside_the_objectives(
    settings: sandbox.Settings, profile: Path, tmp_path: Path
) -> None:
    result = drill_run(profile, tmp_path / "run")
    assert result["status"] == "passed", result["message"]
    figures = result["figures"]
    assert 0 < figures["rto_s"] <= figures["rto_objective_s"] == 240  # 4 h at time scale 60
    assert 0 <= figures["rpo_s"] <= figures["rpo_objective_s"] == 15  # 15 min at time scale 60
    assert figures["live_data_identical"] is True and figures["failed_step"] is None
    assert figures["failback_s"] > 0 and figures["probe_p95_ms"] > 0
    steps = steps_of(tmp_path / "run")
    assert [s["name"] for s in steps] == STEPS
    assert all(s["outcome"] == "ok" for s in steps)
    assert {s.get("within") for s in steps[4:8]} == {"activate"}
    assert figures["drill_s"] >= figures["rto_s"] + figures["failback_s"]  # parts counted once
    # The probe's requests went through nginx while the primary was stopped: the DR site
    # answered them all.
    probe = json.loads(next((tmp_path / "run").glob("evidence/DRL-002/*-probe.json")).read_text())
    assert probe["measured_requests"] == 200 and probe["status_counts"] == {"200": 200}
    assert_primary_serves_alone(settings, profile)
    listed = opsverify("drills", "--env", str(profile), "--history", str(tmp_path / "history"))
    assert listed.code == 0 and "DRL-002" in listed.stdout, listed.output


def test_a_failing_activation_hook_fails_the_drill_at_that_step_and_fails_back(
    settings: sandbox.Settings, tmp_path: Path
) -> None:
    activate = {"command": ["sh", "-c", "echo activating the DR site; exit 3"], "timeout": "30s"}
    # An activate hook names the DR site's database (never read here: activation fails).
    database = {"host": "127.0.0.1", "port": 5432, "dbname": "dr", "user": "dr"}
    database["heartbeat"] = "heartbeat.at"
    profile = write_profile(
        settings, tmp_path, dr__failover__activate=activate, dr__failover__database=database
    )
    result = drill_run(profile, tmp_path / "run")
    assert result["status"] == "failed"
    assert "step activate failed: sh exited 3: activating the DR site" in result["message"]
    assert result["figures"]["failed_step"] == "activate"
    assert result["figures"]["rto_s"] is None  # no healthy answer ever came
    outcomes = {s["name"]: s["outcome"] for s in steps_of(tmp_path / "run")}
    assert outcomes["activate"] == "failed" and "switch" not in outcomes
    assert outcomes["failback"] == "ok"
    assert outcomes["healthy through the load balancer after failback"] == "ok"
    assert_primary_serves_alone(settings, profile)


class _Refusing(BaseHTTPRequestHandler):
    """A DNS provider's API that refuses the switch (a test double: none runs here)."""

    calls: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.calls.append(self.headers.get("X-Opsverify-Step", ""))
        self.send_response(503)
        self.end_headers()
        self.wfile.write(b"zone locked")

    def log_message(self, *args: object) -> None:
        pass


def test_a_refused_switch_call_and_a_hanging_cleanup_are_named(
    settings: sandbox.Settings, tmp_path: Path
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/dns/switch"
        profile = write_profile(
            settings,
            tmp_path,
            dr__failover__switch={"http": {"url": url, "body": {"to": "dr"}}, "timeout": "5s"},
            dr__failover__cleanup={"command": ["sleep", "30"], "timeout": "1s"},
        )
        started = time.monotonic()
        result = drill_run(profile, tmp_path / "run")
    finally:
        server.shutdown()
    assert time.monotonic() - started < 120  # the cleanup's 30 s sleep was cut at 1 s
    assert result["status"] == "failed"
    assert (
        f"step switch failed: {url} answered 503, expected 200, 201, 202, 204"
        in (result["message"])
    )
    assert "step cleanup failed: sleep did not finish in 0:00:01" in result["message"]
    assert _Refusing.calls == ["switch"]
    outcomes = {s["name"]: s["outcome"] for s in steps_of(tmp_path / "run")}
    assert outcomes["switch"] == "failed" and outcomes["failback"] == "ok"
    assert_primary_serves_alone(settings, profile)


def test_an_interrupted_failover_drill_fails_back(
    settings: sandbox.Settings, tmp_path: Path
) -> None:
    marker = tmp_path / "verifying"
    verify = {"command": ["sh", "-c", f"touch {marker}; sleep 60"], "timeout": "2m"}
    profile = write_profile(settings, tmp_path, dr__failover__verify=verify)
    folder = tmp_path / "run"
    process = subprocess.Popen(
        [str(OPSVERIFY), "run", "--env", str(profile), "--run-dir", str(folder), "-k", "DRL-002"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Ctrl-C while the DR site serves (the verify hook runs).
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert process.poll() is None, "the drill ended before it was interrupted"
            assert time.monotonic() < deadline, "the drill never reached verify"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=180) == 2  # interrupted
    finally:
        if process.poll() is None:
            process.kill()
    outcomes = {s["name"]: s["outcome"] for s in steps_of(folder)}
    assert outcomes["verify"] == "interrupted"
    assert outcomes["failback"] == "ok"
    assert_primary_serves_alone(settings, profile)
    hook = subprocess.run(
        ["pgrep", "-f", f"touch {marker}"], capture_output=True, text=True, timeout=10, check=False
    )
    assert hook.stdout == ""  # the hook's process group went with the drill


def test_a_second_ctrl_c_during_failback_does_not_abandon_it(
    settings: sandbox.Settings, tmp_path: Path
) -> None:
    marker = tmp_path / "verifying"
    verify = {"command": ["sh", "-c", f"touch {marker}; sleep 60"], "timeout": "2m"}
    profile = write_profile(settings, tmp_path, dr__failover__verify=verify)
    folder = tmp_path / "run"
    said = (tmp_path / "stderr").open("w")
    process = subprocess.Popen(
        [str(OPSVERIFY), "run", "--env", str(profile), "--run-dir", str(folder), "-k", "DRL-002"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=said,
    )
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert process.poll() is None, "the drill ended before it was interrupted"
            assert time.monotonic() < deadline, "the drill never reached verify"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)  # the first: the drill stops, failback begins
        for _ in range(3):  # and more, impatient, while it fails back
            time.sleep(0.5)
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        process.wait(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
        said.close()
    assert process.returncode == 2  # interrupted, and still failed back
    assert "Ctrl-C: failing back to the primary" in (tmp_path / "stderr").read_text()
    outcomes = {s["name"]: s["outcome"] for s in steps_of(folder)}
    assert outcomes["verify"] == "interrupted"
    assert outcomes["failback"] == "ok"
    assert_primary_serves_alone(settings, profile)
    assert readiness(folder)["run"]["interrupted"] is True


def test_up_puts_right_a_sandbox_left_on_its_dr_site(
    settings: sandbox.Settings, profile: Path
) -> None:
    """A drill killed (SIGKILL) between switch and failback leaves the primary stopped and
    nginx on a DR site that is gone: `sandbox up` starts the primary and switches back."""
    from opsverify.sandbox import dr, provision

    sandbox.stop(settings, "cronos-ai")
    dr.switch(settings, settings.ports.dr_service)
    assert provision.point_upstream(settings.layout(), settings.ports.dr_service) is False
    sandbox.up(settings, timeout=120)
    assert_primary_serves_alone(settings, profile)
