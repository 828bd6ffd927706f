"""The backup job's pieces without a sandbox: the schedule the sandbox deploys, retention,
the WAL archive's pruning, change detection against a manifest, the daily read coverage."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opsverify import backups
from opsverify import profile as profiles
from opsverify.drivers.repository import ALL, Coverage, Snapshot, newest
from opsverify.sandbox.provision import scheduler_config
from tests.helpers import ROOT

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def snap(name: str, kind: str, minutes_ago: float, *extra: str) -> Snapshot:
    return Snapshot(name, NOW - timedelta(minutes=minutes_ago), (kind, *extra), ())


def test_the_sandbox_deploys_the_handbook_schedule_compressed(tmp_path: Path) -> None:
    local = profiles.load(ROOT / "environments" / "local.yaml")
    settings = local.sandbox_settings()
    assert settings is not None and local.backup is not None
    plan = settings.backups
    assert plan.time_scale == 60 and plan.rpo == timedelta(minutes=15)
    assert plan.seconds(plan.full.every) == 24 * 60  # a day in 24 minutes
    assert plan.archive_timeout_s == 5  # a third of the 15 s the RPO becomes
    # What the scheduler is told (and BKP-004 reads back) is the handbook's table as is.
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(scheduler_config(settings))
    deployed = profiles.load_policy(policy_file)
    assert deployed.time_scale == local.backup.time_scale
    assert [(r.type, r.frequency, r.retention) for r in deployed.schedule] == [
        (e.type, e.frequency, e.retention) for e in local.backup.schedule
    ]
    assert "restic_password" in policy_file.read_text()  # the file's name, never its value


def test_a_policy_file_problem_names_the_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("schedule:\n  - {type: full, frequency: daily, retention: 30d}\n")
    try:
        profiles.load_policy(bad)
    except profiles.ProfileError as exc:
        assert f"{bad}: schedule[0].frequency" in str(exc)
    else:
        raise AssertionError("a bad policy file loaded")


def test_expired_snapshots_are_those_beyond_their_rows_retention_but_the_newest() -> None:
    snapshots = [
        snap("f-old", "full", 200),
        snap("f-new", "full", 10),
        snap("i-old", "incremental", 61),
        snap("i-new", "incremental", 1),
        snap("c-only", "configuration", 500),  # beyond retention, but the only one
        snap("pre", "full", 300, "pre-deploy"),
    ]
    keep = {"full": timedelta(minutes=120), "incremental": timedelta(minutes=60)}
    keep["configuration"] = timedelta(minutes=100)
    gone = {s.id for s in backups.expired(snapshots, keep, NOW)}
    assert gone == {"f-old", "i-old", "pre"}
    assert newest(snapshots, ("incremental", "full")).id == "i-new"
    assert snapshots[-1].kind == "full"  # a pre-deploy backup is a full one


def test_the_wal_archive_keeps_what_the_newest_base_backup_needs(tmp_path: Path) -> None:
    names = [f"0000000100000000000000{n:02X}" for n in range(1, 7)]
    for age, name in zip((600, 500, 400, 300, 20, 10), names, strict=True):
        (tmp_path / name).write_bytes(b"")
        stamp = time.time() - age
        os.utime(tmp_path / name, (stamp, stamp))
    (tmp_path / f"{names[2]}.00000028.backup").write_text("label")  # not a segment
    cutoff = datetime.now(UTC) - timedelta(seconds=100)
    removed = backups.prune_archive(tmp_path, cutoff, needed_from=names[2])
    assert removed == names[:2]  # older than the cutoff, and before the base backup's start
    assert [s.name for s in backups.archived_segments(tmp_path)] == names[2:]


def test_changes_since_a_manifest_name_each_file(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    for name in ("kept", "edited", "deleted"):
        (config / name).write_text(name)
    hasher = backups.Hasher()
    recorded = hasher.files([config])
    (config / "edited").write_text("edited again")
    (config / "deleted").unlink()
    (config / "added").write_text("new")
    found = {(Path(c.path).name, c.how) for c in backups.changes(recorded, [config], hasher)}
    assert found == {("edited", "changed"), ("deleted", "removed"), ("added", "added")}
    assert recorded[str(config / "kept")]["sha256"] == hashlib.sha256(b"kept").hexdigest()


def test_the_daily_part_is_the_stalest_so_every_part_is_read_in_turn() -> None:
    coverage = Coverage.of([], 30)
    for day in range(30):
        part = coverage.stalest()
        coverage = coverage.read(part, NOW + timedelta(days=day))
        assert part == (day + 1, 30)
    assert coverage.all_read_at() == NOW
    # A day without a check skips no part: the next one is still the stalest.
    assert coverage.stalest() == (1, 30)
    assert coverage.read((1, 30), NOW + timedelta(days=40)).stalest() == (2, 30)


def test_a_full_read_counts_for_every_part_and_reads_of_another_division_for_none() -> None:
    reads = [(NOW - timedelta(days=3), "2/3"), (NOW - timedelta(days=2), ALL)]
    reads += [(NOW - timedelta(days=1), "1/30")]  # the profile had 30 parts then
    coverage = Coverage.of(reads, 3)
    assert coverage.last_read == (NOW - timedelta(days=2),) * 3
    assert coverage.all_read_at() == NOW - timedelta(days=2)
    assert Coverage.of([(NOW, "1/30")], 3).last_read == (None, None, None)


def test_a_part_is_overdue_when_unread_within_the_limit_counted_from_the_oldest_data() -> None:
    coverage = Coverage.of([(NOW - timedelta(days=40), "1/3"), (NOW, "2/3")], 3)
    limit = NOW - timedelta(days=31)
    # Part 3 was never read: overdue only once the repository is older than the limit.
    assert coverage.overdue(since=NOW - timedelta(days=10), before=limit) == ["1/3"]
    assert coverage.overdue(since=NOW - timedelta(days=60), before=limit) == ["1/3", "3/3"]
    assert Coverage.of([], 3).all_read_at() is None
