"""MON-007 (log aggregation) and MON-008 (distributed tracing) through the real CLI.

Elasticsearch, OpenSearch, Loki, Jaeger, Tempo and Zipkin cannot be installed on the test
machine (no package, no Go or JVM toolchain, some under AGPL), so the checks meet a test
double instead: one HTTP server on 127.0.0.1 that answers these backends' query endpoints
in their documented response formats (Elasticsearch ``hits.total``/``hits.hits[].sort``,
Loki streams and vectors with nanosecond timestamps, Jaeger's ``data``/``processes`` with
microseconds, Tempo's ``traces`` with ``startTimeUnixNano``, Zipkin's list of span lists),
computed from log lines and traces each test sets: what the double answers depends on what
the check asked (service, time window, limit), as the real backends' would.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from opsverify.drivers.logs import NAMES
from tests.helpers import ROOT, opsverify, readiness, run_selected

SERVICE = "cronos-ai"
SELECT = "MON-007 or MON-008"
TOKEN_ENV = "OPSVERIFY_TEST_OBSERVABILITY_TOKEN"
LOG_KEYS = {
    "elasticsearch": {"index": "logs-*"},
    "opensearch": {"index": "logs-*"},
    "loki": {"selector": f'{{service="{SERVICE}"}}'},
}
# Each pair runs together: a log backend for MON-007 and a trace backend for MON-008.
PAIRS = [("elasticsearch", "jaeger"), ("opensearch", "tempo"), ("loki", "zipkin")]


def ago(delta: timedelta) -> datetime:
    # Whole seconds, so the time a failure message shows is exactly the one the test set.
    return (datetime.now(UTC) - delta).replace(microsecond=0)


def _us(at: datetime) -> int:
    return int(at.timestamp()) * 1_000_000


@dataclass
class Backends:
    """The double: what it holds (set by the test), and what it was asked."""

    lines: list[tuple[str, datetime]] = field(default_factory=list)  # (service, time)
    traces: list[tuple[str, datetime]] = field(default_factory=list)  # (service, start)
    status: int = 200  # anything else: every query answers this, in the backend's format
    token: str | None = None  # when set, every request must carry it as a bearer token
    authorizations: list[str] = field(default_factory=list)
    url: str = ""

    def answer(self, path: str, query: dict[str, str], authorization: str) -> tuple[int, Any]:
        self.authorizations.append(authorization)
        if self.token and authorization != f"Bearer {self.token}":
            return 401, {"error": {"type": "security_exception", "reason": "unauthorized"}}
        if self.status != 200:
            return self.status, self._error(path)
        if path.endswith("/_search"):
            return 200, self._elasticsearch(json.loads(query["source"]))
        routes = {
            "/loki/api/v1/query_range": self._loki_lines,
            "/loki/api/v1/query": self._loki_count,
            "/api/services": self._jaeger_services,
            "/api/traces": self._jaeger_traces,
            "/api/search": self._tempo_search,
            "/api/v2/traces": self._zipkin_traces,
        }
        return (200, routes[path](query)) if path in routes else (404, "404 page not found")

    def _error(self, path: str) -> Any:
        if path.endswith("/_search"):
            reason = "all shards failed"
            error = {"type": "search_phase_execution_exception", "reason": reason}
            return {"error": {**error, "root_cause": [], "phase": "query"}, "status": 500}
        if path in ("/api/services", "/api/traces"):  # Jaeger's JSON envelope
            errors = [{"code": 500, "msg": "plugin error: connection refused"}]
            return {"data": None, "total": 0, "limit": 0, "offset": 0, "errors": errors}
        return "rpc error: code = Unavailable desc = no healthy ingester"  # Loki, Tempo, Zipkin

    def _elasticsearch(self, body: dict) -> dict:
        filters = body["query"]["bool"]["filter"]
        (service,) = next(f["match_phrase"] for f in filters if "match_phrase" in f).items()
        ((field_, bounds),) = next(f["range"] for f in filters if "range" in f).items()
        seconds = int(re.fullmatch(r"now-(\d+)s", bounds["gte"])[1])
        assert service[0] == "service.name" and field_ == "@timestamp", body  # ECS defaults
        now = datetime.now(UTC)
        found = _newest_first(self.lines, service[1], now - timedelta(seconds=seconds), now)
        limit = body["track_total_hits"]
        hits = [
            {
                "_index": f"logs-{SERVICE}-{at:%Y.%m.%d}",
                "_id": f"line-{at.timestamp():.0f}",
                "_score": None,
                "_source": {"@timestamp": at.isoformat(), "service": {"name": service[1]}},
                "sort": [int(at.timestamp() * 1000)],
            }
            for at in found[: body["size"]]
        ]
        total = {"value": min(len(found), limit), "relation": "gte" if len(found) > limit else "eq"}
        shards = {"total": 3, "successful": 3, "skipped": 0, "failed": 0}
        return {
            "took": 4,
            "timed_out": False,
            "_shards": shards,
            "hits": {"total": total, "max_score": None, "hits": hits},
        }

    def _selected(self, logql: str) -> str:
        return re.search(r'\{service="([^"]+)"\}', logql)[1]

    def _loki_lines(self, query: dict[str, str]) -> dict:
        assert query["direction"] == "backward", query
        since, until = (datetime.fromtimestamp(int(query[k]) / 1e9, UTC) for k in ("start", "end"))
        found = _newest_first(self.lines, self._selected(query["query"]), since, until)
        values = [[str(int(at.timestamp()) * 10**9), "GET /health 200"] for at in found]
        values = values[: int(query["limit"])]
        streams = [{"stream": {"service": SERVICE, "level": "info"}, "values": values}]
        result = streams if values else []
        return {"status": "success", "data": {"resultType": "streams", "result": result}}

    def _loki_count(self, query: dict[str, str]) -> dict:
        seconds = int(re.search(r"\[(\d+)s\]\)\)$", query["query"])[1])
        until = datetime.fromtimestamp(int(query["time"]) / 1e9, UTC)
        since = until - timedelta(seconds=seconds)
        count = len(_newest_first(self.lines, self._selected(query["query"]), since, until))
        vector = [{"metric": {}, "value": [until.timestamp(), str(count)]}] if count else []
        return {"status": "success", "data": {"resultType": "vector", "result": vector}}

    def _jaeger_services(self, _query: dict[str, str]) -> dict:
        names = sorted({name for name, _ in self.traces}) or None
        return {"data": names, "total": len(names or []), "limit": 0, "offset": 0, "errors": None}

    def _jaeger_traces(self, query: dict[str, str]) -> dict:
        since, until = (datetime.fromtimestamp(int(query[k]) / 1e6, UTC) for k in ("start", "end"))
        found = _newest_first(self.traces, query["service"], since, until)
        found = found[: int(query["limit"])]
        return {
            "data": [_jaeger_trace(query["service"], at) for at in found],
            "total": 0,
            "limit": 0,
            "offset": 0,
            "errors": None,
        }

    def _tempo_search(self, query: dict[str, str]) -> dict:
        service = re.fullmatch(r'service\.name="([^"]+)"', query["tags"])[1]
        since, until = (datetime.fromtimestamp(int(query[k]), UTC) for k in ("start", "end"))
        found = _newest_first(self.traces, service, since, until)[: int(query["limit"])]
        answer: dict[str, Any] = {"metrics": {"inspectedBytes": "48213", "completedJobs": 1}}
        if found:  # protobuf JSON leaves an empty list out
            answer["traces"] = [
                {
                    "traceID": f"{_us(at):032x}",
                    "rootServiceName": service,
                    "rootTraceName": "GET /api/v1/items",
                    "startTimeUnixNano": str(_us(at) * 1000),
                    "durationMs": 3,
                }
                for at in found
            ]
        return answer

    def _zipkin_traces(self, query: dict[str, str]) -> list:
        until = datetime.fromtimestamp(int(query["endTs"]) / 1000, UTC)
        since = until - timedelta(milliseconds=int(query["lookback"]))
        found = _newest_first(self.traces, query["serviceName"], since, until)
        found = found[: int(query["limit"])]
        return [
            [
                {
                    "traceId": f"{_us(at):016x}",
                    "id": f"{_us(at):016x}",
                    "kind": "SERVER",
                    "name": "get /api/v1/items",
                    "timestamp": _us(at),
                    "duration": 1800,
                    "localEndpoint": {"serviceName": query["serviceName"].lower()},
                }
            ]
            for at in found
        ]


def _newest_first(
    items: list[tuple[str, datetime]], service: str, since: datetime, until: datetime
) -> list[datetime]:
    found = [at for name, at in items if name == service and since <= at <= until]
    return sorted(found, reverse=True)


def _jaeger_trace(service: str, at: datetime) -> dict:
    """A trace as Jaeger's query API shows it: the service's span and a database span."""
    trace_id = f"{_us(at):032x}"
    spans = [
        {"spanID": "a1", "processID": "p1", "operationName": "GET /api/v1/items", "start": 0},
        {"spanID": "b2", "processID": "p2", "operationName": "SELECT items", "start": 150},
    ]
    return {
        "traceID": trace_id,
        "spans": [
            {
                "traceID": trace_id,
                "spanID": s["spanID"],
                "flags": 1,
                "operationName": s["operationName"],
                "references": [],
                "startTime": _us(at) + s["start"],
                "duration": 900,
                "tags": [],
                "logs": [],
                "processID": s["processID"],
                "warnings": None,
            }
            for s in spans
        ],
        "processes": {
            "p1": {"serviceName": service, "tags": []},
            "p2": {"serviceName": "postgresql", "tags": []},
        },
        "warnings": None,
    }


def _handler(backends: Backends) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            authorization = self.headers.get("Authorization", "")
            status, body = backends.answer(parts.path, query, authorization)
            text = isinstance(body, str)
            data = (body if text else json.dumps(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if text else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # the test's output is the checks', not the double's access log

    return Handler


@pytest.fixture
def backends() -> Iterator[Backends]:
    """The double, listening on a free port (bound before the fixture returns: no start-up
    wait), stopped at the end of the test."""
    state = Backends()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def write_profile(folder: Path, url: str, pair: tuple[str, str] | None, **extra: Any) -> Path:
    """A profile with only what these checks read; ``extra`` goes into both backends."""
    monitoring: dict[str, Any] = {}
    if pair:
        log_kind, trace_kind = pair
        monitoring["logs"] = {"kind": log_kind, "url": url, **LOG_KEYS[log_kind], **extra}
        monitoring["tracing"] = {"kind": trace_kind, "url": url, **extra}
    data = {
        "name": "observability",
        "tier": "staging",
        "service": {"name": SERVICE, "base_url": "https://cronos-ai.invalid"},
        "monitoring": monitoring,
    }
    path = folder / "observability.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(tmp_path: Path, url: str, pair: tuple[str, str] | None) -> dict[str, dict]:
    """Both checks against the backends at ``url``: check id → its one result."""
    results = run_selected(write_profile(tmp_path, url, pair), tmp_path / "run", SELECT)
    assert sorted(results) == ["MON-007", "MON-008"], results
    assert all(len(instances) == 1 for instances in results.values()), results
    return {check_id: instances[0] for check_id, instances in results.items()}


def evidence_of(tmp_path: Path, result: dict) -> dict:
    (path,) = result["evidence"]
    return json.loads((tmp_path / "run" / path).read_text())


def closed_port_url() -> str:
    with socket.socket() as probe:  # a port nothing listens on once it is closed again
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.parametrize("pair", PAIRS, ids=["-".join(p) for p in PAIRS])
def test_fresh_data_passes(tmp_path, backends, pair) -> None:
    line_at, trace_at = ago(timedelta(minutes=2)), ago(timedelta(minutes=3))
    backends.lines = [(SERVICE, line_at), (SERVICE, ago(timedelta(hours=1)))]
    backends.traces = [(SERVICE, trace_at), (SERVICE, ago(timedelta(hours=3)))]
    results = run(tmp_path, backends.url, pair)
    assert {r["status"] for r in results.values()} == {"passed"}, results
    assert results["MON-007"]["parameter"] == pair[0]
    assert results["MON-008"]["parameter"] == pair[1]
    logged = evidence_of(tmp_path, results["MON-007"])
    assert logged["count"] == 1  # the line of an hour ago is outside the 15-minute window
    assert logged["newest"] == line_at.isoformat()
    assert logged["service"] == SERVICE and logged["within_seconds"] == 900
    assert all(r.startswith(backends.url) for r in logged["requests"])
    traced = evidence_of(tmp_path, results["MON-008"])
    assert traced["count"] == 1 and traced["newest"] == trace_at.isoformat()
    assert traced["newest_item"]["trace_id"]
    assert (traced["services_known"] == [SERVICE]) == (pair[1] == "jaeger")


@pytest.mark.parametrize("pair", PAIRS, ids=["-".join(p) for p in PAIRS])
def test_only_old_data_fails_naming_the_newest(tmp_path, backends, pair) -> None:
    line_at, trace_at = ago(timedelta(hours=2)), ago(timedelta(hours=5))
    backends.lines = [(SERVICE, line_at), (SERVICE, ago(timedelta(hours=3)))]
    backends.traces = [(SERVICE, trace_at)]
    results = run(tmp_path, backends.url, pair)
    assert {r["status"] for r in results.values()} == {"failed"}, results
    logs, traces = results["MON-007"]["message"], results["MON-008"]["message"]
    assert f"no log lines for service {SERVICE} in the last 15m in {NAMES[pair[0]]}" in logs
    assert f"the newest is from {line_at:%Y-%m-%d %H:%M:%S} UTC, 2h ago" in logs
    assert f"no traces for service {SERVICE} in the last 15m in {NAMES[pair[1]]}" in traces
    assert f"the newest is from {trace_at:%Y-%m-%d %H:%M:%S} UTC, 5h ago" in traces
    assert not results["MON-007"]["unreachable"] and not results["MON-008"]["unreachable"]
    assert evidence_of(tmp_path, results["MON-007"])["newest"] == line_at.isoformat()


@pytest.mark.parametrize("pair", PAIRS, ids=["-".join(p) for p in PAIRS])
def test_no_data_for_the_service_fails(tmp_path, backends, pair) -> None:
    backends.lines = [("billing", ago(timedelta(minutes=1)))]
    backends.traces = [("billing", ago(timedelta(minutes=1)))]
    results = run(tmp_path, backends.url, pair)
    assert {r["status"] for r in results.values()} == {"failed"}, results
    assert f"no log lines for service {SERVICE} in the last 15m" in results["MON-007"]["message"]
    assert "none in the last 1d either" in results["MON-007"]["message"]
    traces = results["MON-008"]["message"]
    if pair[1] == "jaeger":  # Jaeger lists the services it ever stored
        assert f"Jaeger does not know service {SERVICE}" in traces
        assert "(services it knows: billing)" in traces
    else:
        assert f"no traces for service {SERVICE} in the last 15m" in traces
        assert "none in the last 1d either" in traces


@pytest.mark.parametrize("pair", PAIRS, ids=["-".join(p) for p in PAIRS])
def test_a_backend_that_is_down_fails_unreachable(tmp_path, pair) -> None:
    url = closed_port_url()
    results = run(tmp_path, url, pair)
    for check_id, kind in zip(("MON-007", "MON-008"), pair, strict=True):
        result = results[check_id]
        assert result["status"] == "failed" and result["unreachable"] is True, result
        assert f"{NAMES[kind]} at {url}/" in result["message"]
        assert "cannot be reached: ConnectError" in result["message"]


@pytest.mark.parametrize("pair", PAIRS, ids=["-".join(p) for p in PAIRS])
def test_a_backend_answering_500_fails_with_its_reason(tmp_path, backends, pair) -> None:
    backends.status = 500
    backends.lines = [(SERVICE, ago(timedelta(minutes=1)))]
    backends.traces = [(SERVICE, ago(timedelta(minutes=1)))]
    results = run(tmp_path, backends.url, pair)
    search = "search_phase_execution_exception: all shards failed"
    reasons = {"elasticsearch": search, "opensearch": search}
    reasons["jaeger"] = "plugin error: connection refused"
    for check_id, kind in zip(("MON-007", "MON-008"), pair, strict=True):
        result = results[check_id]
        assert result["status"] == "failed" and not result["unreachable"], result
        reason = reasons.get(kind, "rpc error: code = Unavailable desc = no healthy ingester")
        assert f"{NAMES[kind]} at {backends.url}/" in result["message"]
        assert f"answered HTTP 500: {reason}" in result["message"]


def test_the_token_is_sent_and_never_written(tmp_path, backends) -> None:
    backends.token = secrets.token_urlsafe(24)
    backends.lines = [(SERVICE, ago(timedelta(minutes=1)))]
    backends.traces = [(SERVICE, ago(timedelta(minutes=1)))]
    auth = {"auth": {"token": {"env": TOKEN_ENV}}}
    profile = write_profile(tmp_path, backends.url, ("elasticsearch", "jaeger"), **auth)
    outcome = opsverify(
        *("run", "--env", str(profile), "--run-dir", str(tmp_path / "run"), "-k", SELECT),
        cwd=ROOT,
        env={TOKEN_ENV: backends.token},
    )
    assert outcome.code == 0, outcome.output
    statuses = {c["id"]: c["status"] for c in readiness(tmp_path / "run")["checks"]}
    assert statuses == {"MON-007": "passed", "MON-008": "passed"}
    assert set(backends.authorizations) == {f"Bearer {backends.token}"}
    assert backends.token not in outcome.output
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 5  # readiness, junit, manifest, evidence, history…
    leaked = [p for p in written if backends.token.encode() in p.read_bytes()]
    assert not leaked, leaked


def test_a_refused_token_fails_and_never_shows(tmp_path, backends) -> None:
    backends.token = secrets.token_urlsafe(24)
    wrong = secrets.token_urlsafe(24)
    auth = {"auth": {"token": {"env": TOKEN_ENV}}}
    profile = write_profile(tmp_path, backends.url, ("loki", "tempo"), **auth)
    outcome = opsverify(
        *("run", "--env", str(profile), "--run-dir", str(tmp_path / "run"), "-k", SELECT),
        cwd=ROOT,
        env={TOKEN_ENV: wrong},
    )
    assert outcome.code == 1, outcome.output
    checks = readiness(tmp_path / "run")["checks"]
    assert all("answered HTTP 401: security_exception" in c["message"] for c in checks), checks
    assert f"Bearer {wrong}" in backends.authorizations  # sent, so it could have leaked
    assert wrong not in outcome.output
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and wrong.encode() in p.read_bytes()]


def test_a_profile_without_backends_makes_both_checks_not_applicable(tmp_path) -> None:
    results = run(tmp_path, "", None)
    assert results["MON-007"]["status"] == results["MON-008"]["status"] == "not_applicable"
    expected = "no log aggregation backend configured (monitoring.logs)"
    assert results["MON-007"]["message"] == expected
    assert results["MON-008"]["message"] == "no tracing backend configured (monitoring.tracing)"
