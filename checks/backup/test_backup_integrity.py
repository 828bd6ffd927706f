"""Handbook › Backup and Recovery › Backup Schedule › "Verification: daily"; Compliance ›
Audit Procedures › monthly › "Verify backup integrity": the repository's structure is sound
and its data reads back intact: the part read longest ago each day, all of it monthly, and
every part within ``backup.read_all_within``. Each read is recorded, so the daily check
knows which part is due and when all the data was last read."""

from datetime import UTC, datetime

import pytest

from opsverify import family, message
from opsverify.drivers.repository import ALL, Coverage, open_repository

READS = "repository-read"
integrity_check = family(
    category="backup",
    controls=["ISO27001:A.8.13", "SOC2:A1.2", "SOC2:CC9.1"],
    runbook="runbooks/backup.md",
    cadences=["daily"],
)
# Reading a large repository back takes long; the repository's own data_timeout (profile)
# bounds each command, this only stops pytest-timeout's default from cutting it short.
LONG_S = 6 * 3600


def _verified(store, name, depth, part, evidence):
    result = store.verify(depth, part)
    evidence.json("check", result.evidence())
    # The read's own outcome: it counts for coverage when intact, whatever else failed.
    evidence.measure(
        seconds=round(result.seconds, 3), subset=result.subset or ALL, intact=result.ok
    )
    assert result.ok, (
        f"{name}: {' '.join(result.command)} found the repository damaged or unreadable: "
        + message.tail(result.output, 1500)
    )


@integrity_check(
    "BKP-005",
    "Repository structure checks out, its stalest part reads back intact, and all its data "
    "has been read within the limit",
    severity="high",
    records=READS,
)
@pytest.mark.reads_history
@pytest.mark.timeout(LONG_S)
def test_repository_integrity_daily(backup_repository, profile, history, evidence):
    backup = profile.backup
    reads = [
        (r.finished, r.figures.get("subset", ""))
        for r in history.records(READS)
        if r.parameter == backup_repository.name and r.figures.get("intact") is True
    ]
    coverage = Coverage.of(reads, backup.integrity_parts)
    part = coverage.stalest()
    store = open_repository(backup_repository)
    _verified(store, backup_repository.name, "subset", part, evidence)
    now = datetime.now(UTC)
    coverage = coverage.read(part, now)
    limit = backup.scaled(backup.read_all_within)
    oldest = min((s.time for s in store.snapshots()), default=now)
    overdue = coverage.overdue(since=oldest, before=now - limit)
    all_read = coverage.all_read_at()
    evidence.json(
        "coverage",
        {
            "read_now": f"{part[0]}/{part[1]}",
            "last_read_by_part": coverage.describe(),
            "all_read_since": all_read and all_read.isoformat(),
            "limit": str(limit),
            "oldest_snapshot": oldest.isoformat(),
            "overdue": overdue,
        },
    )
    evidence.measure(all_read_since=all_read and all_read.isoformat())
    scaled = f"{limit} ({backup.read_all_within}{backup.scale_note()})"
    when = f"last read all of it {all_read:%Y-%m-%d %H:%M %Z}" if all_read else "never all of it"
    assert not overdue, (
        f"{backup_repository.name}: "
        + message.listing(overdue, "parts", f"not read back within {scaled}")
        + f"; {when}; read {part[0]}/{part[1]} now: run BKP-006 to read all of it"
    )


@integrity_check(
    "BKP-006",
    "All of the repository's data reads back intact",
    severity="high",
    cadences=["monthly"],
    # Its reads count for BKP-005; a run of another cadence does not read it back.
    records=READS,
    replayed=False,
)
@pytest.mark.timeout(LONG_S)
def test_repository_integrity_monthly(backup_repository, evidence):
    _verified(open_repository(backup_repository), backup_repository.name, "all", None, evidence)
