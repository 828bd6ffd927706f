"""Gate: passes when the score reaches the minimum and no unwaived critical check failed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opsverify.check import Severity
from opsverify.result import CheckResult, Status
from opsverify.score import Score


@dataclass(frozen=True)
class Verdict:
    passed: bool
    min_score: float
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "min_score": self.min_score, "reasons": list(self.reasons)}


def minimum(text: str | float) -> float:
    """A gate minimum: a score from 0 to 100. ValueError otherwise (NaN included)."""
    value = float(text)
    if not 0 <= value <= 100:  # false for NaN too
        raise ValueError(f"minimum score must be between 0 and 100, got {text}")
    return value


def evaluate(score: Score, results: Sequence[CheckResult], min_score: float) -> Verdict:
    reasons: list[str] = []
    if score.value is None:
        reasons.append("no applicable check ran: nothing was verified")
    elif score.exact < min_score:  # the unrounded score: 89.995 does not pass a minimum of 90
        reasons.append(f"score {score.value:g} is below the minimum {min_score:g}")
    for result in results:
        if result.meta.severity == Severity.critical and result.status in (
            Status.failed,
            Status.error,
        ):
            label = result.meta.id + (f"[{result.parameter}]" if result.parameter else "")
            reasons.append(f"critical check {label} {result.status}: {result.meta.title}")
    return Verdict(passed=not reasons, min_score=min_score, reasons=tuple(reasons))
