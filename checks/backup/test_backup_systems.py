"""Handbook › Infrastructure › "Backup systems configured"; Daily Operations › "Verify backup
completion" (per schedule row, integrity and retention: test_backup_schedule.py and
test_backup_integrity.py)."""

from datetime import UTC, datetime, timedelta

from opsverify import check
from opsverify.drivers.repository import open_repository


@check(
    "BKP-001",
    "Backup repository opens with the configured credentials and holds snapshots",
    category="backup",
    severity="critical",
    cadences=["predeploy", "daily"],
    controls=["SOC2:A1.2", "ISO27001:A.8.13"],
    runbook="runbooks/backup.md",
)
def test_repository_holds_snapshots(backup_repository, evidence):
    found = open_repository(backup_repository).snapshots()
    evidence.json("snapshots", [s.describe() for s in found])
    assert found, f"{backup_repository.name}: the repository holds no snapshot"


@check(
    "OPS-002",
    "The newest backup completed recently enough",
    category="operations",
    severity="critical",
    cadences=["daily"],
    controls=["SOC2:A1.2", "ISO27001:A.8.13"],
    runbook="runbooks/backup.md",
)
def test_backup_completed_recently(backup_repository, profile, evidence):
    found = open_repository(backup_repository).snapshots()
    assert found, f"{backup_repository.name}: the repository holds no snapshot"
    newest = max(s.time for s in found)
    age = timedelta(seconds=round((datetime.now(UTC) - newest).total_seconds()))
    backup = profile.backup
    limit = backup.scaled(backup.completed_within)
    evidence.json("newest", {"time": newest.isoformat(), "age": str(age), "limit": str(limit)})
    assert age <= limit, (
        f"{backup_repository.name}: newest snapshot {newest:%Y-%m-%d %H:%M:%S %Z} is {age} old, "
        f"the limit is {limit} ({backup.completed_within}{backup.scale_note()})"
    )
