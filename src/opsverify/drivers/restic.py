"""restic driver: the repository as restic itself sees it."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from opsverify.profile import BackupRepository

TIMEOUT_S = 120


class ResticError(RuntimeError):
    """restic refused: wrong password, missing repository, corrupt data…"""


def run(repository: BackupRepository, *args: str, timeout: float = TIMEOUT_S) -> str:
    """``restic ARGS`` against the repository, credentials through the environment only."""
    env = {
        **os.environ,
        "RESTIC_REPOSITORY": repository.repository,
        "RESTIC_PASSWORD": repository.password.resolve(),
    }
    done = subprocess.run(
        ["restic", "--no-lock", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if done.returncode != 0:
        command = " ".join(args)
        raise ResticError(f"restic {command} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def snapshots(repository: BackupRepository) -> list[dict[str, Any]]:
    """Every snapshot, oldest first, as restic's JSON describes it."""
    return json.loads(run(repository, "snapshots", "--json") or "[]")
