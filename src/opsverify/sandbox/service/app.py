"""cronos-ai: the sandbox's reference web service (Starlette, run by uvicorn with --factory).

Health, readiness, Prometheus metrics, a bearer-protected CRUD API on PostgreSQL, a
heartbeat writer (so drills can measure real data loss) and a fault switch (latency, errors)
for chaos and load experiments. Configuration comes from ``CRONOS_*`` environment variables;
the database password and API token are read from files, never from the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg.conninfo import make_conninfo
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import db
from .metrics import UP, MetricsMiddleware

log = logging.getLogger("cronos-ai")

READY_TIMEOUT_S = 2.0
HEARTBEAT_INTERVAL_S = 2.0
MAX_NAME_LENGTH = 200
MAX_PAGE = 1000
MAX_FAULT_LATENCY_MS = 30_000

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Faults:
    """Injected faults, applied to the items API only (health and metrics stay truthful)."""

    latency_ms: int = 0
    error_ratio: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "error_ratio": self.error_ratio}


@dataclass
class State:
    db: db.Database
    api_token: str
    faults: Faults
    schema_ready: bool = False

    async def ensure_schema(self) -> None:
        if not self.schema_ready:
            await self.db.run(db.create_schema)
            self.schema_ready = True


def create_app() -> Starlette:
    """Build the app from the environment (uvicorn ``--factory`` entry point)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    env = os.environ
    conninfo = make_conninfo(
        host=env["CRONOS_DB_HOST"],
        port=env["CRONOS_DB_PORT"],
        dbname=env["CRONOS_DB_NAME"],
        user=env["CRONOS_DB_USER"],
        password=_read_secret(env["CRONOS_DB_PASSWORD_FILE"]),
        connect_timeout=2,
        application_name="cronos-ai",
        # A hung query must not hold a pooled connection forever.
        options="-c statement_timeout=5000",
    )
    state = State(
        db=db.Database(conninfo),
        api_token=_read_secret(env["CRONOS_API_TOKEN_FILE"]),
        faults=Faults(),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.cronos = state
        UP.set(1)
        heartbeat = asyncio.create_task(_heartbeat(state))
        try:
            yield
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            await state.db.close()

    routes = [
        Route("/health", health),
        Route("/ready", ready),
        Route("/metrics", metrics),
        Route("/openapi.json", openapi),
        Route("/api/v1/items", _api(list_items), methods=["GET"]),
        Route("/api/v1/items", _api(create_item), methods=["POST"]),
        Route("/api/v1/items/{item_id:int}", _api(get_item), methods=["GET"]),
        Route("/api/v1/items/{item_id:int}", _api(update_item), methods=["PUT"]),
        Route("/api/v1/items/{item_id:int}", _api(delete_item), methods=["DELETE"]),
        Route("/api/v1/faults", _authorized(get_faults), methods=["GET"]),
        Route("/api/v1/faults", _authorized(set_faults), methods=["PUT"]),
        Route("/api/v1/faults", _authorized(clear_faults), methods=["DELETE"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(MetricsMiddleware)],
        exception_handlers={psycopg.OperationalError: _database_unavailable},
        lifespan=lifespan,
    )


def _read_secret(path: str) -> str:
    return Path(path).read_text(encoding="utf-8").strip()


def _state(request: Request) -> State:
    return request.app.state.cronos


async def _heartbeat(state: State) -> None:
    """Create the schema as soon as the database answers, then write a row every interval."""
    while True:
        try:
            await asyncio.wait_for(state.ensure_schema(), READY_TIMEOUT_S)
            await asyncio.wait_for(state.db.run(db.write_heartbeat), READY_TIMEOUT_S)
        except (psycopg.Error, TimeoutError) as exc:
            log.warning("heartbeat not written: %s", exc or type(exc).__name__)
        except Exception:
            # Anything unexpected is logged but must not end the loop: a silently stopped
            # heartbeat would read as data loss in a drill.
            log.exception("heartbeat not written")
        await asyncio.sleep(HEARTBEAT_INTERVAL_S)


# --- auth and faults -------------------------------------------------------------------------


def _authorized(handler: Handler) -> Handler:
    async def guarded(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expected = _state(request).api_token
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
            return JSONResponse(
                {"error": "missing or invalid bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await handler(request)

    return guarded


def _api(handler: Handler) -> Handler:
    """An items endpoint: bearer token required, injected faults applied."""

    async def with_faults(request: Request) -> Response:
        faults = _state(request).faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.error_ratio and random.random() < faults.error_ratio:
            return JSONResponse({"error": "injected fault"}, status_code=500)
        return await handler(request)

    return _authorized(with_faults)


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable: %s", exc)
    return JSONResponse({"error": "database unavailable"}, status_code=503)


# --- operational endpoints -------------------------------------------------------------------


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    state = _state(request)

    async def probe() -> None:
        await state.ensure_schema()
        await state.db.run(db.ping)

    try:
        await asyncio.wait_for(probe(), READY_TIMEOUT_S)
    except TimeoutError:
        reason = f"database did not answer within {READY_TIMEOUT_S:g} s"
    except psycopg.Error as exc:
        reason = f"database: {str(exc).strip() or type(exc).__name__}"
    else:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def get_faults(request: Request) -> Response:
    return JSONResponse(_state(request).faults.as_json())


async def set_faults(request: Request) -> Response:
    body = await _json_object(request)
    if isinstance(body, Response):
        return body
    latency = body.get("latency_ms", 0)
    ratio = body.get("error_ratio", 0.0)
    if set(body) - {"latency_ms", "error_ratio"}:
        return _invalid("only latency_ms and error_ratio can be set")
    if not isinstance(latency, int) or isinstance(latency, bool):
        return _invalid("latency_ms must be an integer")
    if not 0 <= latency <= MAX_FAULT_LATENCY_MS:
        return _invalid(f"latency_ms must be within 0..{MAX_FAULT_LATENCY_MS}")
    if not isinstance(ratio, int | float) or isinstance(ratio, bool) or not 0 <= ratio <= 1:
        return _invalid("error_ratio must be a number within 0..1")
    faults = _state(request).faults
    faults.latency_ms, faults.error_ratio = latency, float(ratio)
    log.warning("faults injected: %s", faults.as_json())
    return JSONResponse(faults.as_json())


async def clear_faults(request: Request) -> Response:
    faults = _state(request).faults
    faults.latency_ms, faults.error_ratio = 0, 0.0
    log.info("faults cleared")
    return JSONResponse(faults.as_json())


# --- items API -------------------------------------------------------------------------------


async def list_items(request: Request) -> Response:
    try:
        limit = int(request.query_params.get("limit", "100"))
        offset = int(request.query_params.get("offset", "0"))
    except ValueError:
        return _invalid("limit and offset must be integers")
    if not (1 <= limit <= MAX_PAGE and offset >= 0):
        return _invalid(f"limit must be within 1..{MAX_PAGE} and offset at least 0")
    rows = await _state(request).db.run(lambda conn: db.list_items(conn, limit, offset))
    return JSONResponse([_item_json(row) for row in rows])


async def create_item(request: Request) -> Response:
    fields = await _item_fields(request)
    if isinstance(fields, Response):
        return fields
    row = await _state(request).db.run(lambda conn: db.create_item(conn, *fields))
    return JSONResponse(_item_json(row), status_code=201)


async def get_item(request: Request) -> Response:
    item_id: int = request.path_params["item_id"]
    row = await _state(request).db.run(lambda conn: db.get_item(conn, item_id))
    return _found(row)


async def update_item(request: Request) -> Response:
    item_id: int = request.path_params["item_id"]
    fields = await _item_fields(request)
    if isinstance(fields, Response):
        return fields
    row = await _state(request).db.run(lambda conn: db.update_item(conn, item_id, *fields))
    return _found(row)


async def delete_item(request: Request) -> Response:
    item_id: int = request.path_params["item_id"]
    deleted = await _state(request).db.run(lambda conn: db.delete_item(conn, item_id))
    return Response(status_code=204) if deleted else _not_found()


async def _item_fields(request: Request) -> tuple[str, str] | Response:
    body = await _json_object(request)
    if isinstance(body, Response):
        return body
    name, description = body.get("name"), body.get("description", "")
    if set(body) - {"name", "description"}:
        return _invalid("only name and description can be set")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_LENGTH:
        return _invalid(f"name must be a string of 1..{MAX_NAME_LENGTH} characters")
    if not isinstance(description, str):
        return _invalid("description must be a string")
    return name, description


async def _json_object(request: Request) -> dict[str, Any] | Response:
    try:
        body = await request.json()
    except ValueError:
        return _invalid("body must be JSON")
    return body if isinstance(body, dict) else _invalid("body must be a JSON object")


def _item_json(row: db.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def _found(row: db.Row | None) -> Response:
    return JSONResponse(_item_json(row)) if row else _not_found()


def _not_found() -> Response:
    return JSONResponse({"error": "item not found"}, status_code=404)


def _invalid(message: str) -> Response:
    return JSONResponse({"error": message}, status_code=422)


# --- OpenAPI ---------------------------------------------------------------------------------


async def openapi(request: Request) -> Response:
    return JSONResponse(OPENAPI)


_ITEM_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH},
        "description": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
    "required": ["id", "name", "description", "created_at", "updated_at"],
}
_ITEM_INPUT = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH},
        "description": {"type": "string"},
    },
    "required": ["name"],
    "additionalProperties": False,
}
_ITEM_ID = {"name": "item_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_JSON = "application/json"


def _reply(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    reply: dict[str, Any] = {"description": description}
    if schema:
        reply["content"] = {_JSON: {"schema": schema}}
    return reply


_ERRORS = {
    "401": _reply("missing or invalid bearer token"),
    "503": _reply("database unavailable"),
}
_INPUT_ERRORS = {**_ERRORS, "422": _reply("invalid input")}
_ITEM_BODY = {"required": True, "content": {_JSON: {"schema": _ITEM_INPUT}}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "cronos-ai (opsverify sandbox)", "version": "1.0.0"},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "paths": {
        "/health": {"get": {"summary": "Liveness", "responses": {"200": _reply("alive")}}},
        "/ready": {
            "get": {
                "summary": "Readiness: the database answers within 2 s",
                "responses": {"200": _reply("ready"), "503": _reply("not ready, with a reason")},
            }
        },
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": _reply("ok")}}},
        "/api/v1/items": {
            "get": {
                "summary": "List items",
                "security": [{"bearer": []}],
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer"}},
                ],
                "responses": {
                    "200": _reply("items", {"type": "array", "items": _ITEM_SCHEMA}),
                    **_INPUT_ERRORS,
                },
            },
            "post": {
                "summary": "Create an item",
                "security": [{"bearer": []}],
                "requestBody": _ITEM_BODY,
                "responses": {"201": _reply("created", _ITEM_SCHEMA), **_INPUT_ERRORS},
            },
        },
        "/api/v1/items/{item_id}": {
            "parameters": [_ITEM_ID],
            "get": {
                "summary": "Read an item",
                "security": [{"bearer": []}],
                "responses": {
                    "200": _reply("the item", _ITEM_SCHEMA),
                    "404": _reply("no such item"),
                    **_ERRORS,
                },
            },
            "put": {
                "summary": "Replace an item",
                "security": [{"bearer": []}],
                "requestBody": _ITEM_BODY,
                "responses": {
                    "200": _reply("the updated item", _ITEM_SCHEMA),
                    "404": _reply("no such item"),
                    **_INPUT_ERRORS,
                },
            },
            "delete": {
                "summary": "Delete an item",
                "security": [{"bearer": []}],
                "responses": {
                    "204": _reply("deleted"),
                    "404": _reply("no such item"),
                    **_ERRORS,
                },
            },
        },
        "/api/v1/faults": {
            "get": {
                "summary": "Injected faults",
                "security": [{"bearer": []}],
                "responses": {"200": _reply("current faults"), "401": _ERRORS["401"]},
            },
            "put": {
                "summary": "Inject latency and/or errors into the items API",
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        _JSON: {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "latency_ms": {
                                        "type": "integer",
                                        "minimum": 0,
                                        "maximum": MAX_FAULT_LATENCY_MS,
                                    },
                                    "error_ratio": {"type": "number", "minimum": 0, "maximum": 1},
                                },
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                "responses": {
                    "200": _reply("faults now active"),
                    "401": _ERRORS["401"],
                    "422": _reply("invalid body"),
                },
            },
            "delete": {
                "summary": "Clear injected faults",
                "security": [{"bearer": []}],
                "responses": {"200": _reply("faults cleared"), "401": _ERRORS["401"]},
            },
        },
    },
}
