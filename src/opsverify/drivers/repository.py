"""Backup repositories: the questions opsverify asks of one, whatever keeps it.

restic implements ``Repository`` (``opsverify.drivers.restic``). pgBackRest would answer the
same questions with ``pgbackrest info --output=json`` (snapshots: its backups with their
labels and stop times), ``pgbackrest check`` / ``pgbackrest verify`` (integrity) and
``pgbackrest backup --type=full|incr`` (backup); Barman with ``barman list-backups``,
``barman check`` and ``barman backup``. A new kind is a class with these methods and one line
in ``KINDS``; the profile's ``backup.repositories[].kind`` then accepts its name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from opsverify.profile import BackupRepository

# What a scheduled backup is tagged with: the handbook's schedule rows kept in the repository
# (transaction logs are PostgreSQL's WAL archive, not snapshots).
SNAPSHOT_KINDS = ("full", "incremental", "configuration")
PRE_DEPLOY = "pre-deploy"

Depth = Literal["structure", "subset", "all"]


class RepositoryError(RuntimeError):
    """The repository refused: wrong password, missing repository, corrupt data, timeout…"""


@dataclass(frozen=True)
class Snapshot:
    id: str
    time: datetime  # when the backup started, time-zone aware
    tags: tuple[str, ...]
    paths: tuple[str, ...]
    hostname: str = ""

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def kind(self) -> str | None:
        """The schedule row this snapshot belongs to (a pre-deploy backup is a full one)."""
        return next((k for k in SNAPSHOT_KINDS if k in self.tags), None)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.short_id,
            "time": self.time.isoformat(),
            "tags": list(self.tags),
            "paths": list(self.paths),
            "hostname": self.hostname,
        }


@dataclass(frozen=True)
class Verification:
    """What an integrity check did and said."""

    command: list[str]
    depth: Depth
    subset: str | None  # the part of the data read, e.g. "3/30"
    ok: bool
    output: str
    seconds: float

    def evidence(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "depth": self.depth,
            "subset": self.subset,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "output": self.output,
        }


class Repository(Protocol):
    """A backup repository as checks, backup jobs and drills use it."""

    name: str

    def exists(self) -> bool:
        """Whether the repository has been created (and opens with its credentials)."""
        ...

    def init(self) -> None: ...

    def snapshots(self) -> list[Snapshot]:
        """Every snapshot, oldest first."""
        ...

    def verify(self, depth: Depth, part: tuple[int, int] | None = None) -> Verification:
        """Check the repository's structure; at depth ``subset`` also read back part k of n
        of the data (``part``), at ``all`` all of it."""
        ...

    def backup(self, paths: Sequence[Path], tags: Sequence[str], *, full: bool) -> str:
        """Back ``paths`` up with ``tags``; ``full`` re-reads every file. Returns the id."""
        ...

    def forget(self, snapshot_ids: Sequence[str]) -> None:
        """Remove these snapshots (their data goes at the next ``prune``)."""
        ...

    def prune(self) -> None: ...

    def read_text(self, snapshot_id: str, path: str) -> str:
        """One text file of a snapshot, by its path as backed up."""
        ...

    def restore(self, snapshot_id: str, target: Path) -> None:
        """Every file of a snapshot below ``target``, at its backed-up path."""
        ...


def open_repository(repository: BackupRepository, cache_dir: Path | None = None) -> Repository:
    from opsverify.drivers import restic

    kinds = {"restic": restic.Restic}
    return kinds[repository.kind](repository, cache_dir=cache_dir)


ALL = "all"  # a read of all the data, where a partial read names its part "k/n"


@dataclass(frozen=True)
class Coverage:
    """When each of the ``parts`` parts of a repository's data last read back intact: the
    daily check reads the stalest part, so that ``parts`` daily checks read all of it, days
    without a check included; a read of all the data counts for every part."""

    parts: int
    last_read: tuple[datetime | None, ...]  # part k at index k-1; None: never

    @classmethod
    def of(cls, reads: Sequence[tuple[datetime, str]], parts: int) -> Coverage:
        """From successful reads, (when, "k/n" or "all"); parts of another n do not count."""
        last: list[datetime | None] = [None] * parts
        for when, subset in reads:
            read = range(parts) if subset == ALL else _index(subset, parts)
            for k in read:
                last[k] = when if last[k] is None else max(last[k], when)
        return cls(parts, tuple(last))

    def stalest(self) -> tuple[int, int]:
        """The part to read next: one never read, else the one read longest ago."""
        never = [k for k, when in enumerate(self.last_read) if when is None]
        k = never[0] if never else min(range(self.parts), key=lambda i: self.last_read[i])
        return k + 1, self.parts

    def read(self, part: tuple[int, int], when: datetime) -> Coverage:
        last = list(self.last_read)
        last[part[0] - 1] = when
        return Coverage(self.parts, tuple(last))

    def all_read_at(self) -> datetime | None:
        """Since when all the data has been read back: the oldest part's read."""
        return None if None in self.last_read else min(self.last_read)  # type: ignore[type-var]

    def overdue(self, since: datetime, before: datetime) -> list[str]:
        """Parts not read since ``before``; a part never read counts from ``since`` (the
        repository's oldest snapshot: data younger than the limit is not overdue yet)."""
        return [
            f"{k}/{self.parts}"
            for k, when in enumerate(self.last_read, start=1)
            if (when or since) < before
        ]

    def describe(self) -> dict[str, str | None]:
        return {
            f"{k}/{self.parts}": when.isoformat() if when else None
            for k, when in enumerate(self.last_read, start=1)
        }


def _index(subset: str, parts: int) -> range:
    k, _, n = subset.partition("/")
    return range(int(k) - 1, int(k)) if n == str(parts) and k.isdigit() else range(0)


def newest(snapshots: Sequence[Snapshot], kinds: Sequence[str]) -> Snapshot | None:
    found = [s for s in snapshots if s.kind in kinds]
    return max(found, key=lambda s: s.time) if found else None
