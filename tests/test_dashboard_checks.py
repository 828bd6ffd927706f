"""MON-006 against a real sandbox's Prometheus: the shipped dashboards pass; a broken query,
a metric that does not exist, a file Grafana would not load and an empty folder fail.

Through Grafana's API (a test double of it, see FakeGrafana): dashboards deployed as in the
repository pass; one not deployed, one drifted from its file, one whose query returns nothing,
a Grafana that does not answer and a refused token fail."""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from opsverify import sandbox
from opsverify.drivers import grafana as dashboards
from opsverify.drivers import prometheus as prom
from opsverify.profile import Prometheus
from tests.helpers import (
    ROOT,
    Outcome,
    opsverify,
    readiness,
    running_sandbox,
    sandbox_ports,
    write_profile,
)

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


def execute(
    settings, tmp_path: Path, dashboards: dict, env: dict[str, str] | None = None
) -> tuple[dict[str, dict], Outcome]:
    """MON-006 with ``monitoring.dashboards`` set to ``dashboards``: results by parameter."""
    profile = write_profile(settings, tmp_path, monitoring__dashboards=dashboards)
    outcome = opsverify(
        "run",
        "--env",
        str(profile),
        "--run-dir",
        str(tmp_path / "run"),
        "-k",
        "MON-006",
        cwd=ROOT,
        env=env,
    )
    assert outcome.code in (0, 1), outcome.output
    return {c["parameter"]: c for c in readiness(tmp_path / "run")["checks"]}, outcome


def run(settings, tmp_path: Path, folder: Path) -> dict[str, dict]:
    return execute(settings, tmp_path, {"folder": str(folder)})[0]


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


def test_a_failing_query_is_named_with_its_panel(settings, tmp_path, boards) -> None:
    # Two panels of one dashboard broken: the message counts them and shows each one's PromQL.
    wrong_job = 'sum(rate(cronos_ai_http_requests_total{job="x"}[5m]))'

    def rename(board: dict) -> None:
        board["panels"][3]["targets"][0]["expr"] = "cronos_ai_up_renamed"
        board["panels"][1]["targets"][1]["expr"] = wrong_job

    edit(boards / "application.json", rename)
    results = run(settings, tmp_path, boards)
    message = results["application"]["message"]
    queries = len(dashboards.queries(dashboards.load(boards / "application.json")))
    assert f"2 of {queries} queries fail" in message, message
    assert "Service up [A]: no series: cronos_ai_up_renamed" in message, message
    assert f"Response times P50 / P95 / P99 [B]: no series: {wrong_job}" in message


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


# --- through Grafana's API -----------------------------------------------------------------


class FakeGrafana:
    """A test double of Grafana's HTTP API on 127.0.0.1: ``GET /api/health`` and
    ``GET /api/dashboards/uid/<uid>``, answering in Grafana's documented format (dashboard
    model + meta; 404 {"message": "Dashboard not found"}; 401 for a missing or wrong bearer
    token) from the dashboards a test deploys.

    A double, not Grafana: Grafana cannot be installed on the test machines (no package for
    them, its Go module is AGPL and not to be used, no internet), and MON-006 needs only
    these two read-only calls."""

    TOKEN_ENV = "OPSVERIFY_TEST_GRAFANA_TOKEN"

    def __init__(self) -> None:
        self.token = "glsa_" + secrets.token_urlsafe(24)  # a service-account token's shape
        self.dashboards: dict[str, dict] = {}
        self.authorizations: list[str] = []  # the Authorization headers that arrived
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def deploy(self, folder: Path) -> None:
        """Provision every dashboard file of ``folder``, as Grafana's file provider would."""
        for path in sorted(folder.glob("*.json")):
            board = json.loads(path.read_text())
            self.dashboards[board["uid"]] = board

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict]:
        if path == "/api/health":  # Grafana answers it without credentials
            return 200, {"commit": "0a1b2c3", "database": "ok", "version": "11.3.0"}
        self.authorizations.append(authorization or "")
        if authorization != f"Bearer {self.token}":
            return 401, {
                "message": "Invalid API key",
                "messageId": "api-key.invalid",
                "statusCode": 401,
                "traceID": "",
            }
        uid = path.removeprefix("/api/dashboards/uid/")
        if not path.startswith("/api/dashboards/uid/") or uid not in self.dashboards:
            return 404, {"message": "Dashboard not found"}
        board = self.dashboards[uid]
        slug = board["title"].lower().replace(" / ", "-").replace(" ", "-")
        meta = {
            "type": "db",
            "canSave": False,
            "canEdit": False,
            "canAdmin": False,
            "canStar": True,
            "slug": slug,
            "url": f"/d/{uid}/{slug}",
            "expires": "0001-01-01T00:00:00Z",
            "created": "2025-01-02T09:00:00Z",
            "updated": "2025-01-02T09:00:00Z",
            "updatedBy": "Anonymous",
            "createdBy": "Anonymous",
            "version": 1,
            "hasAcl": False,
            "isFolder": False,
            "folderId": 1,
            "folderUid": "cronos-ai",
            "folderTitle": "CRONOS AI",
            "folderUrl": "/dashboards/f/cronos-ai/cronos-ai",
            "provisioned": True,
            "provisionedExternalId": f"{uid}.json",
        }
        return 200, {"dashboard": {**board, "id": 1, "version": 1}, "meta": meta}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                status, body = fake.answer(self.path, self.headers.get("Authorization"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # the test's output is the check's, not the double's access log

        return Handler


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    fake = FakeGrafana()
    yield fake
    fake.close()


def via_grafana(
    settings,
    tmp_path: Path,
    grafana_url: str,
    token: str,
    folder: Path | None,
    **keys: object,
) -> tuple[dict[str, dict], Outcome]:
    """MON-006 against a Grafana at ``grafana_url``, the profile's token set to ``token``."""
    dashboards: dict = {
        "grafana": {
            "url": grafana_url,
            "auth": {"token": {"env": FakeGrafana.TOKEN_ENV}},
            "timeout": "5s",
            **keys,
        }
    }
    if folder is not None:
        dashboards["folder"] = str(folder)
    return execute(settings, tmp_path, dashboards, env={FakeGrafana.TOKEN_ENV: token})


def evidence_of(tmp_path: Path, result: dict, name: str) -> dict:
    """The JSON evidence a check attached under ``name`` (files are numbered in order)."""
    (path,) = [p for p in result["evidence"] if p.endswith(f"-{name}.json")]
    return json.loads((tmp_path / "run" / path).read_text())


def statuses(results: dict[str, dict]) -> dict[str, str]:
    return {name: c["status"] for name, c in results.items()}


SHIPPED = {"application", "infrastructure", "slo-dashboard"}  # the uids of dashboards/


def test_dashboards_deployed_as_in_the_repository_pass(settings, tmp_path, boards, grafana):
    grafana.deploy(boards)
    results, _ = via_grafana(settings, tmp_path, grafana.url, grafana.token, boards)
    assert statuses(results) == dict.fromkeys(SHIPPED, "passed")
    slo = results["slo-dashboard"]
    meta = evidence_of(tmp_path, slo, "grafana")
    assert meta["folder"] == "CRONOS AI" and meta["provisioned"] is True
    assert meta["version"] == 1 and meta["grafana_version"] == "11.3.0"
    assert meta["repository_file"] == str(boards / "slo.json")
    assert evidence_of(tmp_path, slo, "drift")["panels"] == []
    queries = evidence_of(tmp_path, slo, "panels")["queries"]
    assert len(queries) == 4 and all(q["series"] > 0 for q in queries)


def test_a_dashboard_not_deployed_fails_alone(settings, tmp_path, boards, grafana):
    grafana.deploy(boards)
    del grafana.dashboards["infrastructure"]
    results, _ = via_grafana(settings, tmp_path, grafana.url, grafana.token, boards)
    assert statuses(results) == {**dict.fromkeys(SHIPPED, "passed"), "infrastructure": "failed"}
    expected = f"dashboard infrastructure is not deployed in Grafana {grafana.url}"
    assert expected in results["infrastructure"]["message"]


def test_a_deployed_dashboard_that_drifted_from_its_file_fails(settings, tmp_path, boards, grafana):
    grafana.deploy(boards)
    # Someone edited the deployed dashboard in Grafana's UI; the query still works.
    grafana.dashboards["slo-dashboard"]["panels"][1]["targets"][0]["expr"] = (
        "histogram_quantile(0.99, sum by (le) (rate("
        "cronos_ai_http_request_duration_seconds_bucket[$__rate_interval])))"
    )
    results, _ = via_grafana(settings, tmp_path, grafana.url, grafana.token, boards)
    assert statuses(results) == {**dict.fromkeys(SHIPPED, "passed"), "slo-dashboard": "failed"}
    message = results["slo-dashboard"]["message"]
    assert "drifted from slo.json" in message and "Latency P95" in message
    assert "Availability" not in message
    (panel,) = evidence_of(tmp_path, results["slo-dashboard"], "drift")["panels"]
    assert panel["panel"].startswith("Latency P95") and "0.99" in panel["deployed"][0]


def test_a_deployed_query_without_series_fails(settings, tmp_path, boards, grafana):
    # Repository and Grafana agree, and both ask for a metric that does not exist.
    edit(
        boards / "application.json",
        lambda b: b["panels"][3]["targets"][0].update(expr="cronos_ai_up_renamed"),
    )
    grafana.deploy(boards)
    results, _ = via_grafana(settings, tmp_path, grafana.url, grafana.token, boards)
    assert results["application"]["status"] == "failed"
    assert "Service up [A]: no series" in results["application"]["message"]
    assert evidence_of(tmp_path, results["application"], "drift")["panels"] == []


def test_a_grafana_that_does_not_answer_fails(settings, tmp_path, boards) -> None:
    with socket.socket() as probe:  # a port nothing listens on once it is closed again
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    results, _ = via_grafana(settings, tmp_path, closed, "unused-token", boards)
    assert statuses(results) == dict.fromkeys(SHIPPED, "failed")
    for result in results.values():
        assert result["unreachable"] is True
        assert f"Grafana {closed} is unreachable" in result["message"]


def test_a_refused_token_fails_and_never_shows(settings, tmp_path, boards, grafana):
    grafana.deploy(boards)
    wrong = "glsa_" + secrets.token_urlsafe(24)
    results, outcome = via_grafana(settings, tmp_path, grafana.url, wrong, boards)
    assert statuses(results) == dict.fromkeys(SHIPPED, "failed")
    assert f"Bearer {wrong}" in grafana.authorizations  # it was sent, so it could have leaked
    expected = f"with the token env:{FakeGrafana.TOKEN_ENV}: 401 Invalid API key"
    assert all(expected in c["message"] for c in results.values())
    assert wrong not in outcome.output
    for path in (tmp_path / "run").rglob("*"):
        assert not path.is_file() or wrong.encode() not in path.read_bytes(), path


def test_listed_uids_missing_from_the_repository_are_checked_in_grafana_only(
    settings, tmp_path, boards, grafana
):
    grafana.deploy(boards)
    grafana.dashboards["security"] = {
        "uid": "security",
        "title": "CRONOS AI / Security",
        "panels": [{"id": 1, "title": "Targets up", "targets": [{"refId": "A", "expr": "up"}]}],
    }
    results, _ = via_grafana(
        settings, tmp_path, grafana.url, grafana.token, boards, uids=["slo-dashboard", "security"]
    )
    assert statuses(results) == {"slo-dashboard": "passed", "security": "passed"}
    security = results["security"]
    assert evidence_of(tmp_path, security, "grafana")["repository_file"] is None
    assert not [p for p in security["evidence"] if p.endswith("-drift.json")]
    assert evidence_of(tmp_path, security, "panels")["queries"][0]["series"] > 0
