"""Everything ``up`` creates before it starts processes, each only when missing: directories,
secrets, certificates, configs, the database cluster and role. (The restic repository is the
backup scheduler's to create.)"""

from __future__ import annotations

import contextlib
import glob
import importlib.resources
import json
import logging
import os
import pwd
import re
import secrets
import shutil
import socket
import stat
import string
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from . import pki
from .errors import SandboxError
from .settings import DB_NAME, DB_USER, HOST, Layout, Settings
from .supervision import run

log = logging.getLogger(__name__)

PG_SUPERUSER = "postgres"
# Marks a directory as a sandbox state dir, so `up` never writes into, and `purge` never
# deletes, a directory that merely happens to be configured as state_dir.
MARKER = ".opsverify-sandbox"

_TEMPLATES = (
    "supervisord.conf",
    "postgresql.conf",
    "pg_hba.conf",
    "pg_ident.conf",
    "nginx.conf",
    "prometheus.yml",
    "alert_rules.yml",
    "alertmanager.yml",
)
# Paths end up unquoted in supervisord, nginx and PostgreSQL configs and in a shell command.
_SAFE_PATH = re.compile(r"[A-Za-z0-9._/+-]+")
# Unix socket paths are limited to 107 bytes (sun_path).
_MAX_SOCKET_PATH = 107


@dataclass(frozen=True)
class Binaries:
    postgres: Path
    initdb: Path
    nginx: Path
    prometheus: Path
    alertmanager: Path
    node_exporter: Path
    restic: Path


def find_binaries() -> Binaries:
    """The programs the sandbox runs; a missing one is named by its Debian package."""
    # PostgreSQL's server binaries are not on PATH on Debian; take the newest installed major.
    majors = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    pg_bin = Path(majors[-1]) if majors else None
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])

    def which(command: str) -> Path | None:
        found = shutil.which(command, path=search)
        return Path(found) if found else None

    candidates: dict[str, tuple[Path | None, str]] = {  # field: (path, apt package)
        "postgres": (pg_bin / "postgres" if pg_bin else None, "postgresql"),
        "initdb": (pg_bin / "initdb" if pg_bin else None, "postgresql"),
        "nginx": (which("nginx"), "nginx"),
        "prometheus": (which("prometheus"), "prometheus"),
        "alertmanager": (which("prometheus-alertmanager"), "prometheus-alertmanager"),
        "node_exporter": (which("prometheus-node-exporter"), "prometheus-node-exporter"),
        "restic": (which("restic"), "restic"),
    }
    missing = sorted(
        {pkg for path, pkg in candidates.values() if path is None or not path.exists()}
    )
    if missing:
        raise SandboxError(
            "programs the sandbox needs are missing; install them: "
            f"apt-get install -y {' '.join(missing)}"
        )
    return Binaries(**{field: path for field, (path, _) in candidates.items() if path})


def render_configs(settings: Settings, binaries: Binaries) -> dict[Path, str]:
    """Every config file's path and content for these settings (written by ``prepare``)."""
    layout = settings.layout()
    _check_layout(layout)
    as_root = os.geteuid() == 0
    values = {
        "root": layout.root,
        "config_dir": layout.config_dir,
        "run_dir": layout.run_dir,
        "log_dir": layout.log_dir,
        "supervisor_socket": layout.supervisor_socket,
        "supervisord_pid": layout.supervisord_pid,
        "pg_data": layout.pg_data,
        "pg_socket_dir": layout.pg_socket_dir,
        "wal_archive": layout.wal_archive,
        "prometheus_data": layout.prometheus_data,
        "alertmanager_data": layout.alertmanager_data,
        "nginx_dir": layout.nginx_dir,
        "nginx_upstream": layout.nginx_upstream,
        "webhook_store": layout.webhook_store,
        "server_cert": layout.server_cert,
        "server_key": layout.server_key,
        "db_password_file": layout.db_password,
        "api_token_file": layout.api_token,
        "python": sys.executable,
        "backup_schedule": layout.backup_schedule,
        "archive_timeout": settings.backups.archive_timeout_s,
        "postgres_bin": binaries.postgres,
        "nginx_bin": binaries.nginx,
        "prometheus_bin": binaries.prometheus,
        "alertmanager_bin": binaries.alertmanager,
        "node_exporter_bin": binaries.node_exporter,
        **{f"{name}_port": port for name, port in settings.ports.model_dump().items()},
        "db_name": DB_NAME,
        "db_user": DB_USER,
        # Peer authentication sees the effective user, whatever $USER says.
        "os_user": pwd.getpwuid(os.geteuid()).pw_name,
        # PostgreSQL refuses to run as root; the other programs may (it is a sandbox), but
        # nginx's workers drop to www-data when it exists.
        "postgres_user": f"user={PG_SUPERUSER}" if as_root else "",
        "user_directive": "user www-data;" if as_root and _user("www-data") else "",
    }
    templates = importlib.resources.files(__package__) / "templates"
    configs = {
        layout.config_dir / name: _ConfigTemplate(
            (templates / name).read_text(encoding="utf-8")
        ).substitute(values)
        for name in _TEMPLATES
    }
    configs[layout.backup_schedule] = scheduler_config(settings)
    return configs


def scheduler_config(settings: Settings) -> str:
    """The backup scheduler's configuration: its schedule and retention in the profile's
    own terms (BKP-004 compares them with the handbook's), where it backs up to and from."""
    layout, plan = settings.layout(), settings.backups

    def duration(value: timedelta) -> str:
        return f"{value / timedelta(milliseconds=1):.0f}ms"

    rows = [
        {
            "type": kind,
            "frequency": "on_change" if row.every is None else duration(row.every),
            "retention": duration(row.keep),
        }
        for kind in ("full", "incremental", "transaction_logs", "configuration")
        if (row := getattr(plan, kind)) is not None
    ]
    config = {
        "time_scale": plan.time_scale,
        "schedule": rows,
        "repository": {
            "name": "sandbox",
            "repository": str(layout.restic_repo),
            "password": {"file": str(layout.restic_password)},
        },
        "cache_dir": str(layout.restic_cache),
        "sources": {
            "staging": str(layout.backup_staging),
            "data_paths": [str(layout.data_dir)],
            "config_paths": [str(layout.config_dir)],
            "postgres": {
                # As the manager administers: the superuser over the unix socket (peer).
                "socket_dir": str(layout.pg_socket_dir),
                "port": settings.ports.postgres,
                "dbname": DB_NAME,
                "user": PG_SUPERUSER,
                "heartbeat": "heartbeat.at",
                "wal_archive": str(layout.wal_archive),
            },
        },
        "status_file": str(layout.backup_status),
    }
    return json.dumps(config, indent=2) + "\n"


class _ConfigTemplate(string.Template):
    # '@' because the nginx and Prometheus configs use both '$' and '{}' themselves.
    delimiter = "@"


def _check_layout(layout: Layout) -> None:
    if not _SAFE_PATH.fullmatch(str(layout.root)):
        raise SandboxError(
            f"sandbox state_dir {layout.root} may contain only letters, digits and . _ / + -"
        )
    longest = layout.pg_socket_dir / ".s.PGSQL.65535"
    if len(str(longest)) > _MAX_SOCKET_PATH:
        raise SandboxError(
            f"sandbox state_dir {layout.root} is too long for unix sockets "
            f"({longest} exceeds {_MAX_SOCKET_PATH} bytes); choose a shorter path"
        )


def point_upstream(layout: Layout, port: int) -> bool:
    """Write which service nginx proxies to (read at its next start or reload): the
    primary's at every ``up``, the DR site's while a failover drill has switched. Returns
    whether that changed the file."""
    text = f"server {HOST}:{port};\n"
    with contextlib.suppress(OSError):
        if layout.nginx_upstream.read_text() == text:
            return False
    temporary = layout.nginx_upstream.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, layout.nginx_upstream)
    return True


def check_ports_free(owners: dict[str, int]) -> None:
    """Fail, naming port and component, when another program already listens on a port."""
    busy = []
    for name, port in owners.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # SO_REUSEADDR: a port in TIME_WAIT is free for our purpose, a listener is not.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, port))
            except OSError:
                busy.append(f"{port} ({name})")
    if busy:
        raise SandboxError(
            f"ports already in use by another program: {', '.join(busy)}; "
            "stop that program or choose other ports under sandbox.ports"
        )


def prepare(layout: Layout, binaries: Binaries, configs: dict[Path, str]) -> None:
    """Create what is missing and (re)write the configs; keep data, secrets and certificates."""
    if layout.root.exists() and any(layout.root.iterdir()) and not (layout.root / MARKER).exists():
        raise SandboxError(f"{layout.root} exists and is not a sandbox state dir; choose another")
    postgres = None
    if os.geteuid() == 0:
        postgres = _user(PG_SUPERUSER)
        if postgres is None:
            raise SandboxError("user 'postgres' is missing; apt-get install -y postgresql")
    for directory, mode in (
        (layout.root, 0o755),
        (layout.config_dir, 0o755),
        (layout.run_dir, 0o755),
        (layout.log_dir, 0o755),
        (layout.secrets_dir, 0o700),
        (layout.pki_dir, 0o755),
        (layout.pg_data.parent, 0o700),
        (layout.pg_socket_dir, 0o755),
        (layout.wal_archive, 0o700),
        (layout.prometheus_data, 0o755),
        (layout.alertmanager_data, 0o755),
        (layout.nginx_dir, 0o755),
        (layout.webhook_store.parent, 0o755),
        (layout.restic_cache, 0o700),
        (layout.data_dir, 0o755),
    ):
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(mode)  # explicit: a restrictive umask must not lock postgres out
    (layout.root / MARKER).touch()
    # The scheduler of a previous `up` said it was ready; this one has to say so itself.
    layout.backup_status.unlink(missing_ok=True)
    if not any(layout.data_dir.iterdir()):
        (layout.data_dir / "README").write_text(
            "The application's file data: backed up with the database (full, incremental).\n"
        )
    if postgres is not None:
        grant_traversal(layout.root, postgres)
        for directory in (layout.pg_data.parent, layout.pg_socket_dir, layout.wal_archive):
            os.chown(directory, postgres.pw_uid, postgres.pw_gid)
    for secret in (layout.db_password, layout.api_token, layout.restic_password):
        if not secret.exists():
            pki.write_atomic(secret, secrets.token_urlsafe(32).encode(), 0o600)
    pki.ensure_pki(layout)
    for path, text in configs.items():
        pki.write_atomic(path, text.encode(), 0o644)
    if not (layout.pg_data / "PG_VERSION").exists():
        _initdb(layout, binaries, as_postgres=postgres is not None)


def _user(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def grant_traversal(path: Path, user: pwd.struct_passwd) -> None:
    """Let ``user`` reach ``path``: add search-only permission (o+x, never read) on each
    ancestor that denies it. Needed when the state dir sits below a 0700 directory (pytest's
    tmp dirs, a home directory) and PostgreSQL runs as its own user."""
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for directory in [*reversed(path.parents), path]:
        st = directory.stat()
        if st.st_uid == user.pw_uid:
            allowed = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            allowed = st.st_mode & stat.S_IXGRP
        else:
            allowed = st.st_mode & stat.S_IXOTH
        if not allowed:
            log.warning("adding o+x to %s so that %s can reach %s", directory, user.pw_name, path)
            directory.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


def _initdb(layout: Layout, binaries: Binaries, as_postgres: bool) -> None:
    command = [
        str(binaries.initdb),
        "--pgdata",
        str(layout.pg_data),
        "--username",
        PG_SUPERUSER,
        "--auth-local=peer",
        "--auth-host=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C.UTF-8",
        # 1 MiB WAL segments: archive_timeout switches segments every few seconds at the
        # sandbox's time scale, and each switch archives a whole segment.
        "--wal-segsize=1",
    ]
    if as_postgres:
        command = ["runuser", "-u", PG_SUPERUSER, "--", *command]
    log.info("initialising the database cluster in %s", layout.pg_data)
    run(command, cwd=layout.root, timeout=120, what="initdb")


def bootstrap_database(settings: Settings) -> bool:
    """Create the application role and database once PostgreSQL accepts connections, and set
    the role's password from the secret file. False while PostgreSQL is not reachable yet."""
    layout = settings.layout()
    try:
        # As the superuser over the unix socket: peer auth, mapped in pg_ident.conf.
        conn = psycopg.connect(
            host=str(layout.pg_socket_dir),
            port=settings.ports.postgres,
            user=PG_SUPERUSER,
            dbname="postgres",
            connect_timeout=2,
            autocommit=True,
        )
    except psycopg.OperationalError:
        return False
    with conn:
        password = layout.db_password.read_text(encoding="utf-8").strip()
        # Only the SCRAM verifier travels to the server (and could reach its log), never the
        # password itself.
        verifier = conn.pgconn.encrypt_password(
            password.encode(), DB_USER.encode(), b"scram-sha-256"
        ).decode()
        role = sql.Identifier(DB_USER)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (DB_USER,)).fetchone()
        statement = (
            "ALTER ROLE {} LOGIN PASSWORD {}" if exists else "CREATE ROLE {} LOGIN PASSWORD {}"
        )
        conn.execute(sql.SQL(statement).format(role, sql.Literal(verifier)))
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone():
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DB_NAME), role)
            )
    return True


def restic_env(layout: Layout) -> dict[str, str]:
    """Environment for restic commands on the sandbox repository (password by file)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"RESTIC_PASSWORD", "RESTIC_PASSWORD_COMMAND", "RESTIC_REPOSITORY_FILE"}
    }
    env.update(
        RESTIC_REPOSITORY=str(layout.restic_repo),
        RESTIC_PASSWORD_FILE=str(layout.restic_password),
        RESTIC_CACHE_DIR=str(layout.restic_cache),
    )
    return env
