"""Start, stop and inspect the sandbox: one supervisord, started by ``up``, owns every process.

``up`` provisions what is missing, starts supervisord and waits until every component
answers and Prometheus has scraped every target. ``down`` stops exactly the process tree
that ``up`` started, by PID.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509

from . import provision, release
from .errors import SandboxError
from .probes import Probes, addresses, ports_by_component, served_certificate, unscraped_jobs
from .settings import Layout, Settings
from .supervision import (
    RPC_WAIT_TIMEOUT_S,
    Process,
    find_supervisord,
    process_tree,
    rpc,
    run,
)

log = logging.getLogger(__name__)

# supervisord program names, which are also the component names of ``status``.
PROGRAMS = (
    "postgres",
    "cronos-ai",
    "nginx",
    "prometheus",
    "alertmanager",
    "node-exporter",
    "webhook",
    "backup-scheduler",
)
# Programs that re-read their configuration (nginx: also its certificate) on SIGHUP.
RELOADABLE = ("postgres", "nginx", "prometheus", "alertmanager")
_POLL_S = 0.25

State = Literal["running", "stopped", "unhealthy"]


@dataclass(frozen=True)
class Component:
    """One supervised sandbox process as ``status`` sees it."""

    name: str
    pid: int | None
    address: str
    state: State
    detail: str  # why it is not running or not healthy; empty when running
    log: Path


def up(settings: Settings, timeout: float = 120.0) -> list[Component]:
    """Bring the sandbox up (idempotent) and wait until every component is healthy."""
    deadline = time.monotonic() + timeout
    layout = settings.layout()
    binaries = provision.find_binaries()
    configs = provision.render_configs(settings, binaries)
    if find_supervisord(layout) is not None:
        if any(not p.exists() or p.read_text() != text for p, text in configs.items()):
            raise SandboxError(
                f"the sandbox in {layout.root} is running with other settings; "
                "run `sandbox down` first to apply them"
            )
        # Running already: restart only what was stopped (e.g. by `stop`).
        supervisor = rpc(layout, RPC_WAIT_TIMEOUT_S).supervisor
        for info in supervisor.getAllProcessInfo():
            if info["statename"] in ("STOPPED", "EXITED", "FATAL"):
                _start_program(supervisor, info["name"])
        # A failover drill killed before its failback left nginx on the DR site: back.
        if provision.point_upstream(layout, settings.ports.service):
            reload(settings, "nginx")
    else:
        dr_site = {"cronos-ai (DR site)": settings.ports.dr_service}
        provision.check_ports_free(ports_by_component(settings.ports) | dr_site)
        provision.prepare(layout, binaries, configs)
        provision.point_upstream(layout, settings.ports.service)
        _start_supervisord(layout)
    release.deploy(layout)  # the release's test and scan reports, as its CI produced them
    _wait_healthy(settings, deadline)
    return status(settings)


def down(settings: Settings, purge: bool = False, timeout: float = 30.0) -> None:
    """Stop what ``up`` started (supervisord and its process tree); with ``purge``, also
    delete the state dir. Safe when nothing runs."""
    deadline = time.monotonic() + timeout
    layout = settings.layout()
    supervisord = find_supervisord(layout)
    if supervisord is not None:
        tree = process_tree(supervisord.pid)
        log.info("stopping supervisord (pid %d) and %d processes", supervisord.pid, len(tree) - 1)
        # Stop every program at once (left to its own shutdown, supervisord stops one program
        # per second); whatever this misses, supervisord's SIGTERM handling and the PID
        # bookkeeping below still catch.
        with contextlib.suppress(OSError, xmlrpc.client.Error):
            rpc(layout, timeout).supervisor.stopAllProcesses(True)
        os.kill(supervisord.pid, signal.SIGTERM)
        if not _wait_gone(tree, deadline):
            # Last resort, and only for the exact processes we started (PID + start time).
            survivors = [p for p in tree if p.alive()]
            log.warning("killing %d processes that ignored SIGTERM", len(survivors))
            for proc in survivors:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
            if not _wait_gone(tree, time.monotonic() + 5):
                pids = ", ".join(str(p.pid) for p in tree if p.alive())
                raise SandboxError(f"sandbox processes still running after SIGKILL: {pids}")
    if purge and layout.root.exists():
        if not (layout.root / provision.MARKER).exists():
            raise SandboxError(f"refusing to delete {layout.root}: not a sandbox state dir")
        shutil.rmtree(layout.root)


def status(settings: Settings) -> list[Component]:
    """Every component's PID, address and state: supervisord's view plus a health probe."""
    layout = settings.layout()
    where = addresses(settings.ports) | {"backup-scheduler": str(layout.restic_repo)}
    infos: dict[str, dict[str, Any]] = {}
    if find_supervisord(layout) is not None:
        infos = {i["name"]: i for i in rpc(layout).supervisor.getAllProcessInfo()}
    components = []
    with Probes(settings) as probes:
        for name in PROGRAMS:
            info = infos.get(name)
            if info is None or info["statename"] != "RUNNING":
                state: State = "stopped"
                detail = info["statename"] if info else "supervisord is not running"
            else:
                problem = probes.check(name, info["pid"])
                state, detail = ("unhealthy", problem) if problem else ("running", "")
            pid = info["pid"] if info and info["pid"] else None
            components.append(
                Component(name, pid, where[name], state, detail, _log_file(layout, name))
            )
    return components


def stop(settings: Settings, name: str) -> None:
    """Stop one supervised component (e.g. to seed an outage); no-op when already stopped."""
    _check_name(name, PROGRAMS)
    try:
        rpc(settings.layout(), RPC_WAIT_TIMEOUT_S).supervisor.stopProcess(name, True)
    except xmlrpc.client.Fault as fault:
        if "NOT_RUNNING" not in fault.faultString:
            raise SandboxError(f"cannot stop {name}: {fault.faultString}") from fault


def start(settings: Settings, name: str, timeout: float = 60.0) -> Component:
    """Start one supervised component and wait until it is healthy again."""
    _check_name(name, PROGRAMS)
    _start_program(rpc(settings.layout(), RPC_WAIT_TIMEOUT_S).supervisor, name)
    deadline = time.monotonic() + timeout
    while True:
        component = next(c for c in status(settings) if c.name == name)
        if component.state == "running":
            return component
        if time.monotonic() > deadline:
            raise SandboxError(
                f"{name} not healthy {timeout:g} s after start: {component.detail}; "
                f"read {component.log}"
            )
        time.sleep(_POLL_S)


def restart(settings: Settings, name: str, timeout: float = 60.0) -> Component:
    stop(settings, name)
    return start(settings, name, timeout)


def reload(settings: Settings, name: str, timeout: float = 10.0) -> None:
    """Send SIGHUP so ``name`` re-reads its config. For nginx, also wait until the workers
    of the previous generation are gone and the certificate on disk is the one served, so a
    re-issued certificate is what every client sees once this returns."""
    _check_name(name, RELOADABLE)
    layout = settings.layout()
    supervisor = rpc(layout).supervisor
    try:
        master = supervisor.getProcessInfo(name)["pid"]
        old_workers = process_tree(master)[1:] if master else []
        supervisor.signalProcess(name, "HUP")
    except xmlrpc.client.Fault as fault:
        raise SandboxError(f"cannot reload {name}: {fault.faultString}") from fault
    if name != "nginx":
        return
    expected = x509.load_pem_x509_certificate(layout.server_cert.read_bytes())
    deadline = time.monotonic() + timeout
    while any(w.alive() for w in old_workers) or (
        served_certificate(settings.ports.https) != expected
    ):
        if time.monotonic() > deadline:
            raise SandboxError(
                f"nginx still serves the previous certificate {timeout:g} s after reload; "
                f"read {_log_file(layout, 'nginx')}"
            )
        time.sleep(0.05)


def processes(settings: Settings) -> list[int]:
    """PIDs of supervisord and every process below it (nginx workers, PostgreSQL backends)."""
    supervisord = find_supervisord(settings.layout())
    return [] if supervisord is None else [p.pid for p in process_tree(supervisord.pid)]


def _start_supervisord(layout: Layout) -> None:
    # supervisord daemonizes: this returns once it has forked; its pid file follows shortly.
    run(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(layout.supervisord_conf)],
        cwd=layout.root,
        timeout=30,
        what="supervisord",
    )
    deadline = time.monotonic() + 10
    while find_supervisord(layout) is None:
        if time.monotonic() > deadline:
            raise SandboxError(f"supervisord did not start; read {layout.log('supervisord')}")
        time.sleep(0.05)


def _wait_healthy(settings: Settings, deadline: float) -> None:
    database_ready = False
    while True:
        if not database_ready:
            database_ready = provision.bootstrap_database(settings)
        components = status(settings)
        fatal = [c for c in components if c.detail == "FATAL"]
        if fatal:
            raise SandboxError(
                "sandbox components failed to start: "
                + "; ".join(f"{c.name} (read {c.log}; it ends: {_tail(c.log)})" for c in fatal)
            )
        waiting = [
            f"{c.name}: {c.state}, {c.detail} (read {c.log})"
            for c in components
            if c.state != "running"
        ]
        if not waiting:
            # A check run right after `up` must see every scrape target up.
            waiting = unscraped_jobs(settings.ports)
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise SandboxError(
                "sandbox not healthy in time (`sandbox down` stops what started); waiting for: "
                + "; ".join(waiting)
            )
        time.sleep(_POLL_S)


def _tail(path: Path, lines: int = 5) -> str:
    # Logs hold no secrets (the tests check), so quoting their end is safe.
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_gone(processes: list[Process], deadline: float) -> bool:
    while any(p.alive() for p in processes):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _start_program(supervisor: Any, name: str) -> None:
    try:
        supervisor.startProcess(name, True)
    except xmlrpc.client.Fault as fault:
        if "ALREADY_STARTED" not in fault.faultString:
            raise SandboxError(f"cannot start {name}: {fault.faultString}") from fault


def _log_file(layout: Layout, name: str) -> Path:
    # nginx writes its errors to its own log; its stdout (the supervisord log) stays empty.
    return layout.log("nginx-error") if name == "nginx" else layout.log(name)


def _check_name(name: str, allowed: tuple[str, ...]) -> None:
    if name not in allowed:
        raise ValueError(
            f"unknown sandbox component {name!r}; expected one of {', '.join(allowed)}"
        )
