"""Active probes: a bounded burst of real requests through the load balancer, measured.

**Latency** is the time from handing a request to httpx to having read the last byte of its
response body, taken with ``time.perf_counter``: TLS, the load balancer, the service and the
transfer, on a kept-alive connection. One httpx client keeps one connection per request in
flight, as a real client does; the warm-up requests, which open those connections, are not
measured. Latency figures cover the *successful* requests (answered with the expected
status): a fast error must not make the service look quicker. Failures count against the
success ratio instead (the SRE convention: latency of good requests, errors separately).

**Percentiles** are nearest-rank: the p-th is the smallest measured latency that at least
p % of the measurements do not exceed. It is always a latency some request really had, and
"p95 ≤ 500 ms" reads exactly as "at least 95 % of the requests took at most 500 ms".

Bounded: ``warmup + requests`` requests, ``concurrency`` at a time, each within ``timeout``,
all within ``deadline``; whatever is still in flight then is cancelled. A probe stops sending
once the target stopped answering (``OUTAGE_STREAK`` requests in a row, warm-up included,
failed with a 5xx or without an answer): it must not spend the error budget it judges.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from opsverify import message
from opsverify.drivers import http
from opsverify.profile import Probe

PERCENTILES = (50, 90, 95, 99)
OUTAGE_STREAK = 20
_CHAIN_LIMIT = 10  # exception causes followed to name the root of a transport error


@dataclass(frozen=True)
class Outcome:
    """One request: how long it took and how it ended."""

    seconds: float
    status: int | None = None  # None: no complete HTTP answer
    error: str | None = None  # why not: exception type (and its root cause)
    detail: str = ""

    @property
    def unanswered(self) -> bool:
        """No HTTP answer, and not because of the target's certificate (that is an answer)."""
        return self.status is None and "SSL" not in (self.error or "")

    @property
    def down(self) -> bool:
        """What a target that stopped answering gives: a 5xx or no answer."""
        return self.unanswered or (self.status or 0) >= 500


@dataclass(frozen=True)
class Result:
    probe: Probe
    warmup: list[Outcome]
    measured: list[Outcome]  # in the order they finished
    seconds: float  # the whole probe, warm-up included
    finished: bool  # every request done before the deadline
    outage: bool = False  # stopped: the target stopped answering

    @property
    def latencies_ms(self) -> list[float]:
        """Latencies of the successful measured requests, in the order they finished."""
        ok = self.probe.expect_status
        return [o.seconds * 1000 for o in self.measured if o.status == ok]

    @property
    def success_percent(self) -> float:
        if not self.measured:
            return 0.0
        return 100 * len(self.latencies_ms) / len(self.measured)

    @property
    def unreachable(self) -> str | None:
        """Why the target counts as unreachable: no request got an answer (a TLS failure is
        one, and a finding)."""
        outcomes = self.warmup + self.measured
        if not outcomes or not all(o.unanswered for o in outcomes):
            return None
        url = httpx.URL(str(self.probe.url))
        port = url.port or (443 if url.scheme == "https" else 80)
        return f"cannot reach {url.host}:{port}: {self.message()}"

    def percentile(self, p: float) -> float | None:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return None
        return ordered[max(math.ceil(p * len(ordered) / 100), 1) - 1]

    def figures(self) -> dict[str, float | int | None]:
        """What the history keeps: enough to draw a trend without opening the evidence."""
        return {
            **{f"p{p}_ms": _round(self.percentile(p)) for p in (50, 95, 99)},
            "success_ratio": round(self.success_percent, 3),
            "requests": len(self.measured),
        }

    def shortfalls(self) -> list[str]:
        """Each objective missed, measured against wanted; empty when the probe passed."""
        probe, wanted = self.probe, self.probe.objectives
        found = []
        if self.outage:
            sent = len(self.warmup) + len(self.measured)
            found.append(
                f"the target stopped answering: {OUTAGE_STREAK} requests in a row failed"
                f" (a 5xx or no answer); stopped after {sent} of {probe.warmup + probe.requests}"
                " requests"
            )
        if not self.finished:
            found.append(
                f"did not finish {probe.requests} requests within {_seconds(probe.deadline)}"
                f" ({len(self.measured)} done)"
            )
        if self.success_percent < wanted.success_ratio:
            failures = ", ".join(f"{n} × {kind}" for kind, n in self._errors().most_common(3))
            found.append(
                f"success {self.success_percent:.2f}% < {wanted.success_ratio:g}% objective"
                f" ({failures or 'no request measured'})"
            )
        if not self.latencies_ms:
            return [*found, "no latency measured: no request succeeded"]
        for p, limit in ((95, wanted.p95), (99, wanted.p99)):
            measured = self.percentile(p)
            if limit is not None and measured > _ms(limit):
                found.append(f"p{p} {measured:.1f} ms > {_ms(limit):g} ms objective")
        return found

    def message(self) -> str:
        over = f"over {len(self.measured)} requests to {self.probe.url}"
        return f"{'; '.join(self.shortfalls())} {over}"

    def evidence(self) -> dict[str, Any]:
        probe, wanted = self.probe, self.probe.objectives
        latencies = self.latencies_ms
        summary = {f"p{p}": _round(self.percentile(p)) for p in PERCENTILES}
        if latencies:
            summary |= {
                "min": _round(min(latencies)),
                "max": _round(max(latencies)),
                "mean": _round(statistics.fmean(latencies)),
            }
        return {
            "url": str(probe.url),
            "method": probe.method,
            "credentials_sent": probe.auth,
            "planned": {
                "requests": probe.requests,
                "warmup": probe.warmup,
                "concurrency": probe.concurrency,
                "timeout_seconds": probe.timeout.total_seconds(),
                "deadline_seconds": probe.deadline.total_seconds(),
            },
            "finished": self.finished,
            "stopped_by_outage": self.outage,
            "wall_seconds": round(self.seconds, 3),
            "measured_requests": len(self.measured),
            "latency_definition": (
                "request handed to httpx until the last body byte was read (time.perf_counter),"
                " on kept-alive connections; successful requests only; nearest-rank percentiles"
            ),
            "latency_ms": summary,
            "success_ratio_percent": round(self.success_percent, 3),
            "status_counts": _counts(o.status for o in self.measured if o.status is not None),
            "errors": {
                kind: {"count": n, "example": self._example(kind)}
                for kind, n in self._errors().most_common()
            },
            "objectives": {
                "p95_ms": _ms(wanted.p95),
                "p99_ms": _ms(wanted.p99) if wanted.p99 is not None else None,
                "success_ratio_percent": wanted.success_ratio,
                "expect_status": probe.expect_status,
            },
            "shortfalls": self.shortfalls(),
            "warmup_status_counts": _counts(o.status or o.error for o in self.warmup),
            "latencies_ms": [round(v, 3) for v in latencies],
        }

    def _errors(self) -> Counter[str]:
        """Failed measured requests by kind: ``HTTP 500``, ``Timeout``, ``ConnectError (…)``."""
        ok = self.probe.expect_status
        return Counter(o.error or f"HTTP {o.status}" for o in self.measured if o.status != ok)

    def _example(self, kind: str) -> str:
        return next((o.detail for o in self.measured if o.error == kind), "")


def run(probe: Probe, headers: dict[str, str]) -> Result:
    """Send the probe's requests and measure them; never longer than its deadline."""
    return asyncio.run(_run(probe, headers))


async def _run(probe: Probe, headers: dict[str, str]) -> Result:
    slots = iter(range(probe.warmup + probe.requests))
    done: list[tuple[int, Outcome]] = []
    limits = httpx.Limits(
        max_connections=probe.concurrency, max_keepalive_connections=probe.concurrency
    )
    timeout = probe.timeout.total_seconds()
    start = time.perf_counter()
    finished = True
    streak = 0  # requests in a row, in the order they finished, that found the target down
    outage = False
    async with httpx.AsyncClient(
        verify=http.tls_context(probe.ca_file), timeout=timeout, limits=limits, headers=headers
    ) as client:

        async def worker() -> None:
            # The workers share one iterator: each takes the next request number until none is
            # left, so exactly warmup + requests are sent, at most concurrency at a time; none
            # once the target stopped answering.
            nonlocal streak, outage
            for index in slots:
                outcome = await _request(client, probe.method, str(probe.url), timeout)
                done.append((index, outcome))
                streak = streak + 1 if outcome.down else 0
                outage = outage or streak >= OUTAGE_STREAK
                if outage:
                    return

        try:
            async with asyncio.timeout(probe.deadline.total_seconds()):
                await asyncio.gather(*(worker() for _ in range(probe.concurrency)))
        except TimeoutError:
            finished = False
    return Result(
        probe=probe,
        warmup=[o for i, o in done if i < probe.warmup],
        measured=[o for i, o in done if i >= probe.warmup],
        seconds=time.perf_counter() - start,
        finished=finished,
        outage=outage,
    )


async def _request(client: httpx.AsyncClient, method: str, url: str, timeout: float) -> Outcome:
    start = time.perf_counter()
    try:
        # httpx's timeouts are per phase; this one bounds the whole answer.
        async with asyncio.timeout(timeout), client.stream(method, url) as response:
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > http.MAX_BODY:
                    raise httpx.ReadError(f"answer larger than {http.MAX_BODY} bytes")
    except TimeoutError:
        detail = f"no complete answer within {timeout:g} s"
        return Outcome(time.perf_counter() - start, error="Timeout", detail=detail)
    except httpx.HTTPError as exc:
        return Outcome(
            time.perf_counter() - start, error=_describe(exc), detail=message.head(str(exc), 300)
        )
    return Outcome(time.perf_counter() - start, status=response.status_code)


def _describe(exc: BaseException) -> str:
    """``ConnectError (ConnectionRefusedError)``: httpx's kind and, when different, the root
    cause, which says more (refused, reset, certificate)."""
    root = exc
    for _ in range(_CHAIN_LIMIT):
        # httpcore re-raises inside its except block: the cause is often only the context.
        below = root.__cause__ or root.__context__
        if below is None:
            break
        root = below
    name, cause = type(exc).__name__, type(root).__name__
    return name if cause == name else f"{name} ({cause})"


def _counts(values: Any) -> dict[str, int]:
    return {str(k): n for k, n in sorted(Counter(values).items(), key=lambda kv: str(kv[0]))}


def _ms(duration: timedelta) -> float:
    return duration.total_seconds() * 1000


def _seconds(duration: timedelta) -> str:
    return f"{duration.total_seconds():g} s"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
