"""Processes the sandbox started: supervisord's XML-RPC client and PID bookkeeping.

A process is identified by PID *and* start time, so a recycled PID is never mistaken for
one of ours when stopping or killing.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SandboxError
from .settings import Layout

RPC_TIMEOUT_S = 10.0
# stopProcess/startProcess answer only once the program has stopped or started
# (postgres may take up to its stopwaitsecs of 30 s).
RPC_WAIT_TIMEOUT_S = 45.0


@dataclass(frozen=True)
class Process:
    pid: int
    started: int  # clock ticks after boot (/proc/PID/stat field 22)

    def alive(self) -> bool:
        return read_process(self.pid) == self


def read_process(pid: int) -> Process | None:
    """The live (non-zombie) process with this PID, or None."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":  # a zombie has exited; it only awaits reaping
        return None
    return Process(pid, int(fields[19]))


def process_tree(root_pid: int) -> list[Process]:
    """``root_pid`` and all its live descendants (nginx workers, PostgreSQL backends...)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(int(entry))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        if (proc := read_process(pid)) is not None:
            tree.append(proc)
        todo.extend(children.get(pid, []))
    return tree


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on; None when the process is gone."""
    try:
        line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return line.rpartition(")")[2].split()


def find_supervisord(layout: Layout) -> Process | None:
    """Our running supervisord: the pid file's process, if its command line names our config."""
    try:
        pid = int(layout.supervisord_pid.read_text().strip())
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if str(layout.supervisord_conf).encode() not in args:
        return None
    return read_process(pid)


def rpc(layout: Layout, timeout: float = RPC_TIMEOUT_S) -> Any:
    """supervisord's XML-RPC interface over its unix socket (``.supervisor.*`` methods)."""
    if find_supervisord(layout) is None:
        raise SandboxError(f"the sandbox in {layout.root} is not running; run `sandbox up`")
    return xmlrpc.client.ServerProxy(
        "http://localhost/RPC2", transport=_UnixTransport(layout.supervisor_socket, timeout)
    )


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self._socket_path))
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    """XML-RPC over a unix socket, with a timeout (supervisor's own transport has none)."""

    def __init__(self, socket_path: Path, timeout: float) -> None:
        super().__init__()
        self._socket_path = socket_path
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixHTTPConnection(self._socket_path, self._timeout)


def run(command: list[str], cwd: Path, timeout: float, what: str) -> None:
    """Run a command to completion; failures become a SandboxError quoting its output."""
    try:
        subprocess.run(
            command,
            cwd=cwd,
            timeout=timeout,
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.CalledProcessError as exc:
        output = (exc.stderr or exc.stdout or b"").decode(errors="replace").strip()
        raise SandboxError(f"{what} failed (exit {exc.returncode}): {output[-2000:]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise SandboxError(f"{what} did not finish within {timeout:g} s") from exc
