"""Headless Debian chromium for tests: screenshot a page and read its rendered text.

Only file:// and loopback URLs are accepted, and chromium runs with its background
networking off and every host name unresolvable, so a test never reaches the internet.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import zlib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["CHROMIUM_FLAGS", "chromium", "is_blank", "render"]

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # IP literals (127.0.0.1) never reach the resolver; every name except localhost fails.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
)

# Virtual time, not wall time: chromium fast-forwards idle timers, so 10 s of budget costs
# about a second, and the Allure single-file report (which decodes its inlined data and then
# renders) has long settled by then.
VIRTUAL_TIME_BUDGET_MS = 10_000

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def chromium() -> str | None:
    """Path of the chromium executable, or None when it is not installed."""
    return shutil.which("chromium")


def render(
    url_or_path: str | Path, *, png: Path, timeout: float = 60, window: str = "1400,900"
) -> str:
    """Screenshot the page to ``png`` and return its rendered text (whitespace-collapsed).

    Two chromium runs, each with a fresh profile: ``--screenshot`` then ``--dump-dom``.
    ``timeout`` bounds both together.
    """
    url = _to_url(url_or_path)
    deadline = time.monotonic() + timeout
    png.unlink(missing_ok=True)
    _chromium([f"--window-size={window}", f"--screenshot={png.resolve()}", url], deadline)
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot for {url}")
    dom = _chromium([f"--window-size={window}", "--dump-dom", url], deadline)
    return _visible_text(dom)


def is_blank(png: Path) -> bool:
    """True if every pixel of the (8-bit, non-interlaced) PNG has the same colour.

    Stdlib only. Rather than unfiltering the whole image in Python (slow), it decodes the
    first row, and then checks each later row's filtered bytes against what the PNG filter
    would produce for a copy of that row: the filters are invertible, so equal bytes mean an
    equal row.
    """
    data = png.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{png} is not a PNG")
    width = height = channels = 0
    idat = bytearray()
    offset = 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        offset += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour, 0)
            if depth != 8 or not channels or interlace:
                raise ValueError(f"{png}: only 8-bit, non-palette, non-interlaced PNGs")
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(bytes(idat))
    stride = width * channels
    first = _unfilter(raw[0], raw[1 : 1 + stride], bytes(stride), channels)
    if first != first[:channels] * width:
        return False
    expected = {kind: _filter(kind, first, first, channels) for kind in range(5)}
    for row in range(1, height):
        start = row * (stride + 1)
        line = raw[start + 1 : start + 1 + stride]
        if line != expected.get(raw[start]):
            return False
    return True


def _to_url(url_or_path: str | Path) -> str:
    if isinstance(url_or_path, Path) or "://" not in url_or_path:
        return Path(url_or_path).resolve().as_uri()
    parts = urlsplit(url_or_path)
    if parts.scheme == "file" or (
        parts.scheme in ("http", "https") and parts.hostname in _LOOPBACK
    ):
        return url_or_path
    raise ValueError(f"only file:// and loopback URLs are allowed, not {url_or_path!r}")


def _chromium(args: list[str], deadline: float) -> str:
    executable = chromium()
    if executable is None:
        raise RuntimeError("chromium is not installed")
    with tempfile.TemporaryDirectory(prefix="opsverify-chromium-") as profile:
        proc = subprocess.Popen(
            [
                executable,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
                *args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            # Its own process group: on timeout the renderer and GPU children die too.
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise RuntimeError(f"chromium timed out: {' '.join(args)}") from None
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited with {proc.returncode}:\n{stderr[-2000:]}")
    return stdout


class _TextCollector(HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _visible_text(dom: str) -> str:
    collector = _TextCollector()
    collector.feed(dom)
    collector.close()
    return " ".join(" ".join(collector.parts).split())


def _paeth(left: int, up: int, up_left: int) -> int:
    estimate = left + up - up_left
    a, b, c = abs(estimate - left), abs(estimate - up), abs(estimate - up_left)
    if a <= b and a <= c:
        return left
    return up if b <= c else up_left


def _predictor(kind: int, row: bytes | bytearray, prior: bytes, bpp: int, i: int) -> int:
    left = row[i - bpp] if i >= bpp else 0
    up_left = prior[i - bpp] if i >= bpp else 0
    return (0, left, prior[i], (left + prior[i]) // 2, _paeth(left, prior[i], up_left))[kind]


def _filter(kind: int, row: bytes, prior: bytes, bpp: int) -> bytes:
    return bytes((row[i] - _predictor(kind, row, prior, bpp, i)) & 0xFF for i in range(len(row)))


def _unfilter(kind: int, line: bytes, prior: bytes, bpp: int) -> bytes:
    row = bytearray(len(line))
    for i, value in enumerate(line):
        row[i] = (value + _predictor(kind, row, prior, bpp, i)) & 0xFF
    return bytes(row)
