"""What users saw of an activity that takes the service down on purpose (a failover drill, a
chaos experiment): the service's health through the load balancer, asked every 0.2 s in a
thread of its own while the activity runs, and the outages that makes.

The activity declares when it broke the service (``since``): from then the service counts as
down until the first healthy answer; each later unhealthy answer starts an outage at the last
healthy one. The window and its outages go into the activity's history record
(``opsverify.history.DeclaredWindow``), where SLO-001 reads them back.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from opsverify.drivers import http
from opsverify.history import DeclaredWindow, Span

POLL_S = 0.2
ASK_TIMEOUT_S = 2.0
LIMIT = timedelta(hours=6)  # however long the activity runs, the watch stops by then


def ask(url: str, ca_file: Path | None) -> tuple[bool, str]:
    """One health request, on a connection of its own as a new user's would be: healthy
    (it answered 200), and what it answered."""
    try:
        status = http.get(url, timeout=ASK_TIMEOUT_S, ca_file=ca_file).status_code
    except httpx.HTTPError as exc:
        return False, type(exc).__name__
    return status == 200, f"answered {status}"


class Watch:
    """Asks ``url`` from ``start()`` until ``stop()`` (or ``LIMIT``), and keeps the outages."""

    def __init__(self, url: str, ca_file: Path | None, since: datetime) -> None:
        self.url, self.ca_file, self.since = url, ca_file, since
        self._outages: list[Span] = []
        self._down_since: datetime | None = since  # broken on purpose: down until healthy
        self._last_healthy: datetime | None = None
        self._until: datetime | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outage-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=ASK_TIMEOUT_S + 5)
        self._until = datetime.now(UTC)

    def window(self, during: dict[str, datetime | None]) -> DeclaredWindow:
        """The declared window (``since`` to ``stop()``) with its outages, each labelled with
        the last of ``during``'s parts (name: when it began) that began before it."""
        until = self._until or datetime.now(UTC)
        outages = [*self._outages]
        if self._down_since is not None:  # still down when the watch stopped
            outages.append(Span(self._down_since, until))
        begun = sorted((at, name) for name, at in during.items() if at is not None)

        def part(outage: Span) -> str:
            return next((n for at, n in reversed(begun) if at <= outage.start), "")

        labelled = tuple(Span(o.start, o.end, part(o)) for o in outages)
        return DeclaredWindow(Span(self.since, until), labelled, self.url)

    def _run(self) -> None:
        deadline = time.monotonic() + LIMIT.total_seconds()
        while not self._stopping.is_set() and time.monotonic() < deadline:
            healthy, _ = ask(self.url, self.ca_file)
            self._observe(datetime.now(UTC), healthy)
            self._stopping.wait(POLL_S)

    def _observe(self, at: datetime, healthy: bool) -> None:
        if healthy:
            if self._down_since is not None:
                self._outages.append(Span(self._down_since, at))
                self._down_since = None
            self._last_healthy = at
        elif self._down_since is None:
            # Users may have failed from just after the last healthy answer.
            self._down_since = self._last_healthy or at
