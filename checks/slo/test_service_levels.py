"""Handbook › Monitoring › Service Level Indicators (availability > 99.9 %, P95 latency < 500 ms,
error rate < 1 %, throughput > 1000 req/s), read passively from Prometheus over ``slo.window``;
and the SLOs with error budgets (``slo.objectives``, ``slo.specs``): budget left and
multi-window multi-burn-rate status. Every PromQL expression and its result is evidence; an
SLI without samples fails."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import partial

import pytest

from opsverify import family, not_applicable, slo
from opsverify.drivers import prometheus as prom

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


def requests_ratio(prometheus, sli_metrics, profile, evidence) -> tuple[slo.Ratio, float | None]:
    """5xx answers among all requests over slo.window, and the share of successful scrapes
    of the service's targets when the profile names them."""
    window = profile.slo.window
    with measuring(prometheus, evidence) as reader:
        ratio = slo.error_ratio(reader, slo.requests(sli_metrics), window)
        targets = sli_metrics.targets
        up = None if targets is None else slo.uptime(reader, targets, window)
    return ratio, up


def counted(ratio: slo.Ratio) -> str:
    return f"{ratio.bad:.0f} 5xx of {ratio.total:.0f} requests in {span(ratio.window)}"


@slo_check("SLO-001", "Availability over the SLO window meets its objective", severity="high")
def test_availability(prometheus, sli_metrics, profile, evidence):
    ratio, up = requests_ratio(prometheus, sli_metrics, profile, evidence)
    target = profile.slo.availability
    served = 100 * (1 - ratio.error_ratio)
    evidence.measure(availability_percent=served, uptime_percent=None if up is None else 100 * up)
    assert served > target, (
        f"availability {served:.3f}% ({counted(ratio)}); the objective is above {target:g}%"
    )
    assert up is None or 100 * up > target, (
        f"the service's targets were up for {100 * up:.3f}% of scrapes in {span(ratio.window)};"
        f" the objective is above {target:g}%"
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
    ratio, _ = requests_ratio(prometheus, sli_metrics, profile, evidence)
    limit = profile.slo.error_rate
    evidence.measure(error_rate_percent=100 * ratio.error_ratio)
    assert 100 * ratio.error_ratio < limit, (
        f"error rate {100 * ratio.error_ratio:.3f}% ({counted(ratio)});"
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
