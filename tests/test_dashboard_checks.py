"""MON-006 against a real sandbox's Prometheus: the shipped dashboards pass; a broken query,
a metric that does not exist, a file Grafana would not load and an empty folder fail."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsverify import sandbox
from opsverify.drivers import prometheus as prom
from opsverify.profile import Prometheus
from tests.helpers import ROOT, opsverify, readiness, running_sandbox, sandbox_ports, write_profile

PORTS = sandbox_ports(24000)


@pytest.fixture(scope="module")
def settings() -> Iterator[sandbox.Settings]:
    with running_sandbox(24000, "dash") as state:
        # rate() panels need two samples of every series in their window.
        prometheus = Prometheus(url=f"http://127.0.0.1:{PORTS.prometheus}")
        deadline = time.monotonic() + 60
        while not prom.query(prometheus, "sum(rate(cronos_ai_http_requests_total[1m]))"):
            assert time.monotonic() < deadline, "no request rate in Prometheus after 60 s"
            time.sleep(1)
        yield state


def run(settings, tmp_path: Path, folder: Path) -> dict[str, dict]:
    profile = write_profile(settings, tmp_path, monitoring__dashboards={"folder": str(folder)})
    outcome = opsverify(
        "run", "--env", str(profile), "--run-dir", str(tmp_path / "run"), "-k", "MON-006", cwd=ROOT
    )
    assert outcome.code in (0, 1), outcome.output
    return {c["parameter"]: c for c in readiness(tmp_path / "run")["checks"]}


@pytest.fixture
def boards(tmp_path: Path) -> Path:
    folder = tmp_path / "dashboards"
    shutil.copytree(ROOT / "dashboards", folder)
    return folder


def edit(path: Path, change) -> None:
    board = json.loads(path.read_text())
    change(board)
    path.write_text(json.dumps(board))


def test_the_shipped_dashboards_pass(settings, tmp_path, boards) -> None:
    results = run(settings, tmp_path, boards)
    assert {name: c["status"] for name, c in results.items()} == {
        "application": "passed",
        "infrastructure": "passed",
        "slo": "passed",
    }
    evidence = json.loads((tmp_path / "run" / results["slo"]["evidence"][0]).read_text())
    assert all(q["series"] > 0 for q in evidence["queries"]) and len(evidence["queries"]) == 4


def test_a_query_that_does_not_parse_fails_its_dashboard(settings, tmp_path, boards) -> None:
    edit(boards / "slo.json", lambda b: b["panels"][1]["targets"][0].update(expr="sum(rate("))
    results = run(settings, tmp_path, boards)
    assert {n: c["status"] for n, c in results.items()} == {
        "application": "passed",
        "infrastructure": "passed",
        "slo": "failed",
    }
    assert "Latency P95" in results["slo"]["message"] and "bad_data" in results["slo"]["message"]


def test_a_panel_on_a_metric_that_does_not_exist_fails(settings, tmp_path, boards) -> None:
    edit(
        boards / "application.json",
        lambda b: b["panels"][3]["targets"][0].update(expr="cronos_ai_up_renamed"),
    )
    results = run(settings, tmp_path, boards)
    assert results["application"]["status"] == "failed"
    assert "Service up [A]: no series" in results["application"]["message"]
    assert results["slo"]["status"] == results["infrastructure"]["status"] == "passed"


def test_a_file_grafana_would_not_load_fails(settings, tmp_path, boards) -> None:
    (boards / "infrastructure.json").write_text('{"title": "half a dashboard"')
    results = run(settings, tmp_path, boards)
    assert results["infrastructure"]["status"] == "failed"
    assert "not valid JSON" in results["infrastructure"]["message"]


def test_a_folder_without_dashboards_fails(settings, tmp_path) -> None:
    empty = tmp_path / "none"
    empty.mkdir()
    results = run(settings, tmp_path, empty)
    assert results["missing"]["status"] == "failed"
