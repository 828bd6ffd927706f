"""Sandbox settings: where its state lives and which loopback ports it uses.

Self-contained so the engine can embed it in an environment profile under ``sandbox:``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

# Every sandbox socket binds here; deliberately not configurable.
HOST = "127.0.0.1"
# The application's PostgreSQL database and role (password in ``Layout.db_password``).
DB_NAME = "cronos_ai"
DB_USER = "cronos_ai"

# Unprivileged ports only: the sandbox never needs root to bind.
PortNumber = Annotated[int, Strict(), Field(ge=1024, le=65535)]  # not `true`, read as 1


class Ports(BaseModel):
    """TCP ports on 127.0.0.1, one per listening component.

    The defaults avoid the stock ports (5432, 9090, 9093, 9100, 8080) that distribution
    packages open on a systemd host, so the sandbox never collides with them.
    """

    model_config = ConfigDict(extra="forbid")

    service: PortNumber = 18000
    https: PortNumber = 18443
    postgres: PortNumber = 15432
    prometheus: PortNumber = 19190
    alertmanager: PortNumber = 19193
    node_exporter: PortNumber = 19100
    webhook: PortNumber = 19195
    dr_service: PortNumber = 18001  # the DR site's cronos-ai, while a failover drill runs

    @model_validator(mode="after")
    def _distinct(self) -> Ports:
        values = list(self.model_dump().values())
        duplicates = sorted({p for p in values if values.count(p) > 1})
        if duplicates:
            raise ValueError(f"sandbox ports must be distinct; reused: {duplicates}")
        return self


class BackupRow(BaseModel):
    """One row of the backup schedule: how often (None: on change) and how long it is kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    every: timedelta | None
    keep: timedelta


_HOUR, _DAY = timedelta(hours=1), timedelta(days=1)


class BackupPlan(BaseModel):
    """The backup schedule the sandbox's scheduler runs: the handbook's by default, with every
    interval, retention and the RPO divided by ``time_scale`` (at 60 a day of backups takes
    24 minutes). A profile's ``backup`` section replaces it (``Profile.sandbox_settings``).
    A row set to None is not run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_scale: float = Field(60, ge=1)
    full: BackupRow | None = BackupRow(every=_DAY, keep=30 * _DAY)
    incremental: BackupRow | None = BackupRow(every=_HOUR, keep=7 * _DAY)
    transaction_logs: BackupRow | None = BackupRow(every=timedelta(minutes=15), keep=_DAY)
    configuration: BackupRow | None = BackupRow(every=None, keep=90 * _DAY)
    rpo: timedelta = timedelta(minutes=15)

    def seconds(self, duration: timedelta) -> float:
        """``duration`` as the sandbox lives it, in seconds."""
        return duration.total_seconds() / self.time_scale

    @property
    def archive_timeout_s(self) -> int:
        """PostgreSQL's archive_timeout: a third of the RPO (or of the transaction-log
        interval, if shorter), so a forced WAL switch, the copy into the archive and the
        heartbeat interval together stay inside the objective."""
        bound = self.rpo
        if self.transaction_logs is not None and self.transaction_logs.every is not None:
            bound = min(bound, self.transaction_logs.every)
        return max(1, int(self.seconds(bound) / 3))


class Settings(BaseModel):
    """Where the sandbox keeps its state, which ports it listens on, which backups it runs."""

    model_config = ConfigDict(extra="forbid")

    state_dir: Path = Path(".sandbox")
    ports: Ports = Field(default_factory=Ports)
    backups: BackupPlan = Field(default_factory=BackupPlan)

    def layout(self) -> Layout:
        """The absolute file layout under ``state_dir`` (relative to the working directory)."""
        return Layout(self.state_dir.resolve())


@dataclass(frozen=True)
class Layout:
    """Every path the sandbox reads or writes, all below one state directory."""

    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    # Secrets: generated once, mode 0600, read by the programs that need them.
    @property
    def db_password(self) -> Path:
        return self.secrets_dir / "db_password"

    @property
    def api_token(self) -> Path:
        return self.secrets_dir / "api_token"

    @property
    def restic_password(self) -> Path:
        return self.secrets_dir / "restic_password"

    # TLS: the sandbox CA signs the certificate nginx serves.
    @property
    def ca_cert(self) -> Path:
        return self.pki_dir / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.pki_dir / "ca-key.pem"

    @property
    def server_cert(self) -> Path:
        return self.pki_dir / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.pki_dir / "server-key.pem"

    # Supervisord: one instance owns every sandbox process.
    @property
    def supervisord_conf(self) -> Path:
        return self.config_dir / "supervisord.conf"

    @property
    def supervisord_pid(self) -> Path:
        return self.run_dir / "supervisord.pid"

    @property
    def supervisor_socket(self) -> Path:
        return self.run_dir / "supervisor.sock"

    # Data.
    @property
    def pg_data(self) -> Path:
        return self.root / "postgres" / "data"

    @property
    def pg_socket_dir(self) -> Path:
        return self.run_dir / "postgres"

    @property
    def wal_archive(self) -> Path:
        return self.root / "wal-archive"

    @property
    def prometheus_data(self) -> Path:
        return self.root / "prometheus"

    @property
    def alertmanager_data(self) -> Path:
        return self.root / "alertmanager"

    @property
    def nginx_dir(self) -> Path:
        return self.root / "nginx"

    @property
    def nginx_upstream(self) -> Path:
        """The load balancer's upstream server: the primary service, or the DR site's while
        a failover drill has switched to it (included by nginx.conf, rewritten to switch)."""
        return self.run_dir / "nginx-upstream.conf"

    @property
    def webhook_store(self) -> Path:
        return self.root / "webhook" / "received.jsonl"

    @property
    def restic_repo(self) -> Path:
        return self.root / "restic"

    @property
    def restic_cache(self) -> Path:
        return self.root / "cache" / "restic"

    # Backups: the application's file data, and what the scheduler stages and reports.
    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def backup_staging(self) -> Path:
        return self.root / "backup-staging"

    @property
    def backup_schedule(self) -> Path:
        """The scheduler's configuration: schedule, retention, sources (no secret)."""
        return self.config_dir / "backup-schedule.json"

    @property
    def backup_status(self) -> Path:
        return self.run_dir / "backup-scheduler.json"

    def log(self, name: str) -> Path:
        """A log file: each supervised program's output, plus nginx-error, supervisord and
        restic-init."""
        return self.log_dir / f"{name}.log"
