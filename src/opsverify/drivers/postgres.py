"""PostgreSQL driver: what backups and drills ask of a database server, through psycopg and
PostgreSQL's own tools (pg_dump, pg_basebackup), each call bounded in time. Passwords travel
in the tools' environment (PGPASSWORD), never on a command line."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from opsverify import message
from opsverify.profile import PostgresSource

CONNECT_TIMEOUT_S = 5
# Row text depends on session settings; these make a checksum mean the same in every session.
_STABLE_TEXT = (
    "SET LOCAL timezone = 'UTC'",
    "SET LOCAL datestyle = 'ISO, YMD'",
    "SET LOCAL intervalstyle = 'postgres'",
    "SET LOCAL extra_float_digits = 3",
    "SET LOCAL bytea_output = 'hex'",
)
# Per table: its rows, and the sum of the first 64 bits of each row's md5, which does not
# depend on the order the rows come in (no sort, no big string for a large table).
_TABLE_SUM = (
    "SELECT count(*), coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint), 0)::text"
    " FROM {} AS t"
)


class PostgresError(RuntimeError):
    """The database or one of its tools refused or did not answer in time."""


@dataclass(frozen=True)
class TableSum:
    rows: int
    checksum: str

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "checksum": self.checksum}


def tool(name: str) -> str:
    """A PostgreSQL client program: the newest installed major's (Debian keeps them off PATH
    and a dump must come from a pg_dump at least as new as the server), else PATH's."""
    majors = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    for folder in reversed(majors):
        if (Path(folder) / name).exists():
            return str(Path(folder) / name)
    found = shutil.which(name)
    if found is None:
        raise PostgresError(f"{name} is not installed (apt-get install -y postgresql-client)")
    return found


def _host(source: PostgresSource) -> str:
    return str(source.socket_dir) if source.socket_dir is not None else str(source.host)


def connect(
    source: PostgresSource,
    dbname: str | None = None,
    statement_timeout: timedelta | None = None,
    **options: Any,
) -> psycopg.Connection:
    """``statement_timeout``: each statement of the session is cancelled after it."""
    password = source.password.resolve() if source.password is not None else None
    if statement_timeout is not None:
        ms = int(statement_timeout.total_seconds() * 1000)
        options["options"] = f"-c statement_timeout={ms}"
    try:
        return psycopg.connect(
            host=_host(source),
            port=source.port,
            user=source.user,
            dbname=dbname or source.dbname,
            password=password,
            connect_timeout=CONNECT_TIMEOUT_S,
            **options,
        )
    except psycopg.Error as exc:
        raise PostgresError(f"cannot connect to {describe(source)}: {exc}") from None


def describe(source: PostgresSource) -> str:
    return f"postgresql://{source.user}@{_host(source)}:{source.port}/{source.dbname}"


@contextlib.contextmanager
def consistent_view(source: PostgresSource) -> Iterator[tuple[psycopg.Connection, str]]:
    """A read-only repeatable-read transaction and its exported snapshot id: whatever reads
    through that id (``dump(snapshot=...)``) sees exactly what the transaction sees."""
    with connect(source) as conn:
        # psycopg opens the transaction at the first statement, with these properties.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        for statement in _STABLE_TEXT:
            conn.execute(statement)
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        try:
            yield conn, row[0]
        finally:
            conn.rollback()


def table_sums(
    conn: psycopg.Connection, growing: tuple[str, datetime] | None = None
) -> dict[str, TableSum]:
    """Row count and content checksum of every ordinary table outside the system schemas.
    ``growing``: a heartbeat (``table.column``) and a time; of that table, only the rows up
    to that time count (it grows while the application runs)."""
    bounded = _heartbeat_parts(growing[0]) if growing else None
    until = growing[1] if growing else None
    tables = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2"
    ).fetchall()
    sums = {}
    for schema, table in tables:
        query = sql.SQL(_TABLE_SUM).format(sql.Identifier(schema, table))
        params: tuple[Any, ...] = ()
        if bounded is not None and (table, schema) == bounded[0]:
            query += sql.SQL(" WHERE {} <= %s").format(sql.Identifier(bounded[1]))
            params = (until,)
        rows, checksum = conn.execute(query, params).fetchone()  # type: ignore[misc]
        sums[f"{schema}.{table}"] = TableSum(rows, checksum)
    return sums


def _heartbeat_parts(heartbeat: str) -> tuple[tuple[str, str], str]:
    """``table.column`` or ``schema.table.column`` -> (table, schema), column; an
    unqualified table is public's, as the default search_path finds it."""
    *table, column = heartbeat.split(".")
    return ((table[-1], table[0] if len(table) == 2 else "public"), column)


def newest_heartbeat(
    conn: psycopg.Connection, heartbeat: str, until: datetime | None = None
) -> datetime | None:
    """max(column) of the heartbeat table named ``table.column`` (or schema.table.column);
    with ``until``, of the rows up to that moment only."""
    *table, column = heartbeat.split(".")
    query = sql.SQL("SELECT max({}) FROM {}").format(sql.Identifier(column), sql.Identifier(*table))
    if until is not None:
        query += sql.SQL(" WHERE {} <= %s").format(sql.Identifier(column))
    row = conn.execute(query, (until,) if until is not None else ()).fetchone()
    return row[0] if row else None


def _run(argv: list[str], source: PostgresSource, what: str) -> None:
    env = dict(os.environ)
    if source.password is not None:
        env["PGPASSWORD"] = source.password.resolve()
    env["PGCONNECT_TIMEOUT"] = str(CONNECT_TIMEOUT_S)
    timeout = source.timeout.total_seconds()
    try:
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise PostgresError(f"{what} did not finish in {timeout:g} s") from None
    if done.returncode != 0:
        raise PostgresError(f"{what} exited {done.returncode}: {message.tail(done.stderr, 2000)}")


def _address(source: PostgresSource) -> list[str]:
    return ["-h", _host(source), "-p", str(source.port), "-U", source.user, "--no-password"]


def dump(source: PostgresSource, target: Path, snapshot: str | None = None) -> None:
    """pg_dump in custom format (pg_restore reads it); with ``snapshot``, of that snapshot."""
    argv = [tool("pg_dump"), *_address(source), "--format=custom", f"--file={target}"]
    if snapshot is not None:
        argv.append(f"--snapshot={snapshot}")
    _run([*argv, source.dbname], source, "pg_dump")


def base_backup(source: PostgresSource, target: Path) -> str:
    """pg_basebackup of the whole server as base.tar (with the WAL it needs to be
    consistent); returns the WAL segment it starts from, the oldest one recovery needs."""
    argv = [tool("pg_basebackup"), *_address(source), f"--pgdata={target}", "--format=tar"]
    argv += ["--wal-method=fetch", "--checkpoint=fast", "--no-sync"]
    _run(argv, source, "pg_basebackup")
    with tarfile.open(target / "base.tar") as tar:
        member = tar.extractfile("backup_label")
        label = member.read().decode() if member is not None else ""
    # "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)"
    for line in label.splitlines():
        if line.startswith("START WAL LOCATION:") and "(file " in line:
            return line.rsplit("(file ", 1)[1].rstrip(")")
    raise PostgresError(f"{target}/base.tar: backup_label names no start WAL segment")


def archiver(source: PostgresSource) -> dict[str, Any]:
    """pg_stat_archiver: what archive_command did last, and when it last failed."""
    with connect(source, row_factory=dict_row) as conn:
        row = conn.execute(
            "SELECT archived_count, last_archived_wal, last_archived_time, failed_count,"
            " last_failed_wal, last_failed_time, current_setting('archive_command') AS command,"
            " current_setting('archive_timeout') AS timeout FROM pg_stat_archiver"
        ).fetchone()
    return dict(row or {})
