"""Handbook › Backup and Recovery › "Restoring from Backup" and "Backup Verification"
(test-restore); Disaster Recovery › DR Objectives (RTO 4 hours, RPO 15 minutes): the newest
full backup is restored into scratch space and recovered to the newest possible moment,
every file and table is verified against its manifest, and the recovery's duration and data
loss are measured against the objectives (see opsverify.drill)."""

import pytest

from opsverify import check, drill, not_applicable
from opsverify.drivers.repository import RepositoryError


@check(
    "DRL-001",
    "Restore drill: the newest full backup restores, verified, within the RTO and the RPO",
    category="backup",
    severity="high",
    cadences=["monthly"],
    controls=["ISO27001:A.8.13", "ISO27001:A.5.30", "SOC2:A1.2", "SOC2:A1.3", "SOC2:CC9.1"],
    runbook="runbooks/restore-drill.md",
    destructive=True,
    records="restore-drill",
)
# It times a recovery: it takes turns with load tests, probes and the failover drill (across
# concurrent runs against the environment too).
@pytest.mark.exclusive
@pytest.mark.timeout(6 * 3600)  # each step is bounded by the profile's own timeouts
def test_restore_drill(backup_repository, profile, evidence):
    backup, dr = profile.backup, profile.dr
    if dr is None or dr.scratch is None:
        not_applicable("no scratch folder for drills configured (dr.scratch)")
    if backup.sources is None:
        not_applicable("nothing to verify a restore against: no backup.sources")
    outcome = drill.Outcome()
    try:
        drill.restore_drill(profile, backup_repository, outcome)
    except (drill.DrillError, RepositoryError) as exc:
        outcome.problems.insert(0, f"the drill stopped: {exc}")
    finally:
        evidence.json("verification", outcome.verification())
        drill.keep(
            outcome,
            profile,
            evidence,
            snapshot=outcome.snapshot.short_id if outcome.snapshot else None,
            recover_s=round(outcome.log.seconds("recover"), 3),
            verify_s=round(outcome.log.seconds("verify", "prove"), 3),
        )
    problems = drill.shortfalls(outcome, profile)
    assert not problems, "; ".join(problems)
