"""The HTTP driver against hostile servers on loopback: a total deadline from connect to the
last byte, a bounded body, and errors that name the URL."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from opsverify.drivers import http


def _serve(answer) -> Iterator[str]:  # noqa: ANN001 - a function of the accepted socket
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def loop() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.recv(65536)
                answer(connection, stop)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/health"
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


@pytest.fixture
def dripping() -> Iterator[str]:
    """Sends a status line and headers one byte every 0.2 s: each read is quick, the whole
    answer would take a minute."""

    def answer(connection: socket.socket, stop: threading.Event) -> None:
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + b"X-Slow: " + b"a" * 300 + b"\r\n\r\nok"
        )
        for byte in head:
            if stop.is_set():
                return
            try:
                connection.sendall(bytes([byte]))
            except OSError:
                return
            time.sleep(0.2)

    yield from _serve(answer)


@pytest.fixture
def endless() -> Iterator[str]:
    """Answers 200 with a body that never ends, quickly."""

    def answer(connection: socket.socket, stop: threading.Event) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
        while not stop.is_set():
            try:
                connection.sendall(chunk)
            except OSError:
                return

    yield from _serve(answer)


def test_a_server_dripping_its_headers_is_cut_off_at_the_total_deadline(dripping: str) -> None:
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout) as caught:
        http.get(dripping, timeout=2)
    assert time.monotonic() - started < 10  # not the minute the answer would take
    assert "no complete answer within 2 s" in str(caught.value)
    assert str(caught.value.request.url) == dripping


def test_an_endless_body_is_refused_past_its_bound(endless: str) -> None:
    with pytest.raises(httpx.ReadError, match="answer larger than"):
        http.get(endless, timeout=30)


def test_a_refused_connection_names_its_url() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/api/v2/status"
    with pytest.raises(httpx.ConnectError) as caught:
        http.get(url, timeout=2)
    assert str(caught.value.request.url) == url
