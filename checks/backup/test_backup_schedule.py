"""Handbook › Backup and Recovery › Backup Schedule: each row of the table runs on time and is
kept as long as the table says; the transaction logs keep the recovery point inside the DR
objective (RPO); Deployment › Pre-Deployment › "Create backup before deployment".

Times are the handbook's divided by ``backup.time_scale`` (1 everywhere but in a sandbox,
which lives the schedule faster).
"""

from datetime import UTC, datetime, timedelta

from opsverify import backups, family, not_applicable
from opsverify.drivers import postgres
from opsverify.drivers.repository import PRE_DEPLOY, newest, open_repository
from opsverify.profile import ProfileError, load_policy

backup_check = family(
    category="backup",
    controls=["ISO27001:A.8.13", "SOC2:A1.2", "SOC2:CC9.1"],
    runbook="runbooks/backup.md",
    cadences=["daily"],
)

# Which snapshots serve a schedule row: a full backup holds what an incremental one would.
SERVED_BY = {"full": ("full",), "incremental": ("incremental", "full")}


def _ago(moment: datetime) -> timedelta:
    return _rounded(datetime.now(UTC) - moment)


def _rounded(span: timedelta) -> timedelta:
    return timedelta(seconds=round(span.total_seconds()))


@backup_check(
    "BKP-002",
    "The newest backup of each schedule row is younger than its interval plus grace",
    severity="critical",
)
def test_schedule_row_is_fresh(backup_schedule, profile, evidence):
    backup, row = profile.backup, backup_schedule
    grace = backup.grace_for(row)
    if row.type == "transaction_logs":
        database = _database(profile, "transaction logs")
        _wal_fresh(database, backup, row.frequency + grace, f"{row.frequency} + {grace}", evidence)
    elif row.frequency == "on_change":
        _configuration_backed_up(profile, backup.scaled(grace), evidence)
    else:
        limit = backup.scaled(row.frequency + grace)
        wanted = f"{row.frequency} + {grace} grace{backup.scale_note()}"
        problems, seen = [], []
        for repository in backup.repositories:
            found = newest(open_repository(repository).snapshots(), SERVED_BY[row.type])
            seen.append({"repository": repository.name, "newest": found and found.describe()})
            if found is None:
                problems.append(f"{repository.name}: no {row.type} backup at all")
            elif _ago(found.time) > limit:
                problems.append(
                    f"{repository.name}: the newest {row.type} backup, {found.short_id} of "
                    f"{found.time:%Y-%m-%d %H:%M:%S %Z}, is {_ago(found.time)} old; "
                    f"the limit is {_rounded(limit)} ({wanted})"
                )
        evidence.json("newest", {"row": row.type, "limit": str(limit), "repositories": seen})
        assert backup.repositories, "no backup repository configured (backup.repositories)"
        assert not problems, "; ".join(problems)


def _database(profile, what: str):
    sources = profile.backup.sources
    database = sources.postgres if sources else None
    if database is None or database.wal_archive is None:
        raise AssertionError(
            f"{what} cannot be verified: no WAL archive configured "
            "(backup.sources.postgres.wal_archive)"
        )
    return database


def _wal_fresh(database, backup, objective: timedelta, wanted: str, evidence) -> None:
    """The newest archived WAL segment is younger than ``objective`` (scaled)."""
    limit = backup.scaled(objective)
    segments = backups.archived_segments(database.wal_archive)
    found = segments[-1] if segments else None
    try:
        archiver = postgres.archiver(database)
    except postgres.PostgresError as exc:
        archiver = {"unavailable": str(exc)}
    evidence.json(
        "wal-archive",
        {
            "archive": str(database.wal_archive),
            "segments": len(segments),
            "newest": found and {"name": found.name, "archived": found.archived.isoformat()},
            "limit": str(limit),
            "pg_stat_archiver": archiver,
        },
    )
    assert found is not None, f"{database.wal_archive}: no WAL segment has ever been archived"
    age = _ago(found.archived)
    evidence.measure(newest_wal_age_s=age.total_seconds())
    failing = ""
    last_failed, last_ok = archiver.get("last_failed_time"), archiver.get("last_archived_time")
    if last_failed and (last_ok is None or last_failed > last_ok):
        failing = (
            f"; archive_command is failing ({archiver['failed_count']} failures, the last at "
            f"{last_failed:%H:%M:%S %Z} on {archiver['last_failed_wal']})"
        )
    assert age <= limit, (
        f"the newest archived WAL segment, {found.name}, is {age} old; the limit is "
        f"{_rounded(limit)} ({wanted}{backup.scale_note()}){failing}"
    )


def _configuration_backed_up(profile, grace: timedelta, evidence) -> None:
    """Every configuration change older than the grace is in the newest backup of it."""
    backup = profile.backup
    sources = backup.sources
    if sources is None or not sources.config_paths:
        raise AssertionError(
            "configuration backups cannot be verified: no configuration folders configured "
            "(backup.sources.config_paths)"
        )
    hasher, problems, seen = backups.Hasher(), [], []
    for repository in backup.repositories:
        store = open_repository(repository)
        found = newest(store.snapshots(), ("configuration", "full"))
        if found is None:
            problems.append(f"{repository.name}: no configuration backup at all")
            continue
        manifest = backups.read_manifest(store, sources, found)
        late = [
            c
            for c in backups.changes(manifest["files"], sources.config_paths, hasher)
            if _ago(c.at) > grace
        ]
        seen.append(
            {
                "repository": repository.name,
                "newest": found.describe(),
                "unsaved_changes": [
                    {"path": c.path, "how": c.how, "at": c.at.isoformat()} for c in late
                ],
            }
        )
        if late:
            listed = ", ".join(f"{c.path} ({c.how} {_ago(c.at)} ago)" for c in late)
            problems.append(
                f"{repository.name}: configuration changed after its newest backup "
                f"{found.short_id} of {found.time:%Y-%m-%d %H:%M:%S %Z}: {listed}"
            )
    evidence.json("configuration", {"grace": str(grace), "repositories": seen})
    assert backup.repositories, "no backup repository configured (backup.repositories)"
    assert not problems, "; ".join(problems)


@backup_check(
    "BKP-003",
    "The newest archived WAL segment is younger than the RPO objective",
    severity="critical",
    cadences=["predeploy", "daily"],
    controls=["ISO27001:A.8.13", "ISO27001:A.5.30", "SOC2:A1.2", "SOC2:CC9.1"],
)
def test_wal_within_rpo(wal_archive, profile, evidence):
    if profile.dr is None:
        not_applicable("no recovery point objective configured (dr.rpo)")
    _wal_fresh(wal_archive, profile.backup, profile.dr.rpo, f"RPO {profile.dr.rpo}", evidence)


@backup_check(
    "BKP-004",
    "Schedule and retention configured as the handbook says, and retention applied",
    severity="high",
)
def test_retention_configured_and_applied(backup_schedule, profile, evidence):
    backup, row = profile.backup, backup_schedule
    problems: list[str] = []
    configured = [_configured(r, row, backup.time_scale, problems) for r in backup.repositories]
    limit = backup.scaled(row.retention + backup.grace_for(row))
    wanted = f"{row.retention} + {backup.grace_for(row)} grace{backup.scale_note()}"
    if row.type == "transaction_logs":
        oldest = _oldest_unneeded_segment(profile, evidence)
        if oldest is not None and _ago(oldest.archived) > limit:
            problems.append(
                f"WAL segment {oldest.name} is {_ago(oldest.archived)} old: transaction-log "
                f"retention not applied (limit {_rounded(limit)}, {wanted})"
            )
    else:
        for repository in backup.repositories:
            own = sorted(
                (s for s in open_repository(repository).snapshots() if s.kind == row.type),
                key=lambda s: s.time,
            )
            # The newest one stays whatever its age: it is the one a restore would use.
            stale = [s for s in own[:-1] if _ago(s.time) > limit]
            if stale:
                problems.append(
                    f"{repository.name}: {len(stale)} {row.type} snapshots beyond retention, "
                    f"the oldest {stale[0].short_id} is {_ago(stale[0].time)} old "
                    f"(limit {_rounded(limit)}, {wanted}): `restic forget` is not applied"
                )
    evidence.json(
        "retention",
        {
            "handbook": {
                "type": str(row.type),
                "frequency": str(row.frequency),
                "retention": str(row.retention),
                "time_scale": backup.time_scale,
            },
            "configured": configured,
            "limit": str(limit),
        },
    )
    assert not problems, "; ".join(problems)


def _configured(repository, row, time_scale: float, problems: list[str]) -> dict:
    """The repository's deployed policy for ``row``, comparing it with the handbook's."""
    if repository.policy_file is None:
        problems.append(
            f"{repository.name}: no policy_file: restic keeps no retention policy of its own, "
            "so name the file the backup job reads it from"
        )
        return {"repository": repository.name, "policy_file": None}
    try:
        policy = load_policy(repository.policy_file)
    except ProfileError as exc:
        problems.append(str(exc))
        return {"repository": repository.name, "policy_file": str(repository.policy_file)}
    deployed = next((r for r in policy.schedule if r.type == row.type), None)
    where = f"{repository.name} ({repository.policy_file})"
    if deployed is None:
        problems.append(f"{where}: no {row.type} row configured")
    else:
        for key in ("frequency", "retention"):
            if getattr(deployed, key) != getattr(row, key):
                problems.append(
                    f"{where}: {row.type} {key} configured {getattr(deployed, key)}, "
                    f"the handbook says {getattr(row, key)}"
                )
    if policy.time_scale != time_scale:
        problems.append(
            f"{where}: runs at time scale {policy.time_scale:g}, the profile expects {time_scale:g}"
        )
    return {
        "repository": repository.name,
        "policy_file": str(repository.policy_file),
        "time_scale": policy.time_scale,
        "row": deployed and {k: str(v) for k, v in deployed.model_dump().items()},
    }


def _oldest_unneeded_segment(profile, evidence):
    """The oldest archived segment that recovery from the newest full backup does not need
    (without a readable manifest of that backup, every segment counts)."""
    database = _database(profile, "transaction-log retention")
    needed_from, notes = [], []
    for repository in profile.backup.repositories:
        store = open_repository(repository)
        full = newest(store.snapshots(), ("full",))
        try:
            manifest = backups.read_manifest(store, profile.backup.sources, full) if full else {}
        except backups.BackupError as exc:
            notes.append(str(exc))
            continue
        if start := manifest.get("base_backup", {}).get("wal_start"):
            needed_from.append(start)
    oldest_needed = min(needed_from, default=None)
    evidence.json("needed-wal", {"needed_from": oldest_needed, "notes": notes})
    unneeded = [
        s
        for s in backups.archived_segments(database.wal_archive)
        if oldest_needed is None or s.name < oldest_needed
    ]
    return unneeded[0] if unneeded else None


@backup_check(
    "BKP-007",
    "A full backup newer than the pre-deployment limit exists",
    severity="critical",
    cadences=["predeploy"],
)
def test_backup_before_deployment(backup_repository, profile, evidence):
    backup = profile.backup
    limit = backup.scaled(backup.predeploy_within)
    found = newest(open_repository(backup_repository).snapshots(), ("full",))
    evidence.json(
        "newest-full",
        {"newest": found and found.describe(), "limit": str(limit), "tag": PRE_DEPLOY},
    )
    remedy = f"run `opsverify backup create --env {profile.name} --tag {PRE_DEPLOY}` first"
    assert found is not None, f"{backup_repository.name}: no full backup at all; {remedy}"
    assert _ago(found.time) <= limit, (
        f"{backup_repository.name}: the newest full backup, {found.short_id}, is "
        f"{_ago(found.time)} old, more than {_rounded(limit)} ({backup.predeploy_within}"
        f"{backup.scale_note()}) before this deployment; {remedy}"
    )
