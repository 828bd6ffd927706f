"""Distributed tracing driver: the query APIs of Jaeger, Tempo and Zipkin.

Each answers one question about one service: how many of its traces started within the
profile's window, and when its newest span started. Jaeger also says which services it has
ever stored, which tells "the service never sent a trace" from "it stopped".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from opsverify.drivers.logs import LOOK_BACK, Recent, answer_shape, fetch
from opsverify.profile import TraceBackend

TRACE_LIMIT = 20  # traces asked for: enough to count a few, small enough to stay cheap


def _found(url: str, traces: int, spans: list[tuple[float, str]]) -> Recent:
    """A Recent from (start in seconds since the epoch, trace id) of the service's spans."""
    if not spans:
        return Recent(traces, None, {}, [url], capped=traces >= TRACE_LIMIT)
    at, trace_id = max(spans)
    newest = datetime.fromtimestamp(at, UTC)
    return Recent(traces, newest, {"trace_id": trace_id}, [url], capped=traces >= TRACE_LIMIT)


def _jaeger(backend: TraceBackend, window: timedelta) -> Recent:
    end = time.time_ns() // 1000  # Jaeger's start and end are microseconds
    start = end - int(window.total_seconds() * 1e6)
    params = {"service": backend.service, "start": start, "end": end, "limit": TRACE_LIMIT}
    url, answer = fetch(backend, "/api/traces", params)
    with answer_shape(backend, "/api/traces"):
        # {"data": [{"traceID", "spans": [{"startTime" (µs), "processID"…}], "processes":
        # {"p1": {"serviceName"…}}}]}: a trace holds the spans of every service it crossed.
        traces = answer["data"] or []
        spans = [
            (span["startTime"] / 1e6, trace["traceID"])
            for trace in traces
            for span in trace["spans"]
            if trace["processes"][span["processID"]]["serviceName"] == backend.service
        ]
    return _found(url, len(traces), spans)


def _tempo(backend: TraceBackend, window: timedelta) -> Recent:
    end = int(time.time())  # Tempo's start and end are seconds
    start = end - int(window.total_seconds())
    tags = f"service.name={json.dumps(backend.service)}"  # logfmt, the value quoted
    params = {"tags": tags, "start": start, "end": end, "limit": TRACE_LIMIT}
    url, answer = fetch(backend, "/api/search", params)
    with answer_shape(backend, "/api/search"):
        # {"traces": [{"traceID", "rootServiceName", "startTimeUnixNano": "<ns>"…}]}; an
        # empty list is left out of Tempo's (protobuf) JSON altogether.
        traces = answer.get("traces", [])
        spans = [(int(t["startTimeUnixNano"]) / 1e9, t["traceID"]) for t in traces]
    return _found(url, len(traces), spans)


def _zipkin(backend: TraceBackend, window: timedelta) -> Recent:
    params = {
        "serviceName": backend.service,
        "endTs": time.time_ns() // 1_000_000,  # milliseconds, as is lookback
        "lookback": int(window.total_seconds() * 1000),
        "limit": TRACE_LIMIT,
    }
    url, answer = fetch(backend, "/api/v2/traces", params)
    service = str(backend.service).lower()  # Zipkin stores service names lower-cased
    with answer_shape(backend, "/api/v2/traces"):
        # A list of traces, each a list of spans {"traceId", "timestamp" (µs), "localEndpoint":
        # {"serviceName"}…}; a span may lack its timestamp.
        spans = [
            (span["timestamp"] / 1e6, span["traceId"])
            for trace in answer
            for span in trace
            if "timestamp" in span
            and span.get("localEndpoint", {}).get("serviceName", "").lower() == service
        ]
    return _found(url, len(answer), spans)


def _jaeger_services(backend: TraceBackend) -> tuple[str, list[str]]:
    url, answer = fetch(backend, "/api/services", {})
    with answer_shape(backend, "/api/services"):
        return url, sorted(answer["data"] or [])  # {"data": ["<service>", …]}


_SEARCH: dict[str, Callable[[TraceBackend, timedelta], Recent]] = {
    "jaeger": _jaeger,
    "tempo": _tempo,
    "zipkin": _zipkin,
}


def recent(backend: TraceBackend) -> Recent:
    """The backend's traces of ``backend.service``: how many started within ``backend.within``,
    and the newest span (looked for as far back as LOOK_BACK when none is that recent)."""
    asked: list[str] = []
    services = None
    if backend.kind == "jaeger":
        url, services = _jaeger_services(backend)
        asked.append(url)
        if backend.service not in services:
            return Recent(0, None, {}, asked, services=services)
    search = _SEARCH[backend.kind]
    found = search(backend, backend.within)
    if not found.count:  # how old is the newest trace, then?
        older = search(backend, LOOK_BACK)
        found = replace(older, count=0, capped=False, requests=found.requests + older.requests)
    return replace(found, requests=asked + found.requests, services=services)
