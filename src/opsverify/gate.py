"""Gate: the verdict a CI step acts on, by the environment's gate policy.

It passes when the score reaches the policy's minimum, every category with a minimum of its
own reaches it, and no unwaived failure blocks: a failed (or errored) check blocks when its
severity, its category or its id is on the policy's block list. By default only critical
checks block: the severities name what is release-blocking in production (see README,
"The gate").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opsverify.check import CheckMeta, Severity
from opsverify.result import CheckResult, Status
from opsverify.score import Score


@dataclass(frozen=True)
class Policy:
    min_score: float = 90
    block_severities: tuple[str, ...] = (Severity.critical.value,)
    block_categories: tuple[str, ...] = ()
    block_checks: tuple[str, ...] = ()
    min_category_scores: dict[str, float] = field(default_factory=dict)

    def blocking(self, meta: CheckMeta) -> str | None:
        """Why a failure of this check fails the gate, or None when it only costs score."""
        if meta.id in self.block_checks:
            return "blocking check"
        if str(meta.severity) in self.block_severities:
            return f"{meta.severity} check"
        if str(meta.category) in self.block_categories:
            return f"{meta.category} check (blocking category)"
        return None

    def with_minimum(self, min_score: float | None) -> Policy:
        if min_score is None:
            return self
        return Policy(
            min_score,
            self.block_severities,
            self.block_categories,
            self.block_checks,
            self.min_category_scores,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_score": self.min_score,
            "block": {
                "severities": list(self.block_severities),
                "categories": list(self.block_categories),
                "checks": list(self.block_checks),
            },
            "min_category_scores": dict(self.min_category_scores),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        block = data.get("block", {})
        return cls(
            min_score=data["min_score"],
            block_severities=tuple(block.get("severities", (Severity.critical.value,))),
            block_categories=tuple(block.get("categories", ())),
            block_checks=tuple(block.get("checks", ())),
            min_category_scores=dict(data.get("min_category_scores", {})),
        )


@dataclass(frozen=True)
class Verdict:
    passed: bool
    policy: Policy
    reasons: tuple[str, ...]

    @property
    def min_score(self) -> float:
        return self.policy.min_score

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "min_score": self.policy.min_score,
            "reasons": list(self.reasons),
            "policy": self.policy.to_dict(),
        }


def minimum(text: str | float) -> float:
    """A gate minimum: a score from 0 to 100. ValueError otherwise (NaN included)."""
    value = float(text)
    if not 0 <= value <= 100:  # false for NaN too
        raise ValueError(f"minimum score must be between 0 and 100, got {text}")
    return value


def evaluate(score: Score, results: Sequence[CheckResult], policy: Policy) -> Verdict:
    reasons: list[str] = []
    if score.value is None:
        reasons.append("no applicable check ran: nothing was verified")
    elif score.exact < policy.min_score:  # unrounded: 89.995 does not pass a minimum of 90
        reasons.append(f"score {score.value:g} is below the minimum {policy.min_score:g}")
    for category, least in sorted(policy.min_category_scores.items()):
        tally = score.categories.get(category)
        if tally is not None and tally.exact is not None and tally.exact < least:
            reasons.append(
                f"category {category} scores {tally.score:g}, below its minimum {least:g}"
            )
    for result in results:
        why = policy.blocking(result.meta)
        if why and result.status in (Status.failed, Status.error):
            label = result.meta.id + (f"[{result.parameter}]" if result.parameter else "")
            reasons.append(f"{why} {label} {result.status}: {result.meta.title}")
    return Verdict(passed=not reasons, policy=policy, reasons=tuple(reasons))
