"""Handbook › Backup and Recovery › Backup Schedule › "Verification: daily"; Compliance ›
Audit Procedures › "Verify backup integrity": the repository's structure is sound and its
data reads back intact (a rotating part of it daily, all of it monthly)."""

from datetime import UTC, datetime

import pytest

from opsverify import family
from opsverify.drivers.repository import open_repository, rotating_part

integrity_check = family(
    category="backup",
    controls=["ISO27001:A.8.13", "SOC2:A1.2", "SOC2:CC9.1"],
    runbook="runbooks/backup.md",
    cadences=["daily"],
)
# Reading a large repository back takes long; the repository's own data_timeout (profile)
# bounds each command, this only stops pytest-timeout's default from cutting it short.
LONG_S = 6 * 3600


def _verified(repository, depth, part, evidence):
    result = open_repository(repository).verify(depth, part)
    evidence.json("check", result.evidence())
    evidence.measure(seconds=round(result.seconds, 3), subset=result.subset)
    assert result.ok, (
        f"{repository.name}: {' '.join(result.command)} found the repository damaged or "
        f"unreadable: {result.output.strip()[-1500:]}"
    )


@integrity_check(
    "BKP-005",
    "Repository structure checks out and today's part of its data reads back intact",
    severity="high",
)
@pytest.mark.timeout(LONG_S)
def test_repository_integrity_daily(backup_repository, profile, evidence):
    part = rotating_part(datetime.now(UTC).date(), profile.backup.integrity_parts)
    _verified(backup_repository, "subset", part, evidence)


@integrity_check(
    "BKP-006",
    "All of the repository's data reads back intact",
    severity="high",
    cadences=["monthly"],
)
@pytest.mark.timeout(LONG_S)
def test_repository_integrity_monthly(backup_repository, evidence):
    _verified(backup_repository, "all", None, evidence)
