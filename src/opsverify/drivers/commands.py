"""Commands driver: run a profile ``Command`` (argv, cwd, timeout) and capture what it says.

No shell. The command runs in its own process group, so a timeout kills it and everything it
started; the output so far is kept.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from opsverify.evidence import REDACTOR
from opsverify.profile import Command

MAX_OUTPUT = 64 * 1024  # evidence keeps the head and the tail of anything longer


@dataclass(frozen=True)
class Outcome:
    argv: list[str]
    cwd: str | None
    exit_code: int | None  # None: did not finish (timed out) or could not start
    output: str  # stdout and stderr, interleaved as written
    seconds: float
    timed_out: bool = False
    start_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def evidence(self) -> dict[str, Any]:
        return {
            "argv": self.argv,
            "cwd": self.cwd,
            "exit_code": self.exit_code,
            "timed_out": self.timed_out,
            "start_error": self.start_error,
            "seconds": round(self.seconds, 3),
            "output": self.output,
        }


def _clip(text: str) -> str:
    """The start and the end of a long output, masked before it is cut."""
    text = REDACTOR.text(text)
    if len(text) <= MAX_OUTPUT:
        return text
    half = MAX_OUTPUT // 2
    return f"{text[:half]}\n[... {len(text) - MAX_OUTPUT} characters cut ...]\n{text[-half:]}"


def run(command: Command, env: dict[str, str] | None = None) -> Outcome:
    """``env``: variables added to this process's environment for the command."""
    cwd = str(command.cwd) if command.cwd else None
    timeout = command.timeout.total_seconds()
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            command.argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **env} if env else None,
        )
    except OSError as exc:
        return Outcome(
            command.argv, cwd, None, "", time.monotonic() - started, start_error=str(exc)
        )
    try:
        out, _ = process.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        try:  # a grandchild holding the pipe open must not hang us either
            out, _ = process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            out = b""
    except BaseException:  # Ctrl-C: what the command started must not outlive it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
        raise
    return Outcome(
        argv=command.argv,
        cwd=cwd,
        exit_code=None if timed_out else process.returncode,
        output=_clip(out.decode(errors="replace")),
        seconds=time.monotonic() - started,
        timed_out=timed_out,
    )
