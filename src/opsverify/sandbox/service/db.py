"""PostgreSQL access for cronos-ai: a small connection pool, the schema and the item queries."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row

T = TypeVar("T")
Row = dict[str, Any]

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- One row every few seconds while the service runs: drills read max(at) to measure data loss.
CREATE TABLE IF NOT EXISTS heartbeat (
    id serial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now()
);
"""

_ITEM_COLUMNS = "id, name, description, created_at, updated_at"


class Database:
    """At most ``size`` autocommit connections, reused across requests.

    A connection that the server dropped (PostgreSQL restarted) is noticed on its next use:
    it is discarded and the work runs once more on a fresh connection.
    """

    def __init__(self, conninfo: str, size: int = 8) -> None:
        self._conninfo = conninfo
        self._idle: list[psycopg.AsyncConnection[Row]] = []
        self._slots = asyncio.Semaphore(size)

    async def run(self, work: Callable[[psycopg.AsyncConnection[Row]], Awaitable[T]]) -> T:
        async with self._slots:
            while True:
                reused = bool(self._idle)
                conn = self._idle.pop() if reused else await self._connect()
                try:
                    result = await work(conn)
                except psycopg.OperationalError:
                    await conn.close()
                    if reused:
                        continue  # a stale pooled connection; the next one is fresh or healthier
                    raise
                except psycopg.Error:
                    # A query error leaves an autocommit connection usable.
                    if conn.broken:
                        await conn.close()
                    else:
                        self._idle.append(conn)
                    raise
                except BaseException:
                    # Cancelled (a timeout) mid-query: the connection's state is unknown.
                    await conn.close()
                    raise
                self._idle.append(conn)
                return result

    async def close(self) -> None:
        while self._idle:
            await self._idle.pop().close()

    async def _connect(self) -> psycopg.AsyncConnection[Row]:
        return await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, row_factory=dict_row
        )


async def create_schema(conn: psycopg.AsyncConnection[Row]) -> None:
    await conn.execute(SCHEMA)


async def ping(conn: psycopg.AsyncConnection[Row]) -> None:
    await conn.execute("SELECT 1")


async def write_heartbeat(conn: psycopg.AsyncConnection[Row]) -> None:
    await conn.execute("INSERT INTO heartbeat DEFAULT VALUES")


async def list_items(conn: psycopg.AsyncConnection[Row], limit: int, offset: int) -> list[Row]:
    cur = await conn.execute(
        f"SELECT {_ITEM_COLUMNS} FROM items ORDER BY id LIMIT %s OFFSET %s", (limit, offset)
    )
    return await cur.fetchall()


async def get_item(conn: psycopg.AsyncConnection[Row], item_id: int) -> Row | None:
    cur = await conn.execute(f"SELECT {_ITEM_COLUMNS} FROM items WHERE id = %s", (item_id,))
    return await cur.fetchone()


async def create_item(conn: psycopg.AsyncConnection[Row], name: str, description: str) -> Row:
    cur = await conn.execute(
        f"INSERT INTO items (name, description) VALUES (%s, %s) RETURNING {_ITEM_COLUMNS}",
        (name, description),
    )
    row = await cur.fetchone()
    assert row is not None  # INSERT ... RETURNING always yields the row
    return row


async def update_item(
    conn: psycopg.AsyncConnection[Row], item_id: int, name: str, description: str
) -> Row | None:
    cur = await conn.execute(
        f"UPDATE items SET name = %s, description = %s, updated_at = now() WHERE id = %s "
        f"RETURNING {_ITEM_COLUMNS}",
        (name, description, item_id),
    )
    return await cur.fetchone()


async def delete_item(conn: psycopg.AsyncConnection[Row], item_id: int) -> bool:
    cur = await conn.execute("DELETE FROM items WHERE id = %s", (item_id,))
    return cur.rowcount == 1
