"""Load-test thresholds, written like k6's: ``p95 < 500ms``, ``error_rate < 1%``,
``rps >= 1000``, for all requests or scoped to one: ``GET /api/v1/items: p95 < 300ms``.

A threshold is judged against the statistics of a run (one row per request name, one for
all of them). A threshold whose scope saw no request fails: no samples prove nothing.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Protocol

PERCENTILES = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}
METRICS = (*PERCENTILES, "error_rate", "rps")
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_SHAPE = re.compile(
    r"^\s*(?:(?P<scope>.+?):\s+)?(?P<metric>[A-Za-z_0-9().]+)\s*(?P<op><=|>=|<|>)\s*(?P<value>.*?)\s*$"
)
_NUMBER = r"(\d+(?:\.\d+)?)"
_DURATION = re.compile(rf"^{_NUMBER}\s*(ms|s)$")
_PERCENT = re.compile(rf"^{_NUMBER}\s*%$")
_RATE = re.compile(rf"^{_NUMBER}$")
EXAMPLE = "'p95 < 500ms', 'error_rate < 1%', 'rps >= 1000' or 'GET /api/v1/items: p95 < 300ms'"


@dataclass(frozen=True)
class Expression:
    """One parsed threshold. ``limit`` is in ms (percentiles), % (error_rate) or req/s (rps)."""

    text: str
    scope: str | None  # a request ("GET /api/v1/items" or "/health"); None: all requests
    metric: str
    op: str
    limit: float

    def holds(self, measured: float) -> bool:
        return _OPERATORS[self.op](measured, self.limit)

    @property
    def unit(self) -> str:
        return "ms" if self.metric in PERCENTILES else "%" if self.metric == "error_rate" else "/s"

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> Expression:
    """``[REQUEST: ]METRIC OP VALUE``; ValueError saying what was expected."""
    if not isinstance(text, str) or not (shape := _SHAPE.match(text)):
        raise ValueError(f"not a threshold: expected e.g. {EXAMPLE}")
    scope, metric, op, value = shape["scope"], shape["metric"], shape["op"], shape["value"]
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: expected one of {', '.join(METRICS)}")
    if metric in PERCENTILES:
        match = _DURATION.match(value)
        limit = float(match[1]) * (1000 if match[2] == "s" else 1) if match else None
        wanted = "a duration such as 500ms or 1.5s"
    elif metric == "error_rate":
        match = _PERCENT.match(value)
        limit = float(match[1]) if match else None
        wanted = "a percentage such as 1%"
    else:
        match = _RATE.match(value)
        limit = float(match[1]) if match else None
        wanted = "requests per second, a number such as 1000"
    if limit is None:
        raise ValueError(f"{metric} needs {wanted}, not {value!r}")
    scope = scope.strip() if scope else None
    canonical = f"{scope + ': ' if scope else ''}{metric} {op} {value}"
    return Expression(text=canonical, scope=scope, metric=metric, op=op, limit=limit)


@dataclass(frozen=True)
class Row:
    """Statistics of one request name (or of all requests): counts, rate, percentiles in ms."""

    method: str  # Locust's "Type"; empty for the aggregate
    name: str
    requests: int
    failures: int
    rps: float
    percentiles: dict[str, float]  # by metric name: "p95" -> ms

    @property
    def label(self) -> str:
        return f"{self.method} {self.name}".strip()

    @property
    def error_rate(self) -> float:
        return 100 * self.failures / self.requests if self.requests else 0.0

    def value(self, metric: str) -> float:
        if metric == "error_rate":
            return self.error_rate
        if metric == "rps":
            return self.rps
        return self.percentiles[metric]


@dataclass(frozen=True)
class Stats:
    rows: tuple[Row, ...]  # per request name
    total: Row  # all requests

    def find(self, scope: str | None) -> list[Row]:
        """The rows a scope names: "METHOD NAME" or a NAME used by one method only."""
        if scope is None:
            return [self.total]
        return [r for r in self.rows if scope in (r.label, r.name)]


@dataclass(frozen=True)
class Verdict:
    threshold: str
    scope: str  # the row it was judged on, or what it asked for
    measured: float | None  # None: nothing to judge (no samples, ambiguous scope)
    unit: str
    passed: bool
    note: str = ""

    def describe(self) -> str:
        got = self.note or f"measured {_figure(self.measured)}{self.unit}"
        return f"{self.threshold} ({got})"

    def void(self, why: str) -> Verdict:
        """This verdict on a run that cannot be judged: failed, whatever it measured."""
        return replace(self, passed=False, note=self.note or f"cannot pass: {why}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "scope": self.scope,
            "measured": None if self.measured is None else round(self.measured, 3),
            "unit": self.unit,
            "result": "pass" if self.passed else "fail",
            "note": self.note,
        }


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}".rstrip("0").rstrip(".")


def evaluate(expression: Expression, stats: Stats) -> Verdict:
    rows = stats.find(expression.scope)
    scope = expression.scope or "all requests"

    def failed(note: str) -> Verdict:
        return Verdict(str(expression), scope, None, expression.unit, False, note)

    if len(rows) > 1:
        labels = ", ".join(r.label for r in rows)
        return failed(f"ambiguous: {scope!r} names {labels}; write the method too")
    if not rows or rows[0].requests == 0:
        to = f" to {expression.scope}" if expression.scope else ""
        return failed(f"no samples: no request{to} was made")
    measured = rows[0].value(expression.metric)
    passed = expression.holds(measured)
    judged = rows[0].label if expression.scope else scope  # "/health" was "GET /health"
    return Verdict(str(expression), judged, measured, expression.unit, passed)


class Rule(Protocol):
    """A threshold as a profile states it (see ``profile.LoadThreshold``)."""

    threshold: Expression
    abort_on_fail: bool
    delay_abort_eval: timedelta


def lost(rules: Iterable[Rule], stats: Stats, elapsed: float) -> Verdict | None:
    """The first abort-on-fail rule, past its delay, that the statistics so far already fail.

    Like k6, this judges the run so far; missing samples never abort (they may yet come)."""
    for rule in rules:
        if rule.abort_on_fail and elapsed >= rule.delay_abort_eval.total_seconds():
            verdict = evaluate(rule.threshold, stats)
            if verdict.measured is not None and not verdict.passed:
                return verdict
    return None
