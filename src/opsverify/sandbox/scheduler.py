"""The sandbox's backup scheduler, a supervised program: the handbook's backup schedule at the
sandbox's time scale.

It creates the restic repository when missing, then runs the schedule of its config file
(``config/backup-schedule.json``, written by ``sandbox up``): full and incremental backups
at their intervals, a configuration backup whenever a configuration file changes, and the
retention of every row (``restic forget`` of expired snapshots, ``restic prune`` now and
then, expired segments deleted from the WAL archive). Each backup carries its manifest
(``opsverify.backups``). It reports to a status file that ``sandbox up`` and ``status`` read.

Like any scheduler it runs until stopped (SIGTERM: it finishes the backup in progress);
every backup, restic and PostgreSQL call in it is bounded by its own timeout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from opsverify import backups
from opsverify.drivers import postgres
from opsverify.drivers.postgres import PostgresError
from opsverify.drivers.repository import (
    SNAPSHOT_KINDS,
    Repository,
    RepositoryError,
    Snapshot,
    open_repository,
)
from opsverify.profile import BackupRepository, BackupSources, DeployedPolicy, PostgresSource

log = logging.getLogger("backup-scheduler")

TICK_S = 1.0
RETRY_S = 5.0  # after a failed backup
RELIST_S = 300.0  # re-read the repository's snapshots (someone else may have changed it)
PRUNE_EVERY_S = 600.0
_FAILURES = (backups.BackupError, RepositoryError, PostgresError, psycopg.Error, OSError)


@dataclass
class Scheduler:
    repository: Repository
    sources: BackupSources
    policy: DeployedPolicy
    status_file: Path
    hasher: backups.Hasher = field(default_factory=backups.Hasher)
    snapshots: list[Snapshot] = field(default_factory=list)
    due: dict[str, float] = field(default_factory=dict)
    last: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    config_files: dict[str, dict[str, Any]] | None = None  # as the newest backup of them saw
    wal_start: str | None = None  # the oldest WAL segment the newest full backup needs
    wal_watch: WalWatch | None = None
    listed_at: float = 0.0
    pruned_at: float = 0.0
    forgotten: int = 0
    prepared: bool = False
    stopping: bool = False

    def every(self, kind: str) -> float | None:
        """Seconds between backups of ``kind`` (None: on change only, or not scheduled)."""
        row = self._row(kind)
        if row is None or row.frequency == "on_change":
            return None
        return row.frequency.total_seconds() / self.policy.time_scale

    def keep(self, kind: str) -> timedelta | None:
        row = self._row(kind)
        return None if row is None else row.retention / self.policy.time_scale

    def _row(self, kind: str) -> Any:
        return next((r for r in self.policy.schedule if r.type == kind), None)

    # --- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        while not self.stopping:
            started = time.monotonic()
            if self.prepared or self._prepare():
                self.tick()
            self.write_status()
            time.sleep(max(0.0, TICK_S - (time.monotonic() - started)))

    def _prepare(self) -> bool:
        """Create the repository if needed and learn where each row stands."""
        try:
            if not self.repository.exists():
                log.info("creating the repository")
                self.repository.init()
            self._relist()
            now = time.time()
            for kind in SNAPSHOT_KINDS:
                newest, every = _newest(self.snapshots, kind), self.every(kind)
                if newest is None:
                    self.due[kind] = now
                else:  # on change only: when a change is seen
                    self.due[kind] = newest.time.timestamp() + (every or float("inf"))
            self._learn_from(_newest(self.snapshots, "full"), "full")
            self._learn_from(_newest_config(self.snapshots), "configuration")
        except _FAILURES as exc:
            self.errors["repository"] = str(exc)
            log.warning("not ready yet: %s", exc)
            time.sleep(RETRY_S)
            return False
        self.errors.pop("repository", None)
        self.prepared = True
        return True

    def _learn_from(self, snapshot: Snapshot | None, kind: str) -> None:
        """What the newest snapshot's manifest says: config files, the base backup's WAL."""
        if snapshot is None:
            return
        try:
            manifest = backups.read_manifest(self.repository, self.sources, snapshot)
        except backups.BackupError as exc:
            log.info("%s: %s; the next backup replaces it", kind, exc)
            return
        self._remember(manifest)

    def _remember(self, manifest: dict[str, Any]) -> None:
        if manifest["kind"] in ("full", "configuration"):
            roots = [str(p) for p in self.sources.config_paths]
            self.config_files = {
                p: e
                for p, e in manifest["files"].items()
                if any(p == r or p.startswith(f"{r}{os.sep}") for r in roots)
            }
        if manifest["kind"] == "full" and "base_backup" in manifest:
            self.wal_start = manifest["base_backup"]["wal_start"]

    def tick(self) -> None:
        now = time.time()
        if self._row("configuration") is not None and (
            now >= self.due["configuration"] or self._config_changed()
        ):
            self.backup("configuration")
        for kind in ("full", "incremental"):
            if self._row(kind) is not None and time.time() >= self.due[kind]:
                self.backup(kind)
        self.apply_retention()
        if self.wal_watch is not None:
            self.wal_watch.tick()

    def _config_changed(self) -> bool:
        if self.config_files is None:
            return True
        return bool(backups.changes(self.config_files, self.sources.config_paths, self.hasher))

    def backup(self, kind: str) -> None:
        started = time.time()
        try:
            created = backups.create(self.repository, self.sources, kind, hasher=self.hasher)
        except _FAILURES as exc:
            self.errors[kind] = str(exc)
            self.due[kind] = time.time() + RETRY_S
            log.warning("%s backup failed: %s", kind, exc)
            return
        self.errors.pop(kind, None)
        self._remember(created.manifest)
        self.snapshots.append(
            Snapshot(
                id=created.snapshot_id,
                time=datetime.fromtimestamp(started, UTC),
                tags=tuple(created.manifest["tags"]),
                paths=(),
            )
        )
        every = self.every(kind)
        self.due[kind] = started + every if every is not None else float("inf")
        if kind == "full":  # a full backup holds everything an incremental one would
            after_full = started + (self.every("incremental") or 0)
            self.due["incremental"] = max(self.due["incremental"], after_full)
        self.last[kind] = {
            "snapshot": created.snapshot_id[:8],
            "at": datetime.fromtimestamp(started, UTC).isoformat(),
            "seconds": round(created.seconds, 3),
        }
        log.info("%s backup %s in %.1f s", kind, created.snapshot_id[:8], created.seconds)

    # --- retention ------------------------------------------------------------------------

    def apply_retention(self) -> None:
        now = datetime.now(UTC)
        keep = {k: d for k in SNAPSHOT_KINDS if (d := self.keep(k)) is not None}
        try:
            if time.time() - self.listed_at > RELIST_S:
                self._relist()
            gone = backups.expired(self.snapshots, keep, now)
            if gone:
                self.repository.forget([s.id for s in gone])
                self.forgotten += len(gone)
                log.info("forgot %d expired snapshots", len(gone))
                self._relist()
            if self.forgotten and time.time() - self.pruned_at > PRUNE_EVERY_S:
                self.repository.prune()
                self.pruned_at, self.forgotten = time.time(), 0
                log.info("pruned the repository")
            wal_keep = self.keep("transaction_logs")
            archive = self.sources.postgres.wal_archive if self.sources.postgres else None
            if wal_keep is not None and archive is not None:
                removed = backups.prune_archive(archive, now - wal_keep, self.wal_start)
                if removed:
                    log.info("deleted %d expired WAL segments", len(removed))
        except _FAILURES as exc:
            self.errors["retention"] = str(exc)
            log.warning("retention not applied: %s", exc)
            return
        self.errors.pop("retention", None)

    def _relist(self) -> None:
        self.snapshots = self.repository.snapshots()
        self.listed_at = time.time()

    # --- status ---------------------------------------------------------------------------

    def waiting_for(self) -> list[str]:
        """Scheduled rows without a first backup yet (an incremental row is served by a
        full backup until its own first one)."""
        if not self.prepared:
            return ["the repository"]
        have = {s.kind for s in self.snapshots}
        if "full" in have:
            have.add("incremental")
        return [k for k in SNAPSHOT_KINDS if self._row(k) is not None and k not in have]

    def write_status(self) -> None:
        waiting = self.waiting_for()
        status = {
            "pid": os.getpid(),
            "updated": datetime.now(UTC).isoformat(),
            "ready": not waiting,
            "waiting_for": waiting,
            "last": self.last,
            "errors": self.errors,
        }
        temporary = self.status_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(status, indent=1, sort_keys=True))
        temporary.replace(self.status_file)


@dataclass
class WalWatch:
    """After a restart PostgreSQL 15 leaves archive_timeout idle for a while (seen: 14 s to
    5 min, beyond the RPO): its checkpointer sleeps for checkpoint_timeout when it starts
    during recovery, and no forced switch happens before the first segment boundary. So
    whenever the server has (re)started: a reload to wake the checkpointer, and a switch."""

    source: PostgresSource
    conn: psycopg.Connection | None = None
    started: datetime | None = None

    def tick(self) -> None:
        try:
            if self.conn is None:
                self.conn = postgres.connect(self.source, autocommit=True)
            row = self.conn.execute("SELECT pg_postmaster_start_time()").fetchone()
            if row is not None and row[0] != self.started:
                self.conn.execute("SELECT pg_reload_conf(), pg_switch_wal()")
                log.info("PostgreSQL started at %s: woke archive_timeout", row[0])
                self.started = row[0]
        except (PostgresError, psycopg.Error):  # down or restarting: the next tick sees
            if self.conn is not None:
                self.conn.close()
            self.conn = None


def _newest(snapshots: list[Snapshot], kind: str) -> Snapshot | None:
    own = [s for s in snapshots if s.kind == kind]
    return max(own, key=lambda s: s.time) if own else None


def _newest_config(snapshots: list[Snapshot]) -> Snapshot | None:
    both = [s for s in snapshots if s.kind in ("full", "configuration")]
    return max(both, key=lambda s: s.time) if both else None


def load(config: Path) -> Scheduler:
    data = json.loads(config.read_text())
    sources = BackupSources.model_validate(data["sources"])
    database = sources.postgres
    return Scheduler(
        repository=open_repository(
            BackupRepository.model_validate(data["repository"]), cache_dir=Path(data["cache_dir"])
        ),
        sources=sources,
        policy=DeployedPolicy.model_validate(data),
        status_file=Path(data["status_file"]),
        wal_watch=WalWatch(database) if database and database.wal_archive else None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    scheduler = load(args.config)

    def stop(signum: int, frame: Any) -> None:
        scheduler.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("running %s", args.config)
    scheduler.run()
    log.info("stopped")


if __name__ == "__main__":
    main()
