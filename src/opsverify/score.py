"""Score: 100 × earned weight / applicable weight, overall and per category.

Passed earns its severity's weight; failed and error earn nothing; not-applicable and
waived results leave the denominator, so they neither help nor hurt.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opsverify.check import Severity
from opsverify.result import CheckResult, Status

WEIGHTS: dict[Severity, int] = {
    Severity.critical: 10,
    Severity.high: 5,
    Severity.medium: 3,
    Severity.low: 1,
}
_APPLICABLE = {Status.passed, Status.failed, Status.error}


@dataclass
class Tally:
    earned: int = 0
    applicable: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, result: CheckResult) -> None:
        self.counts[str(result.status)] += 1
        if result.status in _APPLICABLE:
            weight = WEIGHTS[result.meta.severity]
            self.applicable += weight
            if result.status is Status.passed:
                self.earned += weight

    @property
    def exact(self) -> float | None:
        """None when nothing applicable was checked: there is nothing to score."""
        return 100 * self.earned / self.applicable if self.applicable else None

    @property
    def score(self) -> float | None:
        """The score as reported: two decimals."""
        return None if self.exact is None else round(self.exact, 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "earned_weight": self.earned,
            "applicable_weight": self.applicable,
            "counts": {status: self.counts.get(status, 0) for status in map(str, Status)},
        }


@dataclass
class Score:
    overall: Tally
    categories: dict[str, Tally]

    @property
    def value(self) -> float | None:
        return self.overall.score

    @property
    def exact(self) -> float | None:
        return self.overall.exact

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.overall.to_dict(),
            "categories": {name: tally.to_dict() for name, tally in self.categories.items()},
        }


def compute(results: Iterable[CheckResult]) -> Score:
    overall = Tally()
    categories: dict[str, Tally] = {}
    for result in results:
        overall.add(result)
        categories.setdefault(str(result.meta.category), Tally()).add(result)
    return Score(overall, dict(sorted(categories.items())))
