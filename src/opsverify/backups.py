"""A backup as opsverify takes it, and the manifest that makes it verifiable.

Every backup first writes, into its staging folder, a manifest: the SHA-256 of every file it
holds and, for the database, each table's row count and content checksum and the newest
heartbeat, all read in the same transaction snapshot that pg_dump then dumps. The manifest
goes into the snapshot with the data (``<staging>/manifest.json``), so a restore can be
verified against what was there at backup time. Kinds: ``full`` (database dump and base
backup, data and configuration, every file re-read), ``incremental`` (database dump and data,
unchanged files taken from the previous snapshot), ``configuration`` (the configuration
folders). Transaction logs are PostgreSQL's WAL archive (``archived_segments``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from opsverify.drivers import postgres
from opsverify.drivers.repository import SNAPSHOT_KINDS, Repository, Snapshot
from opsverify.profile import BackupSources, PostgresSource

MANIFEST = "manifest.json"
DUMP = "database.dump"
BASE = "base"
MANIFEST_VERSION = 1
LOCK_WAIT_S = 600  # another backup of the same sources (the scheduler, a pre-deploy one)
_WAL_SEGMENT = re.compile(r"^[0-9A-F]{24}$")


class BackupError(RuntimeError):
    """A backup could not be taken or its manifest read; says which and why."""


@dataclass
class Hasher:
    """SHA-256 of files, remembered by (inode, size, mtime) so a long-running scheduler
    reads only what changed since its previous backup."""

    _known: dict[tuple[str, int, int, int], str] = field(default_factory=dict)

    def sha256(self, path: Path) -> str:
        st = path.stat()
        key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in self._known:
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
            self._known[key] = digest.hexdigest()
        return self._known[key]

    def files(self, roots: Iterable[Path]) -> dict[str, dict[str, Any]]:
        """Every regular file below ``roots``: absolute path -> sha256 and size."""
        found: dict[str, dict[str, Any]] = {}
        for root in roots:
            for path in sorted(_walk(root)):
                found[str(path)] = {"sha256": self.sha256(path), "size": path.stat().st_size}
        return found


def _walk(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                yield path


@dataclass(frozen=True)
class Created:
    snapshot_id: str
    manifest: dict[str, Any]
    seconds: float


def paths_of(sources: BackupSources, kind: str) -> list[Path]:
    """What a snapshot of ``kind`` holds (the staging folder carries dump and manifest)."""
    if kind == "full":
        return [*sources.data_paths, *sources.config_paths, sources.staging]
    if kind == "incremental":
        return [*sources.data_paths, sources.staging]
    if kind == "configuration":
        return [*sources.config_paths, sources.staging]
    raise ValueError(f"unknown backup kind {kind!r}; expected one of {', '.join(SNAPSHOT_KINDS)}")


def manifest_path(sources: BackupSources) -> str:
    return str(sources.staging / MANIFEST)


@contextlib.contextmanager
def _staging(sources: BackupSources) -> Iterator[Path]:
    """The staging folder, emptied and held for this backup alone (bounded wait)."""
    staging = sources.staging
    staging.parent.mkdir(parents=True, exist_ok=True)
    with Path(f"{staging}.lock").open("w") as lock:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BackupError(f"{staging}: busy for {LOCK_WAIT_S} s") from None
                time.sleep(0.5)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        yield staging


def create(
    repository: Repository,
    sources: BackupSources,
    kind: str,
    tags: Sequence[str] = (),
    hasher: Hasher | None = None,
) -> Created:
    """Take one backup of ``kind`` with its manifest; returns the snapshot id."""
    started = time.monotonic()
    paths = paths_of(sources, kind)
    hasher = hasher or Hasher()
    with _staging(sources) as staging:
        manifest: dict[str, Any] = {
            "version": MANIFEST_VERSION,
            "kind": kind,
            "tags": [kind, *tags],
            "created": datetime.now(UTC).isoformat(),
            "host": platform.node(),
        }
        database = sources.postgres
        if database is not None and kind in ("full", "incremental"):
            try:
                manifest["database"] = _dump(database, staging / DUMP)
                if kind == "full" and database.base_backup:
                    start = postgres.base_backup(database, staging / BASE)
                    manifest["base_backup"] = {"folder": str(staging / BASE), "wal_start": start}
            except psycopg.Error as exc:
                raise BackupError(f"{postgres.describe(database)}: {exc}") from None
        manifest["files"] = hasher.files(paths)  # the manifest itself is not written yet
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        snapshot_id = repository.backup(paths, manifest["tags"], full=kind == "full")
    return Created(snapshot_id, manifest, time.monotonic() - started)


def _dump(database: PostgresSource, target: Path) -> dict[str, Any]:
    """Dump the database and describe, from the same snapshot, what the dump holds."""
    with postgres.consistent_view(database) as (conn, snapshot):
        row = conn.execute("SELECT now()").fetchone()
        tables = postgres.table_sums(conn)
        heartbeat = (
            postgres.newest_heartbeat(conn, database.heartbeat) if database.heartbeat else None
        )
        postgres.dump(database, target, snapshot=snapshot)
    return {
        "name": database.dbname,
        "dump": str(target),
        "taken": row[0].isoformat() if row else None,
        "tables": {name: s.to_dict() for name, s in tables.items()},
        "heartbeat": heartbeat.isoformat() if heartbeat else None,
    }


def read_manifest(repository: Repository, sources: BackupSources, snapshot: Snapshot) -> dict:
    try:
        text = repository.read_text(snapshot.id, manifest_path(sources))
        manifest = json.loads(text)
    except ValueError:
        raise BackupError(f"snapshot {snapshot.short_id}: its manifest is not JSON") from None
    except RuntimeError as exc:
        raise BackupError(
            f"snapshot {snapshot.short_id} has no readable manifest at "
            f"{manifest_path(sources)}: {exc}"
        ) from None
    if manifest.get("version") != MANIFEST_VERSION:
        raise BackupError(f"snapshot {snapshot.short_id}: manifest version is not 1")
    return manifest


@dataclass(frozen=True)
class Change:
    """A live file that differs from a backup's manifest."""

    path: str
    how: str  # changed, added, removed
    at: datetime  # when (its modification time, or its folder's for a removed file)


def changes(
    recorded: dict[str, dict[str, Any]], roots: Sequence[Path], hasher: Hasher
) -> list[Change]:
    """What changed below ``roots`` since ``recorded`` (a manifest's files) was taken."""
    live = hasher.files(roots)
    inside = {
        p for p in recorded if any(p == str(r) or p.startswith(f"{r}{os.sep}") for r in roots)
    }
    found = []
    for path, entry in live.items():
        if path not in inside:
            found.append(Change(path, "added", _mtime(Path(path))))
        elif recorded[path]["sha256"] != entry["sha256"]:
            found.append(Change(path, "changed", _mtime(Path(path))))
    for path in sorted(inside - live.keys()):
        found.append(Change(path, "removed", _mtime(Path(path).parent)))
    return found


def _mtime(path: Path) -> datetime:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except FileNotFoundError:
        return datetime.now(UTC)


# --- retention -------------------------------------------------------------------------------


def expired(
    snapshots: Sequence[Snapshot], keep: dict[str, timedelta], now: datetime
) -> list[Snapshot]:
    """Snapshots older than their kind's retention; the newest of each kind always stays."""
    gone = []
    for kind, limit in keep.items():
        own = sorted((s for s in snapshots if s.kind == kind), key=lambda s: s.time)
        gone += [s for s in own[:-1] if now - s.time > limit]
    return gone


# --- transaction logs: the WAL archive -------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    name: str
    archived: datetime  # when archive_command wrote it (its modification time)


def archived_segments(folder: Path) -> list[Segment]:
    """WAL segments in the archive, oldest first (history and backup label files aside)."""
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if _WAL_SEGMENT.match(entry.name) and entry.is_file():
                found.append(
                    Segment(entry.name, datetime.fromtimestamp(entry.stat().st_mtime, UTC))
                )
    return sorted(found, key=lambda s: (s.archived, s.name))


def prune_archive(folder: Path, older_than: datetime, needed_from: str | None) -> list[str]:
    """Delete archived segments older than ``older_than``, except those from
    ``needed_from`` on (what recovery from the newest base backup needs)."""
    removed = []
    for segment in archived_segments(folder):
        if segment.archived >= older_than or (needed_from and segment.name >= needed_from):
            continue
        with contextlib.suppress(FileNotFoundError):
            (folder / segment.name).unlink()
            removed.append(segment.name)
    return removed
