"""Re-evaluate a stored run: recompute score and gate from readiness.json, prove its files intact.

A separate CI step can gate on an artifact produced elsewhere, with its own minimum.
"""

from __future__ import annotations

from pathlib import Path

from opsverify import gate
from opsverify import score as scoring
from opsverify.report import readiness
from opsverify.report.terminal import print_replay
from opsverify.result import CheckResult


def replay(path: Path, min_score: float | None) -> bool:
    """True when the stored run passes the gate; ValueError when it cannot be trusted."""
    # No manifest, no proof: a gate must not take an unprovable run on trust.
    folder, data = readiness.load_verified(path)
    path = folder / readiness.FILENAME
    results = [CheckResult.from_dict(item) for item in data["checks"]]
    score = scoring.compute(results)
    stored = data["score"]["score"]
    if score.value != stored:
        raise readiness.ReadinessError(
            f"{path}: stored score {stored} does not match its checks ({score.value})"
        )
    # The policy the run was gated by (a report from before policies: its minimum alone).
    stored_policy = data["gate"].get("policy") or {"min_score": data["gate"]["min_score"]}
    policy = gate.Policy.from_dict(stored_policy).with_minimum(min_score)
    gate.minimum(policy.min_score)
    verdict = gate.evaluate(score, results, policy)
    if data["run"]["interrupted"]:
        stored = tuple(data["gate"]["reasons"])
        verdict = gate.Verdict(False, policy, ("the stored run did not complete", *stored))
    print_replay(data["run"], score, verdict)
    return verdict.passed
