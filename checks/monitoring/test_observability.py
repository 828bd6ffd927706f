"""Handbook › Monitoring › "Log aggregation working", "Distributed tracing enabled";
Monitoring and Observability › Log Analysis (Kibana), Tracing (Jaeger)."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from opsverify import check
from opsverify.drivers import logs, tracing
from opsverify.profile import LogBackend, TraceBackend

B = TypeVar("B", LogBackend, TraceBackend)


def _ask(recent: Callable[[B], logs.Recent], backend: B) -> logs.Recent:
    """The driver's answer; a backend's refusal fails the check in the backend's own words."""
    try:
        return recent(backend)
    except logs.BackendError as exc:
        raise AssertionError(str(exc)) from None


def _span(delta: timedelta) -> str:
    """15m, 2h 5m, 1d 3h: a window or an age as people write it (seconds only under an hour)."""
    seconds = int(delta.total_seconds())
    units = [("d", seconds // 86400), ("h", seconds // 3600 % 24), ("m", seconds // 60 % 60)]
    if seconds < 3600:
        units.append(("s", seconds % 60))
    return " ".join(f"{n}{unit}" for unit, n in units if n) or "0s"


def _newest(found: logs.Recent) -> str:
    if found.newest is None:
        return f"none in the last {_span(logs.LOOK_BACK)} either"
    age = datetime.now(UTC) - found.newest
    return f"the newest is from {found.newest:%Y-%m-%d %H:%M:%S} UTC, {_span(age)} ago"


def _record(backend: LogBackend | TraceBackend, found: logs.Recent) -> dict[str, Any]:
    """What was asked and what came back, for the evidence."""
    return {
        "kind": backend.kind,
        "service": backend.service,
        "within_seconds": backend.within.total_seconds(),
        "look_back_seconds": logs.LOOK_BACK.total_seconds(),
        "requests": found.requests,
        "count": found.count,
        "count_capped": found.capped,
        "newest": found.newest.isoformat() if found.newest else None,
        "newest_item": found.newest_item,
        "services_known": found.services,
    }


@check(
    "MON-007",
    "The log backend holds log lines of the service newer than the profile's window",
    category="monitoring",
    severity="high",
    cadences=["predeploy", "daily"],
    controls=["ISO27001:A.8.15", "SOC2:CC7.2"],
    runbook="runbooks/logging.md",
)
def test_log_aggregation_working(log_backend, evidence):
    found = _ask(logs.recent, log_backend)
    evidence.json("log-lines", _record(log_backend, found))
    assert found.count, (
        f"no log lines for service {log_backend.service} in the last "
        f"{_span(log_backend.within)} in {logs.NAMES[log_backend.kind]}; {_newest(found)}"
    )


@check(
    "MON-008",
    "The tracing backend holds traces of the service newer than the profile's window",
    category="monitoring",
    severity="high",
    cadences=["predeploy", "daily"],
    controls=["SOC2:CC7.2", "ISO27001:A.8.16"],
    runbook="runbooks/tracing.md",
)
def test_distributed_tracing_enabled(trace_backend, evidence):
    found = _ask(tracing.recent, trace_backend)
    evidence.json("traces", _record(trace_backend, found))
    name = logs.NAMES[trace_backend.kind]
    if found.services is not None:
        assert trace_backend.service in found.services, (
            f"{name} does not know service {trace_backend.service}: it never stored a trace "
            f"of it (services it knows: {', '.join(found.services[:20]) or 'none'})"
        )
    assert found.count, (
        f"no traces for service {trace_backend.service} in the last "
        f"{_span(trace_backend.within)} in {name}; {_newest(found)}"
    )
