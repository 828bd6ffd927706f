"""SLOs: OpenSLO and Sloth specs imported unchanged, SLIs read from Prometheus, error budgets and
multi-window multi-burn-rate arithmetic.

An objective's indicator is PromQL with a ``{{window}}`` placeholder (Sloth's ``{{.window}}``
and ``$window`` read the same) where its range goes: counts of good or bad events and of all
events, or the error ratio itself. Evaluating it over a window is rendering the placeholder
and asking Prometheus. No sample is never a pass: a window without data raises NoSamples.

Spec imports (``import_spec``):

- Sloth ``version: prometheus/v1`` (one or several documents in a file), and Sloth's
  Kubernetes resource (``apiVersion: sloth.slok.dev/v1``, ``kind: PrometheusServiceLevel``:
  the same service levels under ``spec``, the SLI's keys in camelCase): each of ``slos[]``
  with ``sli.events`` (error_query, total_query) or ``sli.raw`` (error_ratio_query); the
  window is Sloth's default period, 30d. Sloth's alert generation (``alerting``) is its own:
  SLO-007 computes the burn rates.
- OpenSLO ``apiVersion: openslo/v1``: kind SLO with an inline ``indicator`` or an
  ``indicatorRef`` to a kind SLI of the same file; a ``ratioMetric`` (good or bad, and total; or
  raw with rawType) from Prometheus metric sources (``type: Prometheus``, or a
  ``metricSourceRef`` to a DataSource of that type) whose ``spec.query`` is PromQL; a rolling
  ``timeWindow``; Occurrences budgeting; ``target`` (0..1) or ``targetPercent`` objectives. A
  counter query without a window placeholder must be a series selector and is read as
  ``sum(increase(<query>[<window>]))``.

Anything else (thresholdMetric, Timeslices budgeting, calendar windows, other metric sources,
Sloth plugins, unknown keys) is an error naming the file and the key, never ignored. What does
not change what is measured is read past: OpenSLO Service and alerting documents, Sloth's
``alerting`` and labels.

An imported objective belongs to its spec's ``service`` (Sloth's, OpenSLO's): its key is
``service/name``, so two services may each have a ``requests-availability``. Each remembers
where it is defined, and the profile names both places when one key is defined twice.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from prometheus_client.utils import floatToGoString
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from opsverify import userfile
from opsverify.history import DeclaredWindow
from opsverify.message import listing
from opsverify.profile import (
    METRIC_NAME,
    SELECTOR,
    WINDOW_PLACEHOLDER,
    LatencySli,
    ObjectiveName,
    ObjectivePercent,
    SliMetrics,
    SloObjective,
    WindowedQuery,
    _explain,
    _location,
)

WINDOW = "{{window}}"
_PART = "opsverify_part"  # the label that tells the parts of one combined query apart
SLOTH_PERIOD = timedelta(days=30)  # Sloth's default SLO period

# The Google SRE workbook's multi-window multi-burn-rate pairs for a 30-day SLO: (long window,
# short window, burn-rate factor). A pair burns when both windows burn faster than the factor;
# 14.4x for an hour spends 2 % of a 30-day budget, 1x for 3 days spends 10 %.
BURN_RATE_PAIRS: tuple[tuple[timedelta, timedelta, float], ...] = (
    (timedelta(hours=1), timedelta(minutes=5), 14.4),
    (timedelta(hours=6), timedelta(minutes=30), 6.0),
    (timedelta(days=1), timedelta(hours=2), 3.0),
    (timedelta(days=3), timedelta(hours=6), 1.0),
)


class NoSamples(Exception):
    """An SLI without data in its window: a failure, never a pass. Says, in words, what the
    query found none of, which query, over which window, and why that may be."""

    @classmethod
    def of(cls, nothing: str, promql: str, window: timedelta, why: str = "") -> NoSamples:
        why = why or "the series does not exist or had no samples"
        return cls(f"no {nothing} by {promql} over the last {promql_duration(window)}: {why}")


# --- PromQL ----------------------------------------------------------------------------------


def promql_duration(span: timedelta) -> str:
    """A PromQL duration in the largest whole unit: 30d, 6h, 5m, 450s, 500ms."""
    ms = round(span.total_seconds() * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def render(query: str, window: timedelta) -> str:
    return WINDOW_PLACEHOLDER.sub(promql_duration(window), query)


def series(metric: str, *selectors: str) -> str:
    matchers = ",".join(s.strip().rstrip(",") for s in selectors if s.strip())
    return f"{metric}{{{matchers}}}"


@dataclass(frozen=True)
class Indicator:
    """An SLI's queries, each with its window placeholder: bad or good events and all events,
    or the error ratio itself."""

    total: str | None = None
    bad: str | None = None
    good: str | None = None
    error_ratio: str | None = None
    counts: str = "events"  # what total counts, in words: "no requests counted by …"


def _bucket_bound(seconds: float) -> str:
    # Python's client writes le="1.0", Go's le="1": match either.
    forms = sorted({floatToGoString(seconds), repr(seconds).removesuffix(".0")})
    if len(forms) == 1:
        return f'le="{forms[0]}"'
    return 'le=~"' + "|".join(f.replace(".", r"\\.") for f in forms) + '"'


def _latency_indicator(latency: LatencySli) -> Indicator:
    bound = _bucket_bound(latency.threshold.total_seconds())
    good = series(f"{latency.histogram}_bucket", latency.selector, bound)
    total = series(f"{latency.histogram}_count", latency.selector)
    return Indicator(
        good=f"sum(increase({good}[{WINDOW}]))",
        total=f"sum(increase({total}[{WINDOW}]))",
        counts="requests",
    )


def indicator(objective: SloObjective) -> Indicator:
    if objective.latency is not None:
        return _latency_indicator(objective.latency)
    return Indicator(
        total=objective.total,
        bad=objective.bad,
        good=objective.good,
        error_ratio=objective.error_ratio,
    )


def requests(metrics: SliMetrics) -> Indicator:
    """The service's requests (SLO-001, SLO-004): 5xx answers are the bad ones."""
    every = series(metrics.requests, metrics.selector)
    failed = series(metrics.requests, metrics.selector, f'{metrics.code_label}=~"5.."')
    return Indicator(
        total=f"sum(increase({every}[{WINDOW}]))",
        bad=f"sum(increase({failed}[{WINDOW}]))",
        counts="requests",
    )


# --- reading Prometheus ----------------------------------------------------------------------

Query = Callable[[str], list[Any]]


@dataclass
class Reader:
    """Asks one Prometheus and keeps every expression with its result: the evidence."""

    query: Query
    log: list[dict[str, Any]] = field(default_factory=list)

    def rows(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """(labels, value) of each series of an instant query (or of its scalar)."""
        result = self.query(promql)
        if result and not isinstance(result[0], dict):  # a scalar: [time, "value"]
            result = [{"metric": {}, "value": result}]
        self.log.append(
            {
                "promql": promql,
                "result": [{"metric": r["metric"], "value": r["value"][1]} for r in result],
            }
        )
        return [(r["metric"], float(r["value"][1])) for r in result]

    def values(self, promql: str) -> list[float]:
        """The values of an instant query, NaN dropped."""
        return [v for _, v in self.rows(promql) if not math.isnan(v)]

    def totals(self, queries: dict[str, str]) -> dict[str, float]:
        """Each query's sum over its series (a query without series is left out), asked as one
        expression: a scrape landing between two queries would skew their ratio."""
        union = " or ".join(
            f'label_replace({query}, "{_PART}", "{name}", "", "")'
            for name, query in queries.items()
        )
        found: dict[str, list[float]] = {}
        for labels, value in self.rows(union):
            if not math.isnan(value):
                found.setdefault(labels[_PART], []).append(value)
        return {name: math.fsum(values) for name, values in found.items()}

    def single(self, promql: str, window: timedelta, what: str) -> float:
        """The one value of ``promql``; NoSamples says ``what`` it found none of, by which
        query, over which window."""
        values = self.values(promql)
        if not values:
            raise NoSamples.of(what, promql, window)
        if len(values) > 1:
            raise AssertionError(f"{promql} returned {len(values)} series: aggregate it to one")
        return values[0]


@dataclass(frozen=True)
class Ratio:
    """Bad events among all events in one window (counts None for a ratio query)."""

    window: timedelta
    error_ratio: float
    bad: float | None = None
    total: float | None = None


def error_ratio(reader: Reader, sli: Indicator, window: timedelta) -> Ratio:
    if sli.error_ratio is not None:
        value = reader.single(render(sli.error_ratio, window), window, "error ratio computed")
        return Ratio(window, min(max(value, 0.0), 1.0))
    parts = {"total": sli.total, "bad": sli.bad, "good": sli.good}
    queries = {name: render(q, window) for name, q in parts.items() if q is not None}
    totals = reader.totals(queries)
    total = totals.get("total")
    if not total:  # no series, or no event at all: nothing to hold against the objective
        why = "" if total is None else "its series counted none"
        raise NoSamples.of(f"{sli.counts} counted", queries["total"], window, why)
    # A counter with no series yet counts nothing: no bad (or good) event happened.
    bad = totals.get("bad", 0.0) if sli.bad is not None else total - totals.get("good", 0.0)
    # increase() extrapolates to the window's edges: keep the ratio within 0..1.
    return Ratio(window, min(max(bad / total, 0.0), 1.0), bad, total)


def quantile(reader: Reader, metrics: SliMetrics, q: float, window: timedelta) -> float:
    """The q-quantile of request duration (seconds) over the window, from the histogram."""
    buckets = series(f"{metrics.duration}_bucket", metrics.selector)
    promql = f"histogram_quantile({q:g}, sum by (le) (rate({buckets}[{promql_duration(window)}])))"
    return reader.single(promql, window, "request durations recorded")


def peak_interval(window: timedelta) -> timedelta:
    """What a throughput peak is averaged over: 1/1440 of the window, at least a minute
    (30d: 30 minutes, 1d and shorter: 1 minute)."""
    return max(timedelta(minutes=1), timedelta(seconds=math.ceil(window.total_seconds() / 1440)))


def peak_rate(reader: Reader, metrics: SliMetrics, window: timedelta) -> float:
    """The highest rate of successful (non-5xx) answers, averaged over ``peak_interval``,
    anywhere in the window (sampled every quarter interval), in requests per second. The rate
    now stands in when no sampling step has one yet: subquery steps are aligned to multiples
    of the step, so a service scraped for under a step has only the present."""
    interval = peak_interval(window)
    served = series(metrics.requests, metrics.selector, f'{metrics.code_label}!~"5.."')
    rate = f"sum(rate({served}[{promql_duration(interval)}]))"
    promql = (
        f"max_over_time({rate}[{promql_duration(window)}:{promql_duration(interval / 4)}])"
        f" or {rate}"
    )
    return reader.single(promql, window, "successful answers counted")


# --- availability: what users saw -------------------------------------------------------------

Spans = list[tuple[datetime, datetime]]


def _union(spans: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime) -> Spans:
    """The parts of ``spans`` within start..end, overlaps merged, in order."""
    merged: Spans = []
    for a, b in sorted((max(a, start), min(b, end)) for a, b in spans):
        if b - a < _SHORTEST:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _gaps(spans: Spans, start: datetime, end: datetime) -> Spans:
    """The parts of start..end outside ``spans`` (merged, in order)."""
    found, at = [], start
    for a, b in [*spans, (end, end)]:
        if a - at >= _SHORTEST:
            found.append((at, a))
        at = max(at, b)
    return found


def _length(spans: Spans) -> timedelta:
    return sum((b - a for a, b in spans), timedelta(0))


_SHORTEST = timedelta(milliseconds=1)  # the finest range PromQL takes


@dataclass(frozen=True)
class Uptime:
    """How much of the window users could reach the service. Outside the windows activities
    declared (a drill, a chaos experiment: see opsverify.history), the share of failed scrapes
    of the service's targets stands for the time it was down; inside them, the targets were
    stopped on purpose and the outages the activity measured through the load balancer count
    instead."""

    window: timedelta
    scrapes: float  # of the targets, outside declared windows
    failed: float
    excluded_scrapes: float  # inside declared windows: not counted
    excluded_failed: float
    declared: timedelta  # the part of the window inside declared windows
    outage: timedelta  # measured through the load balancer, within the window
    windows: tuple[DeclaredWindow, ...] = ()

    @property
    def targets_down(self) -> timedelta:
        if not self.scrapes:
            return timedelta(0)
        return (self.window - self.declared) * (self.failed / self.scrapes)

    @property
    def down(self) -> timedelta:
        return self.targets_down + self.outage

    @property
    def share(self) -> float:
        return max(0.0, 1 - self.down / self.window)

    def as_json(self) -> dict[str, Any]:
        return {
            "uptime_percent": 100 * self.share,
            "window_s": self.window.total_seconds(),
            "scrapes": self.scrapes,
            "failed_scrapes": self.failed,
            "targets_down_s": self.targets_down.total_seconds(),
            "declared_s": self.declared.total_seconds(),
            "excluded_scrapes": self.excluded_scrapes,
            "excluded_failed_scrapes": self.excluded_failed,
            "outage_s": self.outage.total_seconds(),
            "down_s": self.down.total_seconds(),
            "declared": [_declared(w) for w in self.windows],
        }

    def explain(self) -> list[str]:
        """What cost uptime, in words (nothing when nothing did)."""
        found = []
        if self.failed:
            found.append(
                f"{self.failed:.0f} failed scrapes of the service's targets outside declared"
                f" windows (of {self.scrapes:.0f}: {self.targets_down.total_seconds():.1f} s down)"
            )
        if self.outage:
            who = list(dict.fromkeys(_who(w) for w in self.windows if w.outages))
            found.append(
                f"{self.outage.total_seconds():.1f} s of outage through the load balancer during "
                + (who[0] if len(who) == 1 else listing(who, "activities"))
            )
        if self.excluded_failed:
            found.append(
                f"{self.excluded_failed:.0f} failed scrapes inside declared windows not counted"
            )
        return found


def _who(window: DeclaredWindow) -> str:
    record = window.record
    return f"{record.check} (run {record.run})" if record else "a declared window"


def _declared(window: DeclaredWindow) -> dict[str, Any]:
    record = window.record
    found = (
        {"check": record.check, "run": record.run, "activity": record.activity} if record else {}
    )
    return {**found, **window.to_dict()}


def uptime(
    reader: Reader,
    targets: str,
    window: timedelta,
    declared: Sequence[DeclaredWindow] = (),
    now: datetime | None = None,
) -> Uptime:
    """Uptime over the window ending ``now``, around the ``declared`` windows. The scrapes are
    counted over each part of the window with PromQL's ``@``, all in one query."""
    now = now or datetime.now(UTC)
    start = now - window
    inside = _union(((w.span.start, w.span.end) for w in declared), start, now)
    outages = _union(((o.start, o.end) for w in declared for o in w.outages), start, now)
    up = series("up", targets)

    def over(spans: Spans, function: str) -> str:
        terms = [
            f"(sum({function}({up}[{promql_duration(b - a)}] @ {b.timestamp():.3f})) or vector(0))"
            for a, b in spans
        ]
        return " + ".join(terms) or "vector(0)"

    outside = _gaps(inside, start, now)
    parts = {"up": "sum_over_time", "scrapes": "count_over_time"}
    counts = reader.totals(
        {
            **{name: over(outside, function) for name, function in parts.items()},
            **{f"excluded_{name}": over(inside, function) for name, function in parts.items()},
        }
    )
    scrapes, excluded = counts.get("scrapes", 0.0), counts.get("excluded_scrapes", 0.0)
    if not scrapes + excluded:
        raise NoSamples.of(
            "scrapes recorded", f"count_over_time({up}[{promql_duration(window)}])", window
        )
    return Uptime(
        window=window,
        scrapes=scrapes,
        failed=scrapes - counts.get("up", 0.0),
        excluded_scrapes=excluded,
        excluded_failed=excluded - counts.get("excluded_up", 0.0),
        declared=_length(inside),
        outage=_length(outages),
        windows=tuple(w for w in declared if w.span.end > start and w.span.start < now),
    )


def counted(ratio: Ratio) -> str:
    return f"{ratio.bad:.0f} 5xx of {ratio.total:.0f} requests in {promql_duration(ratio.window)}"


@dataclass(frozen=True)
class Availability:
    """What users saw (SLO-001): the share of requests answered without a 5xx, times the
    share of the window they could reach the service (uptime, when the profile names the
    service's scrape targets)."""

    ratio: Ratio
    uptime: Uptime | None

    @property
    def share(self) -> float:
        return (1 - self.ratio.error_ratio) * (self.uptime.share if self.uptime else 1.0)

    def explain(self) -> str:
        return "; ".join([counted(self.ratio), *(self.uptime.explain() if self.uptime else [])])

    def as_json(self) -> dict[str, Any]:
        return {
            "availability_percent": 100 * self.share,
            "served_percent": 100 * (1 - self.ratio.error_ratio),
            "requests": self.ratio.total,
            "5xx": self.ratio.bad,
            "uptime": self.uptime.as_json() if self.uptime else None,
        }


# --- error budgets and burn rates ------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    objective: float  # % of good events required
    error_ratio: float  # measured share of bad events

    @property
    def allowed(self) -> float:
        """The error ratio the objective allows: the whole budget."""
        return 1 - self.objective / 100

    @property
    def spent(self) -> float:
        """The share of the budget used up (1.0: all of it; above: overspent)."""
        return self.error_ratio / self.allowed

    @property
    def remaining(self) -> float:
        return 1 - self.spent

    def as_json(self) -> dict[str, float]:
        return {
            "objective_percent": self.objective,
            "sli_percent": 100 * (1 - self.error_ratio),
            "error_ratio": self.error_ratio,
            "budget_error_ratio": self.allowed,
            "budget_spent_percent": 100 * self.spent,
            "budget_remaining_percent": 100 * self.remaining,
        }


@dataclass(frozen=True)
class BurnPair:
    long: timedelta
    short: timedelta
    factor: float
    long_burn: float | None  # None: no samples in that window
    short_burn: float | None

    @property
    def burning(self) -> bool:
        """Both windows spend the budget faster than the factor allows."""
        return all(b is not None and b > self.factor for b in (self.long_burn, self.short_burn))

    def as_json(self) -> dict[str, Any]:
        return {
            "long_window": promql_duration(self.long),
            "short_window": promql_duration(self.short),
            "factor": self.factor,
            "long_burn_rate": self.long_burn,
            "short_burn_rate": self.short_burn,
            "burning": self.burning,
        }


def burn_rates(reader: Reader, objective: SloObjective) -> tuple[list[BurnPair], list[str]]:
    """The four burn-rate pairs of an objective, and the windows that had no samples."""
    sli = indicator(objective)
    burns: dict[timedelta, float | None] = {}
    empty = []
    for window in sorted({w for long, short, _ in BURN_RATE_PAIRS for w in (long, short)}):
        try:
            ratio = error_ratio(reader, sli, window).error_ratio
            # The burn rate: the error ratio in budgets (1x spends it exactly over the SLO window).
            burns[window] = Budget(objective.objective, ratio).spent
        except NoSamples as exc:
            burns[window] = None
            empty.append(str(exc))
    pairs = [
        BurnPair(long, short, factor, burns[long], burns[short])
        for long, short, factor in BURN_RATE_PAIRS
    ]
    return pairs, empty


# --- spec import -----------------------------------------------------------------------------


class SpecError(ValueError):
    """A spec file that cannot be imported: one line per problem, naming file and key."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


M = TypeVar("M", bound=BaseModel)
S = TypeVar("S", bound=_Spec)


def _parse(model: type[M], data: Any, path: Path, where: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            parts = (where, _location(error["loc"]))
            key = ".".join(p for p in parts if p and p != "(top level)")
            what = _explain(error)
            if error["type"] == "extra_forbidden":
                what = "unknown key (not part of what opsverify imports; check the spelling)"
            lines.append(f"{path}: {key or '(top level)'}: {what}")
        raise SpecError("\n".join(lines)) from None


def _problem(path: Path, key: str, message: str) -> SpecError:
    return SpecError(f"{path}: {key}: {message}")


def _exactly_one(spec: S, *keys: str) -> S:
    if sum(getattr(spec, key) is not None for key in keys) != 1:
        raise ValueError(f"expected exactly one of {' or '.join(keys)}")
    return spec


# Sloth prometheus/v1 (https://github.com/slok/sloth, pkg/prometheus/api/v1)


class _SlothEvents(_Spec):
    error_query: WindowedQuery
    total_query: WindowedQuery


class _SlothRaw(_Spec):
    error_ratio_query: WindowedQuery


_SLOTH_API = "sloth.slok.dev"  # its Kubernetes resources' API group
# Sloth's Kubernetes resource writes the SLI's keys in camelCase (errorQuery, …).
_CAMEL = ConfigDict(alias_generator=to_camel)


class _ResourceEvents(_SlothEvents):
    model_config = _CAMEL


class _ResourceRaw(_SlothRaw):
    model_config = _CAMEL


class _SlothSli(_Spec):
    events: _SlothEvents | None = None
    raw: _SlothRaw | None = None
    plugin: dict[str, Any] | None = None

    @field_validator("plugin")
    @classmethod
    def _no_plugin(cls, plugin: Any) -> Any:
        raise ValueError("SLI plugins are not supported: write the SLI as events or raw queries")

    @model_validator(mode="after")
    def _one(self) -> _SlothSli:
        return _exactly_one(self, "events", "raw")


class _ResourceSli(_SlothSli):
    events: _ResourceEvents | None = None
    raw: _ResourceRaw | None = None


class _SlothSlo(_Spec):
    name: ObjectiveName
    objective: ObjectivePercent
    description: str = ""
    labels: dict[str, str] = {}
    sli: _SlothSli
    alerting: dict[str, Any] = {}  # Sloth's alert generation: not what opsverify evaluates


class _ResourceSlo(_SlothSlo):
    sli: _ResourceSli


class _SlothServiceLevels(_Spec):
    service: str = Field(min_length=1)
    labels: dict[str, str] = {}
    slos: list[_SlothSlo] = Field(min_length=1)


class _SlothSpec(_SlothServiceLevels):
    version: Literal["prometheus/v1"]


class _ResourceSpec(_SlothServiceLevels):
    slos: list[_ResourceSlo] = Field(min_length=1)


class _SlothResource(_Spec):
    """Sloth's Kubernetes custom resource: the same service levels under ``spec``."""

    apiVersion: Literal["sloth.slok.dev/v1"]
    kind: Literal["PrometheusServiceLevel"]
    metadata: dict[str, Any] = {}  # the object's name, namespace, labels: not measured
    spec: _ResourceSpec
    status: dict[str, Any] = {}  # what the Sloth controller did with it (kubectl get -o yaml)


def _sloth(path: Path, documents: list[Any]) -> list[SloObjective]:
    """Sloth specs (one or several documents) and PrometheusServiceLevel resources."""
    found = []
    for number, document in enumerate(documents, start=1):
        where = f"document {number}" if len(documents) > 1 else ""
        if isinstance(document, dict) and "apiVersion" in document:
            spec: _SlothServiceLevels = _parse(_SlothResource, document, path, where).spec
            where = f"{where}.spec" if where else "spec"
        else:
            spec = _parse(_SlothSpec, document, path, where)
        for index, slo in enumerate(spec.slos):
            events, raw = slo.sli.events, slo.sli.raw
            objective = SloObjective(
                name=slo.name,
                service=spec.service,
                objective=slo.objective,
                window=SLOTH_PERIOD,
                description=slo.description,
                bad=events.error_query if events else None,
                total=events.total_query if events else None,
                error_ratio=raw.error_ratio_query if raw else None,
            )
            found.append(_from(objective, path, f"{where}.slos[{index}]".lstrip(".")))
    return found


def _from(objective: SloObjective, path: Path, key: str) -> SloObjective:
    """The objective, remembering where it is defined (named when it is defined twice)."""
    objective._origin = f"{path}: {key}"
    return objective


# OpenSLO v1 (https://github.com/OpenSLO/OpenSLO#specification)

_OPENSLO = "openslo/v1"
_SHORTHAND = re.compile(r"^(\d+)([mhdwMQY])$")
_SHORTHAND_UNITS = {
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_SERIES = re.compile(rf"\s*{METRIC_NAME}\s*(?:\{{{SELECTOR}\}})?\s*")


class _Metadata(_Spec):
    name: ObjectiveName
    displayName: str | None = None
    labels: dict[str, Any] = {}
    annotations: dict[str, str] = {}


class _MetricSource(_Spec):
    metricSourceRef: str | None = None
    type: str | None = None
    spec: dict[str, Any]


class _Metric(_Spec):
    metricSource: _MetricSource


class _RatioMetric(_Spec):
    counter: bool | None = None
    good: _Metric | None = None
    bad: _Metric | None = None
    total: _Metric | None = None
    rawType: Literal["success", "failure"] | None = None
    raw: _Metric | None = None

    @model_validator(mode="after")
    def _shape(self) -> _RatioMetric:
        if self.raw is not None:
            if self.good or self.bad or self.total or self.rawType is None:
                raise ValueError("raw needs rawType and cannot be used with good, bad or total")
        elif self.total is None or (self.good is None) == (self.bad is None):
            raise ValueError("expected total with exactly one of good or bad, or raw")
        return self


class _SliSpec(_Spec):
    description: str = ""
    ratioMetric: _RatioMetric | None = None
    thresholdMetric: dict[str, Any] | None = None

    @field_validator("thresholdMetric")
    @classmethod
    def _no_threshold(cls, metric: Any) -> Any:
        raise ValueError(
            "thresholdMetric is not supported: opsverify measures ratio SLIs (ratioMetric)"
        )

    @model_validator(mode="after")  # after the fields: a thresholdMetric says enough
    def _ratio(self) -> _SliSpec:
        if self.ratioMetric is None:
            raise ValueError("expected a ratioMetric")
        return self


class _Indicator(_Spec):
    metadata: _Metadata
    spec: _SliSpec


class _TimeWindow(_Spec):
    duration: timedelta
    isRolling: bool | None = None  # omitted: rolling unless a calendar is given
    calendar: dict[str, Any] | None = None

    @field_validator("duration", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> timedelta:
        match = _SHORTHAND.match(str(value))
        if not match:
            raise ValueError("expected a duration shorthand such as 30d, 4w or 12h")
        if match[2] not in _SHORTHAND_UNITS:
            raise ValueError("months, quarters and years are not supported: give days or weeks")
        return int(match[1]) * _SHORTHAND_UNITS[match[2]]

    @model_validator(mode="after")
    def _rolling(self) -> _TimeWindow:
        if self.calendar is not None or self.isRolling is False:
            raise ValueError("only rolling windows (isRolling: true) are supported")
        return self


class _Objective(_Spec):
    displayName: str | None = None
    target: float | None = Field(None, gt=0, lt=1)
    targetPercent: ObjectivePercent | None = None

    @model_validator(mode="before")
    @classmethod
    def _ratio_only(cls, data: Any) -> Any:
        if isinstance(data, dict) and (found := sorted({"op", "value"} & data.keys())):
            raise ValueError(f"{', '.join(found)}: thresholds of a thresholdMetric, unsupported")
        if isinstance(data, dict) and {"timeSliceTarget", "timeSliceWindow"} & data.keys():
            raise ValueError("time slices are not supported: only Occurrences budgeting")
        return data

    @model_validator(mode="after")
    def _one_target(self) -> _Objective:
        return _exactly_one(self, "target", "targetPercent")

    @property
    def percent(self) -> float:
        return self.targetPercent if self.target is None else 100 * self.target


class _SloSpec(_Spec):
    description: str = ""
    service: str = Field(min_length=1)
    indicator: _Indicator | None = None
    indicatorRef: str | None = None
    budgetingMethod: str
    timeWindow: list[_TimeWindow] = Field([], max_length=1)
    objectives: list[_Objective] = Field(min_length=1)
    alertPolicies: list[Any] = []  # alerting is not what opsverify evaluates

    @field_validator("budgetingMethod")
    @classmethod
    def _occurrences(cls, method: str) -> str:
        if method != "Occurrences":
            raise ValueError(f"only Occurrences budgeting is supported (got {method!r})")
        return method

    @model_validator(mode="after")
    def _one_indicator(self) -> _SloSpec:
        return _exactly_one(self, "indicator", "indicatorRef")


class _Object(_Spec):
    apiVersion: Literal["openslo/v1"]
    kind: Literal[
        "SLO",
        "SLI",
        "DataSource",
        "Service",
        "AlertPolicy",
        "AlertCondition",
        "AlertNotificationTarget",
    ]
    metadata: _Metadata
    spec: dict[str, Any]


class _DataSourceSpec(_Spec):
    description: str = ""
    type: str
    connectionDetails: Any = None  # where to connect: the profile's Prometheus answers


def _openslo(path: Path, documents: list[Any]) -> list[SloObjective]:
    parsed = [_parse(_Object, d, path, f"document {i}") for i, d in enumerate(documents, start=1)]
    objects = [
        (f"document {i} ({o.kind} {o.metadata.name})", o) for i, o in enumerate(parsed, start=1)
    ]
    sources = {
        o.metadata.name: _parse(_DataSourceSpec, o.spec, path, f"{where}.spec").type
        for where, o in objects
        if o.kind == "DataSource"
    }
    slis = {
        o.metadata.name: (f"{where}.spec", _parse(_SliSpec, o.spec, path, f"{where}.spec"))
        for where, o in objects
        if o.kind == "SLI"
    }
    found = []
    for where, o in objects:
        if o.kind != "SLO":
            continue
        key = f"{where}.spec"
        spec = _parse(_SloSpec, o.spec, path, key)
        if spec.indicator is not None:
            sli_key, sli = f"{key}.indicator.spec", spec.indicator.spec
        elif spec.indicatorRef in slis:
            sli_key, sli = slis[spec.indicatorRef]
        else:
            missing = f"no SLI {spec.indicatorRef!r} in this file"
            raise _problem(path, f"{key}.indicatorRef", missing)
        queries = _ratio_queries(path, f"{sli_key}.ratioMetric", sli.ratioMetric, sources)
        window = spec.timeWindow[0].duration if spec.timeWindow else None
        several = len(spec.objectives) > 1
        for index, objective in enumerate(spec.objectives):
            name = f"{o.metadata.name}-{objective.percent:g}" if several else o.metadata.name
            imported = SloObjective(
                name=name,
                service=spec.service,
                objective=objective.percent,
                window=window,
                description=spec.description,
                **queries,
            )
            found.append(_from(imported, path, f"{where}.spec.objectives[{index}]"))
    return found


def _ratio_queries(
    path: Path, key: str, ratio: _RatioMetric | None, sources: dict[str, str]
) -> dict[str, str]:
    assert ratio is not None  # _SliSpec requires it
    if ratio.raw is not None:
        query = _query(path, f"{key}.raw", ratio.raw, sources, wrap=False)
        return {"error_ratio": query if ratio.rawType == "failure" else f"1 - ({query})"}
    found = {}
    for name in ("good", "bad", "total"):
        metric = getattr(ratio, name)
        if metric is not None:
            found[name] = _query(path, f"{key}.{name}", metric, sources, wrap=bool(ratio.counter))
    return found


def _query(path: Path, key: str, metric: _Metric, sources: dict[str, str], wrap: bool) -> str:
    source = metric.metricSource
    key += ".metricSource"
    kind = source.type or sources.get(source.metricSourceRef or "")
    if kind is None:
        raise _problem(path, key, "expected type: Prometheus or a metricSourceRef to a DataSource")
    if kind.lower() != "prometheus":
        raise _problem(path, key, f"only Prometheus metric sources are supported (got {kind!r})")
    if set(source.spec) != {"query"} or not isinstance(source.spec["query"], str):
        raise _problem(path, f"{key}.spec", "expected exactly one key, query: a PromQL string")
    query = source.spec["query"].strip()
    if WINDOW_PLACEHOLDER.search(query):
        return query
    if wrap and _SERIES.fullmatch(query):
        return f"sum(increase({query}[{WINDOW}]))"
    raise _problem(
        path,
        f"{key}.spec.query",
        "without a {{.window}} range it must be a counter's series selector (counter: true,"
        ' e.g. http_requests_total{job="api"}), read as sum(increase(<query>[<window>]))',
    )


def import_spec(path: Path) -> list[SloObjective]:
    """The objectives of a Sloth or OpenSLO spec file; SpecError names the file and key."""
    try:
        documents = userfile.load_yaml_documents(path, "SLO spec")
    except userfile.UserFileError as exc:
        raise SpecError(str(exc)) from None
    if len(documents) == 1 and isinstance(documents[0], list):  # OpenSLO's list form
        documents = documents[0]
    if not documents:
        raise SpecError(f"{path}: no document in the file")
    dicts = [d for d in documents if isinstance(d, dict)]
    if any("version" in d or str(d.get("apiVersion")).startswith(_SLOTH_API) for d in dicts):
        return _sloth(path, documents)
    if any("apiVersion" in d for d in dicts):
        return _openslo(path, documents)
    raise SpecError(
        f"{path}: expected a Sloth spec (version: prometheus/v1) or OpenSLO documents"
        f" (apiVersion: {_OPENSLO}), or a Sloth PrometheusServiceLevel (apiVersion:"
        f" {_SLOTH_API}/v1)"
    )
