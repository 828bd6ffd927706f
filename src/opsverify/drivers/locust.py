"""Locust driver: run a locustfile headless in a process group of its own, read its statistics.

Locust is never imported here: importing it monkey-patches sockets, ssl and threads with
gevent, which breaks pytest and xdist. It runs as ``python -m opsverify.drivers.locust_main``
(Locust's own command line, plus trust for HttpUser, an honest run time, a bound for load
shapes and the run's facts: see that module); with ``processes`` above one, as Locust's own
master with that many local workers, bound to loopback.

While it runs, Locust rewrites ``<prefix>_stats.csv`` and ``_failures.csv`` every second: a
bounded watcher reads them to stop the run once an abort-on-fail threshold is lost, or once
the target stopped answering (``OUTAGE_*``). The final verdict reads the statistics Locust
writes when it exits (``--json-file``): the CSV's last rewrite can be up to a second older
than the end of the run, a tenth of a 10 s smoke test.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opsverify import message
from opsverify.thresholds import PERCENTILES, Row, Stats, Verdict

TOKEN_ENV = "API_TOKEN"  # the locustfile reads its bearer token here
# The profile's CA, for every client a locustfile may use: SSL_CERT_FILE for OpenSSL's
# default trust (FastHttpUser with insecure = False, through geventhttpclient),
# REQUESTS_CA_BUNDLE for requests (HttpUser, through locust_main, and plain requests).
CA_ENVS = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
FACTS_ENV = "OPSVERIFY_LOCUST_FACTS"  # where locust_main writes the run's facts
GRACE_S = 60.0  # beyond run_time: start-up, workers connecting, reports written
INTERRUPT_S = 5.0  # after SIGINT Locust writes its reports; then SIGTERM
STOP_S = 15.0  # after SIGTERM, the same; then its process group is killed
POLL_S = 1.0  # Locust rewrites its stats CSV once a second
LOG_TAIL = 8 * 1024
# The target stopped answering when, for OUTAGE_WINDOW_S, every request of one name (or of
# all of them), at least OUTAGE_REQUESTS, failed with a 5xx or without an answer (refused,
# reset, timed out): the run stops there rather than spend the error budget it judges.
OUTAGE_WINDOW_S = 5.0
OUTAGE_REQUESTS = 20
# A run lasted clearly less than its run time when it was this much shorter (or more).
SHORT_S, SHORT_SHARE = 1.0, 0.05

Abort = Callable[[Stats, float], Verdict | None]


@dataclass(frozen=True)
class Plan:
    locustfile: Path
    host: str
    users: int
    spawn_rate: float
    run_time_s: int
    processes: int = 1
    ca_file: Path | None = None
    token: str | None = field(default=None, repr=False)  # environment only, never argv

    @property
    def address(self) -> str:
        """host:port of the target, as a connection names it."""
        url = urlsplit(self.host)
        return f"{url.hostname}:{url.port or (443 if url.scheme == 'https' else 80)}"


def deadline(run_time_s: float) -> float:
    """How long a run may take in all before it is stopped as hung."""
    return run_time_s + GRACE_S


@dataclass(frozen=True)
class Facts:
    """What locust_main saw of the run inside Locust (wall-clock seconds since the epoch)."""

    started: float | None = None  # the test started
    stopping: float | None = None  # Locust began to stop it: the load ended
    users: int | None = None  # users running when it began to stop
    shape: str | None = None  # the locustfile's LoadTestShape, which set the users

    @classmethod
    def read(cls, path: Path) -> Facts:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        return cls(**{k: data.get(k) for k in ("started", "stopping", "users", "shape")})

    @property
    def load(self) -> tuple[float, float] | None:
        """When the load started and ended."""
        if self.started is None or self.stopping is None:
            return None
        return self.started, self.stopping

    @property
    def load_s(self) -> float | None:
        """How long the load lasted."""
        return self.load[1] - self.load[0] if self.load else None


@dataclass(frozen=True)
class Outage:
    """Every request of ``request`` in the last OUTAGE_WINDOW_S failed: 5xx or no answer."""

    request: str | None  # "GET /api/v1/items"; None: all requests
    requests: int
    errors: list[str]  # the most frequent first: "412x LocustBadStatusCode(code=503)"

    def describe(self) -> str:
        to = f" to {self.request}" if self.request else ""
        return (
            f"the target stopped answering: in the last {OUTAGE_WINDOW_S:g} s every one of"
            f" the {self.requests} requests{to} failed ({', '.join(self.errors)})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"request": self.request, "requests": self.requests, "errors": self.errors}


@dataclass(frozen=True)
class Outcome:
    plan: Plan
    argv: list[str]
    environment: list[str]  # names of the variables set for the locustfile (not values)
    exit_code: int | None  # None: it could not start
    seconds: float  # wall time of the Locust process
    stats: Stats | None  # what Locust reported at exit; None: it reported nothing
    files: dict[str, Path]  # what Locust wrote: stats, failures, exceptions, json, html, log
    facts: Facts = Facts()
    log_tail: str = ""  # the end of Locust's output
    # Errors raised inside the locustfile's tasks: the load was not what it describes.
    exceptions: list[str] = field(default_factory=list)
    # Failed requests by kind, the most frequent first: "56x GET /api/v1/items: …".
    failures: list[str] = field(default_factory=list)
    # Failed requests without an HTTP answer (refused, timed out; not a TLS failure), by error.
    unanswered: Counter[str] = field(default_factory=Counter)
    aborted: Verdict | None = None  # the abort-on-fail threshold that stopped the run
    outage: Outage | None = None  # the target stopped answering: the run was stopped
    aborted_at_s: float | None = None  # seconds into the load
    timed_out: bool = False
    start_error: str | None = None

    def evidence(self) -> dict[str, Any]:
        return {
            "argv": self.argv,
            "environment": self.environment,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
            "timed_out": self.timed_out,
            "start_error": self.start_error,
            "aborted": self.aborted.to_dict() if self.aborted else None,
            "outage": self.outage.to_dict() if self.outage else None,
            "aborted_at_s": self.aborted_at_s,
            "run": {
                "started": self.facts.started,
                "stopping": self.facts.stopping,
                "load_s": _round(self.facts.load_s),
                "users_at_end": self.facts.users,
                "shape": self.facts.shape,
            },
        }

    def unreachable(self) -> str | None:
        """Why the target counts as unreachable: every request failed without an answer
        (refused, reset, timed out; a TLS failure is an answer, and a finding)."""
        total = self.stats.total if self.stats else None
        if total is None or total.requests == 0 or self.unanswered.total() < total.requests:
            return None
        kinds = "; ".join(f"{n}x {error}" for error, n in self.unanswered.most_common(2))
        return (
            f"cannot reach {self.plan.address}: none of the {total.requests} requests got an"
            f" answer ({kinds})"
        )

    def problems(self, min_requests: int) -> list[str]:
        """Why this run cannot be judged as planned: its thresholds cannot pass."""
        plan, found = self.plan, []
        if self.timed_out:
            limit = deadline(plan.run_time_s)
            found.append(f"Locust did not finish within {limit:g} s and was stopped")
        elif self.exit_code != 0:
            found.append(f"Locust failed (exit code {self.exit_code}): {_last_line(self.log_tail)}")
        if self.stats is None:
            return found
        if self.exceptions:
            raised = "; ".join(self.exceptions[:3])
            found.append(f"the locustfile's tasks raised exceptions: {raised}")
        stopped = f"at {self.aborted_at_s or 0:g} s of {plan.run_time_s} s"
        if self.aborted is not None:
            found.append(f"aborted {stopped}: {self.aborted.describe()} was already lost")
        elif self.outage is not None:
            found.append(f"stopped {stopped}: {self.outage.describe()}")
        elif not self.timed_out:
            found += self._early()
        if (made := self.stats.total.requests) < min_requests:
            needs = f"the {min_requests} the profile needs (min_requests)"
            found.append(f"{made} requests, fewer than {needs}")
        return found

    def _early(self) -> list[str]:
        """The load ended before its run time, with no stop of ours."""
        run_time, load_s = self.plan.run_time_s, self.facts.load_s
        if load_s is None:
            return ["Locust did not report when the load started and ended"]
        if load_s < run_time - max(SHORT_S, SHORT_SHARE * run_time):
            by = f" (the locustfile's LoadTestShape {self.facts.shape})" if self.facts.shape else ""
            return [f"the load ended after {load_s:.1f} s of its {run_time} s run time{by}"]
        if self.facts.users == 0:
            return [f"no user was left running when its {run_time} s run time ended"]
        return []

    def figures(self) -> dict[str, Any]:
        """What the history keeps of the run."""
        total = self.stats.total if self.stats else None
        return {
            "requests": total.requests if total else 0,
            "failures": total.failures if total else 0,
            "rps": round(total.rps, 1) if total else None,  # successful requests per second
            **{f"{m}_ms": total.percentiles[m] if total else None for m in ("p50", "p95", "p99")},
            "error_rate": round(total.error_rate, 3) if total else None,
            "users": self.plan.users,
            "shape": self.facts.shape,
            "load_s": _round(self.facts.load_s),
            "duration_s": round(self.seconds, 1),
            "aborted": self.aborted is not None or self.outage is not None,
            "aborted_at_s": self.aborted_at_s,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def command(plan: Plan, prefix: Path) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "opsverify.drivers.locust_main",
        "--locustfile",
        str(plan.locustfile),
        "--headless",
        "--host",
        plan.host,
        "--users",
        str(plan.users),
        "--spawn-rate",
        f"{plan.spawn_rate:g}",
        "--run-time",
        f"{plan.run_time_s}s",
        "--csv",
        str(prefix),
        "--json-file",
        str(prefix),  # Locust appends .json
        "--html",
        f"{prefix}.html",
        "--only-summary",  # the final tables only, not one every few seconds
        # The thresholds judge failed requests; a non-zero exit means Locust itself failed.
        "--exit-code-on-error",
        "0",
    ]
    if plan.processes > 1:
        port = str(_free_port())
        # Master and workers talk over loopback on a port of this run's own, so two runs
        # never meet and nothing listens beyond this machine (the default binds to *).
        argv += ["--processes", str(plan.processes), "--master-bind-host", "127.0.0.1"]
        argv += ["--master-bind-port", port, "--master-port", port]
    return argv


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment(plan: Plan, facts: Path) -> dict[str, str]:
    """Ours, minus LOCUST_* settings that would change the run behind the profile's back,
    plus the locustfile's token and trust, and where locust_main writes the run's facts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_") and k != TOKEN_ENV}
    if plan.token:
        env[TOKEN_ENV] = plan.token
    if plan.ca_file:
        env |= dict.fromkeys(CA_ENVS, str(plan.ca_file))
    env[FACTS_ENV] = str(facts)
    return env


@dataclass(frozen=True)
class _Stop:
    """Why the watcher stopped waiting: a lost threshold, an outage, the deadline; or not."""

    aborted: Verdict | None = None
    outage: Outage | None = None
    at: float | None = None
    timed_out: bool = False


def run(plan: Plan, folder: Path, abort: Abort | None = None) -> Outcome:
    """Run ``plan`` with its files in ``folder``; stop early when ``abort`` names a lost
    threshold or the target stopped answering, and at ``deadline`` in any case."""
    prefix = folder / "locust"
    files = {
        "stats": Path(f"{prefix}_stats.csv"),
        "failures": Path(f"{prefix}_failures.csv"),
        "exceptions": Path(f"{prefix}_exceptions.csv"),
        "json": Path(f"{prefix}.json"),
        "html": Path(f"{prefix}.html"),
        "log": folder / "locust.log",
        "facts": folder / "locust-facts.json",
    }
    argv = command(plan, prefix)
    env = environment(plan, files["facts"])
    passed = sorted(k for k in (TOKEN_ENV, *CA_ENVS) if k in env)
    started = time.monotonic()
    with files["log"].open("wb") as log:
        try:
            process = subprocess.Popen(
                argv,
                cwd=folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            return Outcome(plan, argv, passed, None, 0.0, None, files, start_error=str(exc))
        try:
            stop = _watch(process, files, abort, deadline(plan.run_time_s))
            if process.poll() is None:
                _stop(process)
        finally:
            # Whatever is left of the group (workers of a master that died, or everything
            # on Ctrl-C) goes now.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_S)
    facts = Facts.read(files["facts"])
    failures = sorted(_rows(files["failures"]), key=lambda row: -int(row["Occurrences"]))
    return Outcome(
        plan=plan,
        argv=argv,
        environment=passed,
        exit_code=process.returncode,
        seconds=time.monotonic() - started,
        stats=final_stats(files["json"], facts.load),
        files=files,
        facts=facts,
        # Masked before it is cut: a cut inside a secret would leave a fragment unmasked.
        log_tail=message.tail(files["log"].read_bytes().decode(errors="replace"), LOG_TAIL),
        exceptions=[f"{r['Count']}x {r['Message']}" for r in _rows(files["exceptions"])],
        failures=[f"{r['Occurrences']}x {r['Method']} {r['Name']}: {r['Error']}" for r in failures],
        unanswered=_unanswered(failures),
        aborted=stop.aborted,
        outage=stop.outage,
        aborted_at_s=stop.at,
        timed_out=stop.timed_out,
    )


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        return list(csv.DictReader(io.StringIO(path.read_text(errors="replace"))))
    except OSError:
        return []


def _watch(
    process: subprocess.Popen[bytes], files: dict[str, Path], abort: Abort | None, limit_s: float
) -> _Stop:
    """Wait for Locust to finish, at most ``limit_s``; poll its statistics for a lost
    threshold and for an outage."""
    started = time.monotonic()
    load_started: float | None = None  # when Locust created its stats file: the test began
    outages = _OutageWatch()
    for _ in range(int(limit_s / POLL_S) + 1):
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=POLL_S)
            return _Stop()
        now = time.monotonic()
        if now - started >= limit_s:
            break
        if load_started is None and files["stats"].exists():
            load_started = now
        live = live_stats(files["stats"]) if load_started is not None else None
        if live is None or load_started is None:
            continue
        at = now - load_started
        if abort is not None and (verdict := abort(live, at)):
            return _Stop(aborted=verdict, at=round(at, 1))
        if outage := outages.see(at, live, _rows(files["failures"])):
            return _Stop(outage=outage, at=round(at, 1))
    return _Stop(timed_out=process.poll() is None)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop Locust (its master, with workers) so that it still writes its reports: Ctrl-C
    (SIGINT) writes all of them; SIGTERM all but the HTML report, and works also where SIGINT
    is ignored (inherited from a background shell). The caller then kills the group."""
    for stop, patience in ((signal.SIGINT, INTERRUPT_S), (signal.SIGTERM, STOP_S)):
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(stop)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=patience)
            return


# --- failed requests ------------------------------------------------------------------------

# What a failed request got, told from the name Locust gives its error (the exception's
# repr): an HTTP status (HttpUser "HTTPError('503 Server Error: …')", FastHttpUser
# "LocustBadStatusCode(code=503)"), a verdict of the locustfile on an answer
# ("CatchResponseError('…')"), a TLS failure, or no answer at all.
SERVER_ERROR, ANSWERED, TLS, NONE = "5xx", "answered", "tls", "none"
_STATUS = re.compile(r"^(?:HTTPError\('(\d{3}) |\w*BadStatusCode\(.*code=(\d{3})\))")
_NO_ANSWER = re.compile(
    r"Connection\w*Error|ConnectionClosed|Timeout|timed out|RemoteDisconnected|ProtocolError"
    r"|gaierror|NameResolutionError|BrokenPipeError|RetriesExceeded"
)


def answer(error: str) -> str:
    """What a request that failed with Locust's ``error`` got: SERVER_ERROR, ANSWERED, TLS
    or NONE (refused, reset, timed out, name not resolved)."""
    if status := _STATUS.match(error):
        return SERVER_ERROR if int(status[1] or status[2]) >= 500 else ANSWERED
    if error.startswith("CatchResponseError("):
        return ANSWERED  # whatever its text says
    if "SSL" in error:
        return TLS
    return NONE if _NO_ANSWER.search(error) else ANSWERED


def _unanswered(failures: list[dict[str, str]]) -> Counter[str]:
    """Locust's failures CSV rows that got no answer: occurrences by error, all names."""
    found: Counter[str] = Counter()
    for row in failures:
        if answer(row["Error"]) == NONE:
            found[row["Error"]] += int(row["Occurrences"])
    return found


class _OutageWatch:
    """Counts, per request name, the requests made and those that failed with a 5xx or
    without an answer, as Locust's live CSVs say; finds the name whose every request of the
    last OUTAGE_WINDOW_S failed so."""

    def __init__(self) -> None:
        # (seconds into the load, requests by name, failed "down" by name and error)
        self.seen: deque[tuple[float, Counter[str | None], Counter[tuple[str | None, str]]]]
        self.seen = deque(maxlen=int(OUTAGE_WINDOW_S / POLL_S) + 3)

    def see(self, at: float, stats: Stats, failures: list[dict[str, str]]) -> Outage | None:
        made: Counter[str | None] = Counter({row.label: row.requests for row in stats.rows})
        made[None] = stats.total.requests
        down: Counter[tuple[str | None, str]] = Counter()
        for row in failures:
            if answer(row["Error"]) in (SERVER_ERROR, NONE):
                label = f"{row['Method']} {row['Name']}".strip()
                for request in (label, None):
                    down[request, row["Error"]] += int(row["Occurrences"])
        self.seen.append((at, made, down))
        past = [s for s in self.seen if at - s[0] >= OUTAGE_WINDOW_S]
        if not past:
            return None
        _, made_then, down_then = past[-1]
        for request, count in (made - made_then).most_common():
            errors = Counter({e: n - down_then[r, e] for (r, e), n in down.items() if r == request})
            if count >= OUTAGE_REQUESTS and sum(errors.values()) >= count:
                named = [f"{n}x {e}" for e, n in errors.most_common(2) if n > 0]
                return Outage(request, count, named)
        return None


# --- statistics ---------------------------------------------------------------------------


def live_stats(path: Path) -> Stats | None:
    """Locust's stats CSV as it is now, or None when it is mid-rewrite or has no total."""
    try:
        text = path.read_text()
    except OSError:
        return None
    return stats_from_csv(text)


def stats_from_csv(text: str) -> Stats | None:
    rows: list[Row] = []
    try:
        for record in csv.DictReader(io.StringIO(text)):
            row = Row(
                method=record["Type"],
                name=record["Name"],
                requests=int(record["Request Count"]),
                failures=int(record["Failure Count"]),
                # Throughput: successful requests per second.
                rps=float(record["Requests/s"]) - float(record["Failures/s"]),
                percentiles={m: _ms(record[f"{p}%"]) for m, p in PERCENTILES.items()},
            )
            if not row.method and row.name == "Aggregated":
                # The total is the last row; anything after it is a torn rewrite.
                return Stats(tuple(rows), row)
            rows.append(row)
    except (KeyError, ValueError, TypeError, csv.Error):
        return None
    return None


def _ms(value: str) -> float:
    return 0.0 if value == "N/A" else float(value)


def final_stats(path: Path, load: tuple[float, float] | None = None) -> Stats | None:
    """The statistics Locust wrote at exit (``--json-file``): per request, its counts and
    response-time histogram. Percentiles are computed as Locust computes them. Throughput is
    successful requests per second of the ``load`` (when it started and ended, epoch
    seconds), or, not knowing that, of the span from the first to the last request, as
    Locust computes its own rate (which counts failed requests too)."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(entries, list):
        return None
    if not entries:
        return Stats((), Row("", "Aggregated", 0, 0, 0.0, dict.fromkeys(PERCENTILES, 0.0)))
    first, last = load or (
        min(e["start_time"] for e in entries),
        max(e["last_request_timestamp"] or 0 for e in entries),
    )
    span = last - first
    total: dict[str, Any] = {"num_requests": 0, "num_none_requests": 0, "num_failures": 0}
    merged: dict[int, int] = {}
    rows = []
    for entry in entries:
        histogram = {int(k): v for k, v in entry["response_times"].items()}
        rows.append(_row(entry["method"] or "", entry["name"], entry, histogram, span))
        for key in total:
            total[key] += entry[key]
        for bucket, count in histogram.items():
            merged[bucket] = merged.get(bucket, 0) + count
    return Stats(tuple(rows), _row("", "Aggregated", total, merged, span))


def _row(method: str, name: str, counts: dict[str, Any], histogram: dict[int, int], span: float):
    requests = counts["num_requests"]
    timed = requests - counts["num_none_requests"]  # requests without a response time
    return Row(
        method=method,
        name=name,
        requests=requests,
        failures=counts["num_failures"],
        rps=(requests - counts["num_failures"]) / span if span > 0 else 0.0,
        percentiles={m: percentile(histogram, timed, p / 100) for m, p in PERCENTILES.items()},
    )


def percentile(histogram: dict[int, int], count: int, fraction: float) -> float:
    """Locust's own ``calculate_response_time_percentile``: the response time (ms, bucketed
    as Locust stores it) within which ``fraction`` of the requests finished."""
    within = int(count * fraction)
    seen = 0
    for bucket in sorted(histogram, reverse=True):
        seen += histogram[bucket]
        if count - seen <= within:
            return float(bucket)
    return 0.0
