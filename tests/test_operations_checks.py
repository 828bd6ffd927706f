"""Daily resource and error-rate checks against a real sandbox's Prometheus and node-exporter.

Faults: two busy processes for the CPU check, real 5xx answers from the service for the
error-ratio check. Memory and disk cannot honestly be filled on a shared 24 GiB machine, so
their tests put the limit just below what node-exporter measures now.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opsverify import sandbox
from opsverify.drivers import prometheus as prom
from opsverify.profile import Prometheus
from tests.helpers import ROOT, opsverify, readiness, running_sandbox, write_profile

SELECT = "OPS-010 or OPS-011 or OPS-012 or OPS-013 or OPS-014"
WINDOW = "20s"


@pytest.fixture(scope="module")
def settings() -> Iterator[sandbox.Settings]:
    with running_sandbox(22000, "ops") as state:
        # Rates need two samples in their window: wait for Prometheus to have them, for the
        # node and for the service (whose request counter appears one scrape later).
        deadline = time.monotonic() + 60
        for promql in (
            f'rate(node_cpu_seconds_total{{mode="idle"}}[{WINDOW}])',
            "sum(increase(cronos_ai_http_requests_total[24h]))",
        ):
            while not _series(state, promql):
                assert time.monotonic() < deadline, f"Prometheus has no {promql} after 60 s"
                time.sleep(1)
        yield state


def run(settings, tmp_path: Path, **resources) -> dict[str, str]:
    # CPU on a 2-core machine running the test suite is noise: only the CPU fault test sets
    # the handbook's 80 %, with both cores kept busy.
    limits = {
        "cpu_max": 100,
        "memory_max": 85,
        "disk_min_free": 20,
        "network_max": 80,
        "window": WINDOW,
        **resources,
    }
    profile = write_profile(settings, tmp_path, resources=limits)
    outcome = opsverify(
        "run",
        "--env",
        str(profile),
        "--run-dir",
        str(tmp_path / "run"),
        "--cadence",
        "daily",
        "-k",
        SELECT,
        cwd=ROOT,
    )
    assert outcome.code in (0, 1), outcome.output
    return {c["id"]: c["status"] for c in readiness(tmp_path / "run")["checks"]}


HEALTHY = {
    "OPS-010": "passed",
    "OPS-011": "passed",
    "OPS-012": "passed",
    "OPS-013": "not_applicable",
    "OPS-014": "passed",
}


def _series(settings, promql: str) -> list[dict]:
    url = f"http://127.0.0.1:{settings.ports.prometheus}"
    return prom.query(Prometheus(url=url), promql)


def now(settings, promql: str) -> float:
    return float(_series(settings, promql)[0]["value"][1])


def test_healthy_node_and_service_pass(settings, tmp_path) -> None:
    assert run(settings, tmp_path) == HEALTHY


def _burn(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_busy_cpus_fail_the_cpu_check(settings, tmp_path) -> None:
    burners = [multiprocessing.Process(target=_burn, args=(60,)) for _ in range(2)]
    for burner in burners:
        burner.start()
    try:
        time.sleep(25)  # a full 20 s rate window of busy samples (scraped every 5 s)
        statuses = run(settings, tmp_path, cpu_max=80)
    finally:
        for burner in burners:
            burner.terminate()
            burner.join(timeout=10)
    assert statuses == {**HEALTHY, "OPS-010": "failed"}


def test_memory_above_the_limit_fails_the_memory_check(settings, tmp_path) -> None:
    used = now(settings, "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)")
    assert run(settings, tmp_path, memory_max=max(used - 0.5, 0)) == {
        **HEALTHY,
        "OPS-011": "failed",
    }


def test_a_filesystem_short_of_space_fails_the_disk_check(settings, tmp_path) -> None:
    free = now(
        settings,
        'min(100 * node_filesystem_avail_bytes{fstype="ext4"}'
        ' / node_filesystem_size_bytes{fstype="ext4"})',
    )
    statuses = run(settings, tmp_path, disk_min_free=min(free + 5, 100))
    assert statuses == {**HEALTHY, "OPS-012": "failed"}


def test_real_5xx_answers_fail_the_error_ratio_check(settings, tmp_path) -> None:
    token = settings.layout().api_token.read_text().strip()
    service = f"http://127.0.0.1:{settings.ports.service}/api/v1"
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=5, headers=headers) as client:
        client.put(f"{service}/faults", json={"error_ratio": 1.0}).raise_for_status()
        try:
            # Prometheus counts a counter's growth from its first sample: let it sample the
            # new 5xx series once before the burst, as it would in a real incident.
            client.get(f"{service}/items")
            time.sleep(7)
            answers = [client.get(f"{service}/items").status_code for _ in range(200)]
        finally:
            client.delete(f"{service}/faults").raise_for_status()
    assert answers.count(500) + answers.count(503) >= 150
    time.sleep(12)  # two scrape intervals: Prometheus has seen the errors
    assert run(settings, tmp_path) == {**HEALTHY, "OPS-014": "failed"}
