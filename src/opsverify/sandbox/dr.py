"""The sandbox's DR site, the built-in steps of the failover drill (DRL-002) on a sandbox
profile: fail the primary (its database crashes, its service stops), activate the DR site
(the newest full backup restored and recovered from the WAL archive into a PostgreSQL
instance of its own, a second cronos-ai on it), switch the load balancer (nginx's upstream)
to it, and fail back (primary started again, nginx switched back, the DR site stopped).

The DR site lives in the drill's scratch folder and listens on loopback only: its database on
a unix socket in that folder, its service on ``ports.dr_service``. Whatever the DR site wrote
is discarded at failback, with the scratch folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from opsverify import drill
from opsverify.drivers.repository import open_repository
from opsverify.profile import PostgresSource, Profile

from . import manager, provision
from .errors import SandboxError
from .settings import DB_NAME, DB_USER, HOST, Settings
from .supervision import RPC_WAIT_TIMEOUT_S, rpc

READY_TIMEOUT_S = 60
CRASH_TIMEOUT_S = 30
_POLL_S = 0.2


def switch(settings: Settings, port: int) -> dict[str, object]:
    """Point the load balancer at ``port`` and reload it; returns once every nginx worker
    of the previous configuration is gone (no request reaches the old upstream after)."""
    provision.point_upstream(settings.layout(), port)
    manager.reload(settings, "nginx")
    return {"upstream": f"{HOST}:{port}"}


def fail_primary(settings: Settings) -> dict[str, object]:
    """The disaster: the primary database goes down as in a crash (PostgreSQL's immediate
    shutdown: no checkpoint, and the WAL segment being written is not archived), then the
    primary service stops."""
    supervisor = rpc(settings.layout(), RPC_WAIT_TIMEOUT_S).supervisor
    supervisor.signalProcess("postgres", "QUIT")
    deadline = time.monotonic() + CRASH_TIMEOUT_S
    while supervisor.getProcessInfo("postgres")["statename"] == "RUNNING":
        if time.monotonic() > deadline:
            raise SandboxError(f"PostgreSQL still running {CRASH_TIMEOUT_S} s after SIGQUIT")
        time.sleep(_POLL_S)
    manager.stop(settings, "cronos-ai")
    return {"crashed": "postgres (immediate shutdown)", "stopped": "cronos-ai"}


def restore_primary(settings: Settings) -> dict[str, object]:
    """Start the primary database and service again, and wait until both are healthy."""
    for name in ("postgres", "cronos-ai"):
        manager.start(settings, name)
    return {"restarted": ["postgres", "cronos-ai"]}


@dataclass
class Site:
    """The DR site of one failover drill, in its scratch space."""

    settings: Settings
    profile: Profile
    scratch: drill.Scratch
    database: drill.Instance | None = None
    service: subprocess.Popen[bytes] | None = None
    log: list[str] = field(default_factory=list)

    def activate(self, outcome: drill.Outcome) -> dict[str, object]:
        """Restore the newest full backup into the DR site's database and start a second
        cronos-ai on it; returns once that service answers ready."""
        backup = self.profile.backup
        assert backup is not None and backup.sources is not None and backup.repositories
        config = backup.repositories[0]
        _, self.database = drill.recover(
            outcome, open_repository(config), backup.sources, self.scratch, config.data_timeout
        )
        if self.database is None:
            raise SandboxError("the newest full backup holds no database to activate")
        self._start_service()
        return {"repository": config.name, "service": f"http://{HOST}:{self._port}"}

    def heartbeat_source(self) -> PostgresSource:
        """The DR site's database, where the drill reads the newest heartbeat."""
        if self.database is None:
            raise SandboxError("the DR site has no database: it was never activated")
        sources = self.profile.backup.sources if self.profile.backup else None
        assert sources is not None and sources.postgres is not None
        live = sources.postgres
        return self.database.source(live.dbname).model_copy(update={"heartbeat": live.heartbeat})

    @property
    def _port(self) -> int:
        return self.settings.ports.dr_service

    def _start_service(self) -> None:
        assert self.database is not None and self.scratch.folder is not None
        layout = self.settings.layout()
        # The primary's program (templates/supervisord.conf), on the DR site's database.
        env = dict(os.environ)
        env.update(
            PYTHONUNBUFFERED="1",
            CRONOS_DB_HOST=str(self.database.socket_dir),
            CRONOS_DB_PORT="5432",
            CRONOS_DB_NAME=DB_NAME,
            CRONOS_DB_USER=DB_USER,
            CRONOS_DB_PASSWORD_FILE=str(layout.db_password),
            CRONOS_API_TOKEN_FILE=str(layout.api_token),
        )
        argv = [sys.executable, "-m", "uvicorn", "opsverify.sandbox.service.app:create_app"]
        argv += ["--factory", "--host", HOST, "--port", str(self._port), "--no-access-log"]
        argv += ["--timeout-graceful-shutdown", "5"]
        log = Path(self.scratch.folder) / "cronos-ai-dr.log"
        with log.open("ab") as out:
            self.service = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.scratch.processes.append(self.service)  # stopped with the scratch space, too
        deadline = time.monotonic() + READY_TIMEOUT_S
        url = f"http://{HOST}:{self._port}/ready"
        while True:
            if self.service.poll() is not None:
                tail = log.read_text(errors="replace").splitlines()[-5:]
                raise SandboxError(f"the DR site's service exited: {' | '.join(tail)}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SandboxError(f"the DR site's service not ready in {READY_TIMEOUT_S} s")
            time.sleep(_POLL_S)

    def stop(self) -> dict[str, object]:
        """Stop the DR site's service and database (its data goes with the scratch folder)."""
        service, self.service = self.service, None
        drill.stop_group(service, signal.SIGTERM)
        if self.database is not None:
            self.database.stop()
        return {"stopped": ["cronos-ai (DR site)", "postgres (DR site)"]}
