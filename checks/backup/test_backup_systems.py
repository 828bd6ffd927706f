"""Handbook › Infrastructure › "Backup systems configured" (deep checks: the backup drills)."""

from opsverify import check
from opsverify.drivers import restic


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
    found = restic.snapshots(backup_repository)
    evidence.json(
        "snapshots",
        [{k: s.get(k) for k in ("short_id", "time", "hostname", "tags", "paths")} for s in found],
    )
    assert found, f"{backup_repository.name}: the repository holds no snapshot"
