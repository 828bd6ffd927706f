"""SLO-010, the active probe, through the real CLI against a sandbox of its own.

Faults come from the sandbox service's own switch (PUT /api/v1/faults: latency or 5xx
answers on the items API, behind nginx, so in the path the probe measures), cleared after
every test. Every run also proves the API token reached no file of the run folder (history
included) and not the terminal.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opsverify import sandbox
from opsverify.history import History
from tests.helpers import ROOT, opsverify, readiness, running_sandbox, write_profile

# Not 31000: the Locust checks' tests hold that block.
BASE_PORT = 27000
CLOSED_PORT = BASE_PORT + 1  # inside our block, and nothing of the sandbox listens on it


@pytest.fixture(scope="module")
def settings() -> Iterator[sandbox.Settings]:
    with running_sandbox(BASE_PORT, "probe") as state:
        yield state


def _token(settings: sandbox.Settings) -> str:
    return settings.layout().api_token.read_text().strip()


@contextlib.contextmanager
def faults(settings: sandbox.Settings, **switch: float) -> Iterator[None]:
    """Faults on the items API for the duration of the block, cleared whatever happens."""
    url = f"http://127.0.0.1:{settings.ports.service}/api/v1/faults"
    headers = {"Authorization": f"Bearer {_token(settings)}"}
    with httpx.Client(timeout=5, headers=headers) as client:
        client.put(url, json=switch).raise_for_status()
        try:
            yield
        finally:
            client.delete(url).raise_for_status()


def probe(settings: sandbox.Settings, path: str, **fields: object) -> dict[str, object]:
    """A probe of the sandbox's load balancer; small, so a slowed service stays quick."""
    url = f"https://127.0.0.1:{settings.ports.https}{path}"
    return {"name": "items", "url": url, "requests": 40, "warmup": 4, **fields}


def run(
    settings: sandbox.Settings, run_dir: Path, select: str = "SLO-010", **changes: object
) -> dict[str, dict]:
    """``opsverify run -k select`` with the local profile moved to the test sandbox; the checks
    of the run by parameter (or id, for checks without one)."""
    if "probes" in changes:  # the failover drill names a shipped probe these replace
        changes["dr__failover__probe"] = None
    profile = write_profile(settings, run_dir.parent, **changes)
    outcome = opsverify(
        "run", "--env", str(profile), "--run-dir", str(run_dir), "-k", select, cwd=ROOT
    )
    assert outcome.code in (0, 1), outcome.output
    token = _token(settings)
    assert token not in outcome.output
    for path in [*run_dir.rglob("*"), *(run_dir.parent / "history").rglob("*")]:
        assert not path.is_file() or token.encode() not in path.read_bytes(), path
    return {c["parameter"] or c["id"]: c for c in readiness(run_dir)["checks"]}


def test_healthy_service_passes_and_counts_as_performance_testing(settings, tmp_path) -> None:
    before = run(settings, tmp_path / "before", select="APP-012")
    assert before["APP-012"]["status"] == "failed"  # no performance test recorded yet

    checks = run(settings, tmp_path / "probe")
    assert {name: c["status"] for name, c in checks.items()} == {
        "items": "passed",
        "health": "passed",
    }
    figures = checks["items"]["figures"]
    assert figures["requests"] == 200 and figures["success_ratio"] == 100
    assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"] < 1000
    evidence = json.loads((tmp_path / "probe" / checks["items"]["evidence"][0]).read_text())
    assert len(evidence["latencies_ms"]) == 200 and evidence["status_counts"] == {"200": 200}
    assert evidence["credentials_sent"] is True
    assert evidence["objectives"]["p95_ms"] == 500  # from slo: the handbook's number

    records = History(tmp_path / "history").records("performance")
    assert sorted((r.check, r.parameter, r.status) for r in records) == [
        ("SLO-010", "health", "passed"),
        ("SLO-010", "items", "passed"),
    ]
    assert records[0].figures["requests"] == 200
    after = run(settings, tmp_path / "after", select="APP-012")
    assert after["APP-012"]["status"] == "passed"


def test_injected_latency_fails_p95_naming_the_measured_figure(settings, tmp_path) -> None:
    items = probe(settings, "/api/v1/items", auth=True, objectives={"p95": "200ms"})
    with faults(settings, latency_ms=300):
        checks = run(settings, tmp_path / "run", probes=[items])
    check = checks["items"]
    assert check["status"] == "failed" and not check["unreachable"]
    measured = re.search(r"p95 ([\d.]+) ms > 200 ms objective over 40 requests", check["message"])
    assert measured, check["message"]
    assert float(measured[1]) >= 300
    assert float(measured[1]) == pytest.approx(check["figures"]["p95_ms"], abs=0.1)


def test_injected_errors_fail_the_success_ratio_naming_the_measured_ratio(
    settings, tmp_path
) -> None:
    items = probe(settings, "/api/v1/items", auth=True, requests=100)
    with faults(settings, error_ratio=0.5):
        checks = run(settings, tmp_path / "run", probes=[items])
    check = checks["items"]
    ratio = check["figures"]["success_ratio"]
    assert check["status"] == "failed"
    assert (
        f"success {ratio:.2f}% < 99.9% objective ({100 - round(ratio)} × HTTP 500)"
        in (check["message"])
    )
    assert 30 <= ratio <= 70  # 100 draws at 0.5: four standard deviations either side


def test_unreachable_targets_fail_within_the_deadline(settings, tmp_path) -> None:
    closed = probe(settings, "/", name="closed")
    closed["url"] = f"https://127.0.0.1:{CLOSED_PORT}/health"
    # Accepts connections (the kernel does, from the backlog) and never answers.
    with socket.create_server(("127.0.0.1", 0), backlog=64) as silent:
        port = silent.getsockname()[1]
        hanging = probe(settings, "/", name="silent", timeout="1s", deadline="3s", warmup=0)
        hanging["url"] = f"https://127.0.0.1:{port}/health"
        checks = run(settings, tmp_path / "run", probes=[closed, hanging])
    for name in ("closed", "silent"):
        assert checks[name]["status"] == "failed" and checks[name]["unreachable"], checks[name]
    message = checks["closed"]["message"]
    assert message.startswith(f"cannot reach 127.0.0.1:{CLOSED_PORT}: "), message
    # Refused at once: the probe stops once 20 requests in a row got no answer, 4 of them
    # the warm-up, and lets at most the 3 others in flight finish.
    refused = re.search(
        r"success 0.00% < 99.9% objective \((\d+) × ConnectError \(ConnectionRefusedError\)\)",
        message,
    )
    assert refused and 16 <= int(refused[1]) <= 19, message
    assert "the target stopped answering: 20 requests in a row failed" in message
    assert checks["silent"]["message"].startswith(f"cannot reach 127.0.0.1:{port}: ")
    assert "did not finish 40 requests within 3 s" in checks["silent"]["message"]
    assert checks["silent"]["duration"] < 10


def test_a_database_outage_stops_the_probe(settings, tmp_path) -> None:
    """With the database down the items API answers 503: the probe stops after 20 such
    answers in a row instead of sending its 200 requests into the outage."""
    items = probe(settings, "/api/v1/items", auth=True, requests=200)
    sandbox.stop(settings, "postgres")
    try:
        checks = run(settings, tmp_path / "run", probes=[items])
    finally:
        sandbox.start(settings, "postgres")
    check = checks["items"]
    assert check["status"] == "failed" and not check["unreachable"], check["message"]
    assert check["figures"]["requests"] <= 19, check["figures"]
    assert "the target stopped answering: 20 requests in a row failed" in check["message"]
    assert "HTTP 503" in check["message"]


def test_a_profile_without_probes_makes_the_check_not_applicable(settings, tmp_path) -> None:
    checks = run(settings, tmp_path / "run", probes=None)
    assert checks["n/a"]["status"] == "not_applicable"
    assert checks["n/a"]["message"] == "no active probe configured (probes)"


def test_a_bad_probe_stops_the_run_naming_file_and_key() -> None:
    path = ROOT / "tests" / "data" / "profiles" / "broken" / "probe_concurrency_above_bound.yaml"
    outcome = opsverify("run", "--env", str(path), "-k", "SLO-010", timeout=60)
    assert outcome.code == 4, outcome.output
    assert f"{path}: probes[0].concurrency: Input should be less than or equal to 32" in (
        outcome.stderr
    )
