"""restic driver: the repository as restic itself sees it (``Repository``, see repository.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from opsverify import message
from opsverify.drivers.repository import Depth, RepositoryError, Snapshot, Verification
from opsverify.profile import BackupRepository

# A backup, a forget or a check holds a lock on the repository; another one waits this long
# for it (restic 0.14 itself gives up at once) before it reports the repository locked.
LOCK_WAIT_S = 120
_LOCK_POLL_S = 2
_LOCKED = "repository is already locked"
# Variables that would override the password this driver passes.
_OVERRIDES = ("RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND", "RESTIC_REPOSITORY_FILE")


class ResticError(RepositoryError):
    """restic refused: wrong password, missing repository, corrupt data…"""


class Restic:
    """One restic repository; credentials travel in the environment only."""

    def __init__(self, repository: BackupRepository, cache_dir: Path | None = None) -> None:
        self.name = repository.name
        self._repository = repository
        self._cache_dir = cache_dir

    def run(self, *args: str, timeout: float | None = None, lock: bool = False) -> str:
        """``restic ARGS``. Read-only commands pass ``--no-lock``; with ``lock`` the command
        locks the repository and, when someone else holds it, waits (bounded) for its turn."""
        deadline = time.monotonic() + LOCK_WAIT_S
        limit = self._repository.timeout.total_seconds() if timeout is None else timeout
        while True:
            done = self._call(args if lock else ("--no-lock", *args), limit)
            if done.returncode == 0:
                return done.stdout
            if lock and _LOCKED in done.stderr and time.monotonic() < deadline:
                time.sleep(_LOCK_POLL_S)
                continue
            raise ResticError(
                f"restic {' '.join(args)} exited {done.returncode}: "
                + message.tail(done.stderr, 2000)
            )

    def _call(self, args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in _OVERRIDES}
        env["RESTIC_REPOSITORY"] = self._repository.repository
        env["RESTIC_PASSWORD"] = self._repository.password.resolve()
        if self._cache_dir is not None:
            env["RESTIC_CACHE_DIR"] = str(self._cache_dir)
        try:
            return subprocess.run(
                ["restic", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ResticError(f"restic {' '.join(args)} did not finish in {timeout:g} s") from None

    def exists(self) -> bool:
        """Whether the repository has been initialised (and opens with the password)."""
        try:
            self.run("cat", "config")
        except ResticError as exc:
            if "Is there a repository at the following location?" in str(exc):
                return False
            raise
        return True

    def init(self) -> None:
        self.run("init", lock=True)

    def snapshots(self) -> list[Snapshot]:
        found = [
            Snapshot(
                id=s["id"],
                time=datetime.fromisoformat(s["time"]),
                tags=tuple(s.get("tags") or ()),
                paths=tuple(s.get("paths") or ()),
                hostname=s.get("hostname", ""),
            )
            for s in json.loads(self.run("snapshots", "--json") or "[]")
        ]
        return sorted(found, key=lambda s: s.time)

    def verify(self, depth: Depth, part: tuple[int, int] | None = None) -> Verification:
        args, subset = ["check"], None
        if depth == "subset":
            if part is None:
                raise ValueError("a subset check needs the part to read, e.g. (3, 30)")
            # restic reads the packs whose id's first byte % n is k-1
            subset = f"{part[0]}/{part[1]}"
            args.append(f"--read-data-subset={subset}")
        elif depth == "all":
            args.append("--read-data")
        started = time.monotonic()
        try:
            output, ok = self.run(*args, timeout=self._data_timeout_s, lock=True), True
        except ResticError as exc:
            output, ok = str(exc), False
        return Verification(
            command=["restic", *args],
            depth=depth,
            subset=subset,
            ok=ok,
            output=message.tail(output, 8000),
            seconds=time.monotonic() - started,
        )

    def backup(self, paths: Sequence[Path], tags: Sequence[str], *, full: bool) -> str:
        args = ["backup", "--json", *(f"--tag={t}" for t in tags)]
        if full:
            args.append("--force")  # re-read every file instead of trusting the parent's
        output = self.run(*args, *(str(p) for p in paths), timeout=self._data_timeout_s, lock=True)
        for line in reversed(output.splitlines()):
            if '"summary"' in line:  # the last line; status lines come before it
                return json.loads(line)["snapshot_id"]
        raise ResticError(f"restic backup printed no summary: {message.tail(output, 500)}")

    def forget(self, snapshot_ids: Sequence[str]) -> None:
        if snapshot_ids:
            self.run("forget", *snapshot_ids, lock=True)

    def prune(self) -> None:
        self.run("prune", timeout=self._data_timeout_s, lock=True)

    def read_text(self, snapshot_id: str, path: str) -> str:
        return self.run("dump", snapshot_id, path)

    def restore(self, snapshot_id: str, target: Path) -> None:
        self.run("restore", snapshot_id, f"--target={target}", timeout=self._data_timeout_s)

    @property
    def _data_timeout_s(self) -> float:
        return self._repository.data_timeout.total_seconds()
