"""Drivers against real sockets on loopback: deadlines hold whatever the server does."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from opsverify.drivers import http


@pytest.fixture
def dripping_server() -> Iterator[str]:
    """Answers headers at once, then one body byte every 0.2 s for up to 10 s."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    stop = threading.Event()

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            return
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n")
            for _ in range(50):
                if stop.wait(0.2):
                    return
                try:
                    conn.sendall(b"x")
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/health"
    stop.set()
    thread.join(timeout=5)
    listener.close()


def test_a_dripping_answer_hits_the_total_deadline(dripping_server: str) -> None:
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout, match="no complete answer within 1 s"):
        http.get(dripping_server, timeout=1)
    # Each byte arrives well within the per-read timeout; only a total deadline stops it.
    assert time.monotonic() - started < 5
