"""The sandbox's webhook receiver: where Alertmanager delivers notifications.

Each POST body is appended, with its path and arrival time, as one JSON line to the store
file; ``GET /received`` (optionally ``?path=/pager``) returns what arrived, so a drill can
prove that an alert reached the right receiver.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_BODY_BYTES = 1_000_000


class Store:
    """An append-only JSON-lines file; one lock keeps concurrent deliveries whole."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)

    def read(self, path_filter: str | None) -> list[dict[str, Any]]:
        with self._lock:
            if not self.path.exists():
                return []
            lines = self.path.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line]
        return [r for r in records if path_filter is None or r["path"] == path_filter]


def make_handler(store: Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "opsverify-webhook"
        timeout = 10  # seconds; a stuck client must not hold its handler thread forever

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY_BYTES:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": "missing or oversized body"})
                return
            raw = self.rfile.read(length).decode("utf-8", errors="replace")
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw  # keep what arrived, even if it is not JSON
            store.append(
                {
                    "received_at": dt.datetime.now(dt.UTC).isoformat(),
                    "path": urlsplit(self.path).path,
                    "body": body,
                }
            )
            self._reply(HTTPStatus.OK, {"status": "stored"})

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            if url.path == "/health":
                self._reply(HTTPStatus.OK, {"status": "ok"})
            elif url.path == "/received":
                path_filter = parse_qs(url.query).get("path", [None])[0]
                self._reply(HTTPStatus.OK, store.read(path_filter))
            else:
                self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})

        def _reply(self, status: HTTPStatus, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", type=Path, required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(Store(args.store)))
    server.serve_forever()


if __name__ == "__main__":
    main()
