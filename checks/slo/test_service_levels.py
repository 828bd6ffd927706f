"""Handbook › Monitoring › Service Level Indicators (availability > 99.9 %, P95 latency < 500 ms,
error rate < 1 %, throughput > 1000 req/s), read passively from Prometheus over ``slo.window``;
and the SLOs with error budgets (``slo.objectives``, ``slo.specs``): budget left and
multi-window multi-burn-rate status. Every PromQL expression and its result is evidence; an
SLI without samples fails."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from opsverify import family, not_applicable, slo
from opsverify.drivers import prometheus as prom
from opsverify.history import ACTIVITY_WAIT_S, HistoryError

# Availability and errors; latency and throughput (capacity); error budgets (both).
slo_check, capacity_check, budget_check = (
    family(
        category="slo",
        controls=controls,
        runbook="runbooks/slo.md",
        cadences=["predeploy", "daily"],
    )
    for controls in (
        ["SOC2:A1.2", "ISO27001:A.8.16"],
        ["SOC2:A1.1", "ISO27001:A.8.6", "ISO27001:A.8.16"],
        ["SOC2:A1.1", "SOC2:A1.2", "ISO27001:A.8.16"],
    )
)


@contextmanager
def measuring(prometheus, evidence) -> Iterator[slo.Reader]:
    """PromQL against the profile's Prometheus: every expression and its result is kept as
    evidence, and an SLI without samples fails the check."""
    reader = slo.Reader(partial(prom.query, prometheus))
    try:
        yield reader
    except slo.NoSamples as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None
    finally:
        evidence.json("queries", reader.log)


def span(window: timedelta) -> str:
    return slo.promql_duration(window)


@slo_check("SLO-001", "Availability over the SLO window meets its objective", severity="high")
@pytest.mark.reads_history  # the windows drills and chaos experiments declared
@pytest.mark.timeout(ACTIVITY_WAIT_S + 60)
def test_availability(prometheus, sli_metrics, profile, history, evidence):
    """Availability is what users saw, over ``slo.window`` (W seconds)::

        availability = (1 - 5xx / requests) x (1 - unavailable / W)
        unavailable  = failed / scrapes x (W - declared) + outage

    5xx and requests: what the service counted; failed and scrapes: scrapes of its targets
    (``slo.metrics.targets``) outside the windows that activities (a failover drill, a chaos
    experiment) declared in the history: a process that is down answers nothing and counts
    no failure; declared: the part of W inside those windows, where the targets were stopped
    on purpose and their scrapes are not counted; outage: the seconds those activities
    measured, through the load balancer, that users could not be served. Without targets the
    second factor is 1."""
    window, now = profile.slo.window, datetime.now(UTC)
    try:
        declared = history.declared_windows(since=now - window)
    except HistoryError as exc:
        raise AssertionError(str(exc)) from None
    with measuring(prometheus, evidence) as reader:
        ratio = slo.error_ratio(reader, slo.requests(sli_metrics), window)
        targets = sli_metrics.targets
        up = None if targets is None else slo.uptime(reader, targets, window, declared, now)
    found = slo.Availability(ratio, up)
    evidence.json("availability", found.as_json())
    evidence.measure(
        availability_percent=100 * found.share,
        uptime_percent=None if up is None else 100 * up.share,
    )
    target = profile.slo.availability
    assert 100 * found.share > target, (
        f"availability {100 * found.share:.3f}% ({found.explain()}); the objective is above"
        f" {target:g}%"
    )


def latency(prometheus, sli_metrics, profile, evidence, q: float, limit: timedelta) -> None:
    window = profile.slo.window
    with measuring(prometheus, evidence) as reader:
        seconds = slo.quantile(reader, sli_metrics, q, window)
    name = f"P{100 * q:g}"
    evidence.measure(**{f"{name.lower()}_ms": 1000 * seconds})
    assert seconds < limit.total_seconds(), (
        f"{name} latency {1000 * seconds:.0f} ms over {span(window)}; the objective is below"
        f" {1000 * limit.total_seconds():.0f} ms"
    )


@capacity_check(
    "SLO-002", "P95 latency over the SLO window is below its objective", severity="high"
)
def test_latency_p95(prometheus, sli_metrics, profile, evidence):
    latency(prometheus, sli_metrics, profile, evidence, 0.95, profile.slo.latency_p95)


@capacity_check(
    "SLO-003", "P99 latency over the SLO window is below its objective", severity="medium"
)
def test_latency_p99(prometheus, sli_metrics, profile, evidence):
    if profile.slo.latency_p99 is None:
        not_applicable("no P99 latency objective configured (slo.latency_p99)")
    latency(prometheus, sli_metrics, profile, evidence, 0.99, profile.slo.latency_p99)


@slo_check("SLO-004", "Error rate over the SLO window is below its objective", severity="high")
def test_error_rate(prometheus, sli_metrics, profile, evidence):
    with measuring(prometheus, evidence) as reader:
        ratio = slo.error_ratio(reader, slo.requests(sli_metrics), profile.slo.window)
    limit = profile.slo.error_rate
    evidence.measure(error_rate_percent=100 * ratio.error_ratio)
    assert 100 * ratio.error_ratio < limit, (
        f"error rate {100 * ratio.error_ratio:.3f}% ({slo.counted(ratio)});"
        f" the objective is below {limit:g}%"
    )


@capacity_check(
    "SLO-005", "The service carried its throughput objective in the window", severity="medium"
)
def test_throughput(prometheus, sli_metrics, profile, evidence):
    """Passive throughput says how much traffic there was, not what the service could take:
    this reads ``throughput_rps`` as a rate the service has *demonstrably* carried. The peak
    rate of successful (non-5xx) answers, averaged over a minute (1/1440 of windows longer
    than a day: 30 min for 30 days), anywhere in the window must exceed it; real traffic or a
    load test reaches it, a quiet window fails (capacity unproven, not the service slow)."""
    window = profile.slo.window
    with measuring(prometheus, evidence) as reader:
        peak = slo.peak_rate(reader, sli_metrics, window)
    evidence.measure(peak_rps=peak)
    target = profile.slo.throughput_rps
    interval = span(slo.peak_interval(window))
    assert peak > target, (
        f"peak {peak:.2f} req/s of successful answers ({interval} average) within"
        f" {span(window)}; the objective is above {target:g} req/s"
    )


@budget_check("SLO-006", "The SLO's error budget is not exhausted", severity="high")
def test_error_budget(prometheus, slo_objective, evidence):
    with measuring(prometheus, evidence) as reader:
        ratio = slo.error_ratio(reader, slo.indicator(slo_objective), slo_objective.window)
    budget = slo.Budget(slo_objective.objective, ratio.error_ratio)
    figures = budget.as_json()
    evidence.json("budget", {"objective": slo_objective.key, **figures})
    evidence.measure(
        sli_percent=figures["sli_percent"],
        budget_remaining_percent=figures["budget_remaining_percent"],
    )
    assert budget.remaining > 0, (
        f"{slo_objective.key}: error budget exhausted, {100 * budget.spent:.0f}% spent:"
        f" SLI {figures['sli_percent']:.3f}% over {span(ratio.window)}, the objective is"
        f" {slo_objective.objective:g}%"
    )


@budget_check("SLO-007", "The SLO's error budget is not burning fast (burn rates)", severity="high")
def test_burn_rate(prometheus, slo_objective, evidence):
    with measuring(prometheus, evidence) as reader:
        pairs, empty = slo.burn_rates(reader, slo_objective)
        table = [pair.as_json() for pair in pairs]
        evidence.json("burn_rates", {"objective": slo_objective.key, "pairs": table})
        burns = [(p.long, p.long_burn) for p in pairs] + [(p.short, p.short_burn) for p in pairs]
        evidence.measure(**{f"burn_{span(window)}": burn for window, burn in burns})
        if empty:
            raise slo.NoSamples("; ".join(empty))
    burning = [
        f"{row['long_window']}/{row['short_window']} at {row['long_burn_rate']:.1f}x and"
        f" {row['short_burn_rate']:.1f}x (limit {row['factor']:g}x)"
        for row in table
        if row["burning"]
    ]
    assert not burning, f"{slo_objective.key} burns its error budget: {'; '.join(burning)}"
