"""Handbook › Pre-Production Checklist › Application › "Performance testing completed",
"Load testing completed", "Chaos testing completed": a passing record of the activity in
this environment's history (written by the checks that perform it), younger than the
profile's ``testing.<activity>.within``; not applicable only where the profile says why."""

from datetime import UTC, datetime

import pytest

from opsverify import family, not_applicable
from opsverify.history import ACTIVITY_WAIT_S, HistoryError

activity_check = family(
    category="application",
    controls=["SOC2:A1.1", "ISO27001:A.8.6"],
    runbook="runbooks/testing-completed.md",
    cadences=["predeploy", "weekly"],
)


@activity_check("APP-012", "Performance testing completed recently", severity="high")
@pytest.mark.reads_history
@pytest.mark.timeout(ACTIVITY_WAIT_S + 60)
def test_performance_testing_completed(profile, history, evidence):
    _passed_recently("performance", profile, history, evidence)


@activity_check("APP-013", "Load testing completed recently", severity="high")
@pytest.mark.reads_history
@pytest.mark.timeout(ACTIVITY_WAIT_S + 60)
def test_load_testing_completed(profile, history, evidence):
    _passed_recently("load", profile, history, evidence)


@activity_check(
    "APP-014",
    "Chaos testing completed recently",
    severity="high",
    controls=["SOC2:A1.3", "ISO27001:A.5.30"],
)
@pytest.mark.reads_history
@pytest.mark.timeout(ACTIVITY_WAIT_S + 60)
def test_chaos_testing_completed(profile, history, evidence):
    _passed_recently("chaos", profile, history, evidence)


def _passed_recently(activity, profile, history, evidence):
    policy = getattr(profile.testing, activity)
    if policy.out_of_scope:
        not_applicable(f"{activity} testing is out of scope: {policy.out_of_scope}")
    try:
        records = [
            r for r in history.records(activity) if not policy.only or r.parameter in policy.only
        ]
    except HistoryError as exc:
        raise AssertionError(str(exc)) from None
    now = datetime.now(UTC)
    recent = [r for r in records if now - r.finished <= policy.within]
    passing = [r for r in recent if r.passed]
    evidence.json(
        "history",
        {
            "activity": activity,
            "history": str(history.folder),
            "within_days": policy.within.total_seconds() / 86400,
            "only": policy.only,
            "newest_records": [r.to_dict() for r in records[-10:]],
        },
    )
    kind = f"{activity} test" + (f" ({', '.join(policy.only)})" if policy.only else "")
    if passing:
        evidence.measure(last_passed=passing[-1].finished.isoformat(), run=passing[-1].run)
        return
    assert records, f"no {kind} in the history of {profile.name}: none has ever been recorded"
    if recent:
        latest = recent[-1]
        raise AssertionError(
            f"no passing {kind} in the last {_days(policy.within)}: the newest, run "
            f"{latest.run}, {latest.status}: {latest.message or 'no message'}"
        )
    last = next((r for r in reversed(records) if r.passed), None)
    since = f"the last passing one is {_days(now - last.finished)} old" if last else "none passed"
    raise AssertionError(f"no {kind} passed in the last {_days(policy.within)}: {since}")


def _days(delta):
    return f"{delta.total_seconds() / 86400:.1f} days"
