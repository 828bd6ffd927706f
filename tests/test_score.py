"""Score and gate arithmetic, exactly as DESIGN.md states it."""

from __future__ import annotations

import pytest
import yaml

from opsverify import gate
from opsverify import profile as profiles
from opsverify.check import CheckMeta
from opsverify.result import CheckResult, Status
from opsverify.score import compute


def result(severity: str, status: Status, category: str = "application", n: int = 0):
    meta = CheckMeta(
        id=f"TST-{n:03d}",
        title=f"{severity} {status}",
        category=category,
        severity=severity,
        cadences=("predeploy",),
        controls=(),
        runbook="",
    )
    return CheckResult(meta, f"t.py::c{n}", None, status)


def test_weights_critical_10_high_5_medium_3_low_1() -> None:
    results = [
        result("critical", Status.passed, n=1),
        result("high", Status.failed, n=2),
        result("medium", Status.passed, n=3),
        result("low", Status.error, n=4),
    ]
    score = compute(results)
    assert score.overall.earned == 13 and score.overall.applicable == 19
    assert score.value == pytest.approx(100 * 13 / 19, abs=0.01)


def test_not_applicable_and_waived_leave_the_denominator() -> None:
    base = [result("high", Status.passed, n=1), result("low", Status.failed, n=2)]
    extra = [result("critical", Status.not_applicable, n=3), result("critical", Status.waived, n=4)]
    assert compute(base).value == compute(base + extra).value == pytest.approx(83.33, abs=0.01)


def test_error_earns_nothing_like_a_failure() -> None:
    failed = compute([result("medium", Status.passed, n=1), result("medium", Status.failed, n=2)])
    errored = compute([result("medium", Status.passed, n=1), result("medium", Status.error, n=2)])
    assert failed.value == errored.value == 50


def test_category_scores_are_computed_the_same_way() -> None:
    score = compute(
        [
            result("critical", Status.passed, "monitoring", 1),
            result("low", Status.failed, "monitoring", 2),
            result("high", Status.failed, "infrastructure", 3),
            result("high", Status.not_applicable, "slo", 4),
        ]
    )
    assert score.categories["monitoring"].score == pytest.approx(90.91, abs=0.01)
    assert score.categories["infrastructure"].score == 0
    assert score.categories["slo"].score is None
    assert score.categories["slo"].counts["not_applicable"] == 1


def test_nothing_applicable_gives_no_score_and_a_failed_gate() -> None:
    results = [result("high", Status.not_applicable, n=1)]
    score = compute(results)
    assert score.value is None
    verdict = gate.evaluate(score, results, gate.Policy(0))
    assert not verdict.passed and "nothing was verified" in verdict.reasons[0]


def test_gate_needs_the_minimum_score() -> None:
    results = [result("high", Status.passed, n=n) for n in range(9)]
    results.append(result("high", Status.failed, n=9))
    score = compute(results)
    assert score.value == 90
    assert gate.evaluate(score, results, gate.Policy(90)).passed
    assert not gate.evaluate(score, results, gate.Policy(90.01)).passed


@pytest.mark.parametrize("status", [Status.failed, Status.error])
def test_unwaived_critical_failure_fails_the_gate_whatever_the_score(status: Status) -> None:
    results = [result("low", Status.passed, n=n) for n in range(100)]
    results.append(result("critical", status, n=100))
    score = compute(results)
    verdict = gate.evaluate(score, results, gate.Policy(0))
    assert not verdict.passed
    assert any("critical check TST-100" in reason for reason in verdict.reasons)


def test_waived_critical_failure_does_not_fail_the_gate() -> None:
    results = [result("low", Status.passed, n=1), result("critical", Status.waived, n=2)]
    assert gate.evaluate(compute(results), results, gate.Policy(100)).passed


def test_gate_compares_the_unrounded_score() -> None:
    results = [result("low", Status.passed, n=n) for n in range(1808)]
    results += [result("low", Status.failed, n=n) for n in range(1808, 2009)]
    score = compute(results)
    assert score.value == 90.0  # 89.995… as reported
    assert not gate.evaluate(score, results, gate.Policy(90)).passed


def test_checks_and_categories_on_the_block_list_fail_the_gate_whatever_the_score() -> None:
    results = [result("low", Status.passed, n=n) for n in range(100)]
    results += [
        result("high", Status.failed, "security", 100),
        result("medium", Status.failed, n=101),
    ]
    score = compute(results)
    assert gate.evaluate(score, results, gate.Policy(0)).passed  # critical only, by default
    by_category = gate.Policy(0, block_categories=("security",))
    assert gate.evaluate(score, results, by_category).reasons == (
        "security check (blocking category) TST-100 failed: high failed",
    )
    by_id = gate.Policy(0, block_checks=("TST-101",))
    assert gate.evaluate(score, results, by_id).reasons == (
        "blocking check TST-101 failed: medium failed",
    )
    by_severity = gate.Policy(0, block_severities=("critical", "high"))
    assert not gate.evaluate(score, results, by_severity).passed


def test_a_category_below_its_own_minimum_fails_the_gate() -> None:
    results = [result("high", Status.passed, "backup", n) for n in range(3)]
    results += [result("low", Status.failed, "backup", 3)]
    results += [result("high", Status.passed, n=n) for n in range(4, 40)]
    score = compute(results)
    assert score.value > 90 and score.categories["backup"].score == pytest.approx(93.75)
    strict = gate.Policy(90, min_category_scores={"backup": 100, "slo": 100})
    verdict = gate.evaluate(score, results, strict)
    # slo has no applicable check here: nothing to hold against its minimum.
    assert verdict.reasons == ("category backup scores 93.75, below its minimum 100",)


def test_the_profile_gate_section_becomes_the_policy_and_round_trips(tmp_path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "p",
                "tier": "production",
                "gate": {
                    "min_score": 95,
                    "block": {"categories": ["security"], "checks": ["SLO-006"]},
                    "min_category_scores": {"backup": 100},
                },
            }
        )
    )
    policy = profiles.load(path).gate.policy()
    assert policy == gate.Policy(95, ("critical",), ("security",), ("SLO-006",), {"backup": 100.0})
    assert gate.Policy.from_dict(policy.to_dict()) == policy
    path.write_text("name: p\ntier: staging\ngate: {block: {categories: [securty]}}\n")
    with pytest.raises(profiles.ProfileError, match=r"gate\.block\.categories\[0\]"):
        profiles.load(path)
