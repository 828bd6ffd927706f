"""Locust driver: run a locustfile headless in a process group of its own, read its statistics.

Locust is never imported here: importing it monkey-patches sockets, ssl and threads with
gevent, which breaks pytest and xdist. It runs as ``python -m locust``; with ``processes``
above one, as Locust's own master with that many local workers, bound to loopback.

While it runs, Locust rewrites ``<prefix>_stats.csv`` every second: a bounded watcher reads
it to stop the run once an abort-on-fail threshold is lost. The final verdict reads the
statistics Locust writes when it exits (``--json-file``): the CSV's last rewrite can be up
to a second older than the end of the run, a tenth of a 10 s smoke test.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsverify.thresholds import PERCENTILES, Row, Stats, Verdict

TOKEN_ENV = "API_TOKEN"  # the locustfile reads its bearer token here
CA_ENV = "SSL_CERT_FILE"  # OpenSSL's default trust, honoured by Locust's TLS context
GRACE_S = 60.0  # beyond run_time: start-up, workers connecting, reports written
INTERRUPT_S = 5.0  # after SIGINT Locust writes its reports; then SIGTERM
STOP_S = 15.0  # after SIGTERM, the same; then its process group is killed
POLL_S = 1.0  # Locust rewrites its stats CSV once a second
LOG_TAIL = 8 * 1024

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


def deadline(run_time_s: float) -> float:
    """How long a run may take in all before it is stopped as hung."""
    return run_time_s + GRACE_S


@dataclass(frozen=True)
class Outcome:
    argv: list[str]
    environment: list[str]  # names of the variables set for the locustfile (not values)
    exit_code: int | None  # None: it could not start
    seconds: float  # wall time of the Locust process
    stats: Stats | None  # what Locust reported at exit; None: it reported nothing
    files: dict[str, Path]  # what Locust wrote: stats, failures, exceptions, json, html, log
    log_tail: str = ""  # the end of Locust's output
    # Errors raised inside the locustfile's tasks: the load was not what it describes.
    exceptions: list[str] = field(default_factory=list)
    # Failed requests by kind, the most frequent first: "56x GET /api/v1/items: …".
    failures: list[str] = field(default_factory=list)
    aborted: Verdict | None = None  # the abort-on-fail threshold that stopped the run
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
            "aborted_at_s": self.aborted_at_s,
        }


def command(plan: Plan, prefix: Path) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "locust",
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


def environment(plan: Plan) -> dict[str, str]:
    """Ours, minus LOCUST_* settings that would change the run behind the profile's back,
    plus the locustfile's token and trust."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_") and k != TOKEN_ENV}
    if plan.token:
        env[TOKEN_ENV] = plan.token
    if plan.ca_file:
        env[CA_ENV] = str(plan.ca_file)
    return env


def run(plan: Plan, folder: Path, abort: Abort | None = None) -> Outcome:
    """Run ``plan`` with its files in ``folder``; stop early when ``abort`` names a lost
    threshold, and at ``deadline`` in any case."""
    prefix = folder / "locust"
    files = {
        "stats": Path(f"{prefix}_stats.csv"),
        "failures": Path(f"{prefix}_failures.csv"),
        "exceptions": Path(f"{prefix}_exceptions.csv"),
        "json": Path(f"{prefix}.json"),
        "html": Path(f"{prefix}.html"),
        "log": folder / "locust.log",
    }
    argv = command(plan, prefix)
    env = environment(plan)
    passed = sorted(k for k in (TOKEN_ENV, CA_ENV) if k in env)
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
            return Outcome(argv, passed, None, 0.0, None, files, start_error=str(exc))
        try:
            aborted, at, timed_out = _watch(
                process, files["stats"], abort, deadline(plan.run_time_s)
            )
            if process.poll() is None:
                _stop(process)
        finally:
            # Whatever is left of the group (workers of a master that died, or everything
            # on Ctrl-C) goes now.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_S)
    failures = sorted(_rows(files["failures"]), key=lambda row: -int(row["Occurrences"]))
    return Outcome(
        argv=argv,
        environment=passed,
        exit_code=process.returncode,
        seconds=time.monotonic() - started,
        stats=final_stats(files["json"]),
        files=files,
        log_tail=files["log"].read_bytes()[-LOG_TAIL:].decode(errors="replace"),
        exceptions=[f"{r['Count']}x {r['Message']}" for r in _rows(files["exceptions"])],
        failures=[f"{r['Occurrences']}x {r['Method']} {r['Name']}: {r['Error']}" for r in failures],
        aborted=aborted,
        aborted_at_s=at,
        timed_out=timed_out,
    )


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        return list(csv.DictReader(io.StringIO(path.read_text(errors="replace"))))
    except OSError:
        return []


def _watch(
    process: subprocess.Popen[bytes], stats_csv: Path, abort: Abort | None, limit_s: float
) -> tuple[Verdict | None, float | None, bool]:
    """Wait for Locust to finish, at most ``limit_s``; poll its stats for a lost threshold.
    Returns (the verdict that aborted, when, whether it timed out)."""
    started = time.monotonic()
    load_started: float | None = None  # when Locust created its stats file: the test began
    for _ in range(int(limit_s / POLL_S) + 1):
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=POLL_S)
            return None, None, False
        now = time.monotonic()
        if now - started >= limit_s:
            break
        if abort is None:
            continue
        if load_started is None and stats_csv.exists():
            load_started = now
        live = live_stats(stats_csv) if load_started is not None else None
        if live is not None and (verdict := abort(live, now - load_started)):
            return verdict, round(now - load_started, 1), False
    return None, None, process.poll() is None


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
                rps=float(record["Requests/s"]),
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


def final_stats(path: Path) -> Stats | None:
    """The statistics Locust wrote at exit (``--json-file``): per request, its counts and
    response-time histogram. Percentiles and rates are computed as Locust computes them."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(entries, list):
        return None
    if not entries:
        return Stats((), Row("", "Aggregated", 0, 0, 0.0, dict.fromkeys(PERCENTILES, 0.0)))
    # Locust's requests/s: requests over the span from the first to the last request.
    span = max(e["last_request_timestamp"] or 0 for e in entries) - min(
        e["start_time"] for e in entries
    )
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
        rps=requests / span if span > 0 else 0.0,
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
