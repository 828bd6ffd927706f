"""Shared helpers for opsverify's benchmarks: subprocesses, timing, suites, tables, results.

Every benchmark runs the real console scripts of the repository's virtualenv in a
subprocess, bounded by a timeout, and measures wall time around it. Peak RSS comes from
GNU time wrapped around the command (see ``run``). Variants are run round-robin, so a noisy
neighbour slows all of them alike and their ratios stay meaningful.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
PYTHON = BIN / "python"
PYTEST = BIN / "pytest"
OPSVERIFY = BIN / "opsverify"
ALLURE_CLI = REPO / "node_modules" / ".bin" / "allure"
RESULTS_DIR = REPO / "bench" / "results"
GNU_TIME = Path("/usr/bin/time")

PROFILE_NAME = "bench"
# Variables that would change what a run does behind the benchmark's back.
_SCRUBBED_ENV = (
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONPYCACHEPREFIX",
    "OPSVERIFY_ALLURE",
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
    "PYTEST_XDIST_AUTO_NUM_WORKERS",
)


class BenchError(RuntimeError):
    """A benchmarked command failed, timed out or did not do what it was meant to."""


# --- subprocesses -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One timed subprocess: wall seconds, CPU seconds and peak RSS of that child."""

    wall: float
    user: float
    sys: float
    maxrss_kib: int  # Linux reports KiB; includes grandchildren the child waited for
    returncode: int
    info: dict[str, Any] = field(default_factory=dict)  # what the variant read off its output


# Bytecode is cached as on any normal install, even where the environment says
# PYTHONDONTWRITEBYTECODE (otherwise every start recompiles opsverify's editable source and
# pytest re-rewrites the suites: ~0.15 s of each run). The cache lives in a temp dir, so
# the repository gets no __pycache__; the warm-up runs fill it.
PYCACHE = Path(tempfile.mkdtemp(prefix="opsverify-bench-pycache-"))
atexit.register(shutil.rmtree, PYCACHE, True)


def bench_env(**extra: str) -> dict[str, str]:
    """The environment of every benchmarked command: ours, minus anything that steers pytest,
    bytecode caching or the Allure lookup, with the benchmark's bytecode cache, plus
    ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.update(extra)
    return env


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    ok: Iterable[int] = (0,),
    rss: bool = True,
) -> Sample:
    """Run ``argv`` to completion and time it. Output goes to ``log`` (or nowhere).

    The child gets its own process group; on timeout that group (the child, xdist workers,
    node) is killed and BenchError raised. An exit code outside ``ok`` raises too, with the
    tail of the log.

    Peak RSS: Linux carries a process's RSS high-water mark across fork and exec, so a
    child of this (large) benchmark process never reports less than the benchmark's own
    RSS. With ``rss`` the command therefore runs under GNU time (small, ~2 MiB), which
    reports its child's own peak; that costs ~1 ms per run, the same for every variant.
    Without GNU time, or without ``rss``, ``maxrss_kib`` is wait4's upper bound.
    """
    argv = [str(a) for a in argv]
    rss_file: Path | None = None
    if rss and GNU_TIME.is_file():
        handle, name = tempfile.mkstemp(prefix="opsverify-bench-rss-")
        os.close(handle)
        rss_file = Path(name)
        argv = [str(GNU_TIME), "-f", "%M", "-o", name, *argv]
    sink: Any = log.open("wb") if log is not None else subprocess.DEVNULL
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env) if env is not None else bench_env(),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        finished = threading.Event()
        timed_out = threading.Event()

        def kill() -> None:
            if finished.is_set():
                return
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.daemon = True
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            finished.set()
            timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        maxrss = usage.ru_maxrss
        if rss_file is not None and not timed_out.is_set():
            # GNU time may write "Command exited with non-zero status N" first.
            maxrss = int(rss_file.read_text().split()[-1])
    finally:
        if log is not None:
            sink.close()
        if rss_file is not None:
            rss_file.unlink(missing_ok=True)
    if timed_out.is_set():
        raise BenchError(f"timed out after {timeout:g}s: {' '.join(argv)}{_tail(log)}")
    if proc.returncode not in set(ok):
        raise BenchError(f"exit code {proc.returncode}: {' '.join(argv)}{_tail(log)}")
    return Sample(wall, usage.ru_utime, usage.ru_stime, maxrss, proc.returncode)


def _tail(log: Path | None, chars: int = 3000) -> str:
    if log is None or not log.exists():
        return ""
    return "\n--- output (tail) ---\n" + log.read_text(errors="replace")[-chars:]


def repeat(
    variants: Mapping[str, Callable[[], Sample]],
    reps: int | Mapping[str, int],
    *,
    warmup: bool | Iterable[str] = True,
    label: str = "",
) -> dict[str, list[Sample]]:
    """Run the variants round-robin, ``reps`` times each (per variant if a mapping).

    First one untimed warm-up run of each variant (or of the named ones): bytecode caches,
    page cache. Progress goes to stderr.
    """
    counts = {name: reps if isinstance(reps, int) else reps[name] for name in variants}
    warm = set(variants) if warmup is True else set(warmup or ())
    for name, func in variants.items():
        if name in warm:
            _progress(f"{label}warm-up {name}")
            func()
    samples: dict[str, list[Sample]] = {name: [] for name in variants}
    for round_ in range(max(counts.values())):
        for name, func in variants.items():
            if round_ < counts[name]:
                _progress(f"{label}round {round_ + 1}/{counts[name]} {name}")
                sample = func()
                samples[name].append(sample)
                _progress(f"  {sample.wall:.3f}s")
    return samples


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- statistics ---------------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def summary(samples: Sequence[Sample]) -> dict[str, Any]:
    """Median, min and max wall time, median peak RSS, medians of the numeric ``info`` values,
    and every raw sample."""
    walls = [s.wall for s in samples]
    keys = [k for k, v in samples[0].info.items() if isinstance(v, int | float)]
    return {
        "n": len(samples),
        "wall_median": median(walls),
        "wall_min": min(walls),
        "wall_max": max(walls),
        "cpu_median": median(s.user + s.sys for s in samples),
        "maxrss_kib_median": median(s.maxrss_kib for s in samples),
        "info_median": {k: median(s.info[k] for s in samples) for k in keys},
        "samples": [asdict(s) for s in samples],
    }


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def paired_ratio(a: Sequence[Sample], b: Sequence[Sample]) -> float:
    """Median of per-round ratios: robust to drift over the run since a_i and b_i are
    neighbours in time."""
    return median(x.wall / y.wall for x, y in zip(a, b, strict=False))


# --- suites -------------------------------------------------------------------------------


def write_profile(root: Path, name: str = PROFILE_NAME) -> Path:
    """A minimal profile: no service, no TLS, nothing to reach; the gate at its default."""
    path = root / "environments" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"name: {name}\ntier: staging\n")
    return path


def write_fleet_checks(
    root: Path,
    hosts: int,
    *,
    checks: Sequence[tuple[str, Sequence[str]]] = (("BEN-001", ("predeploy",)),),
    filename: str = "test_fleet.py",
) -> Path:
    """``checks/<filename>``: per (id, cadences) one ``@check`` function parametrized with
    ``pytest.mark.parametrize`` over ``hosts`` host names, doing trivial work. No fixtures,
    so bare pytest can run the same file. The argument is ``bench_host``, not ``host``:
    opsverify parametrizes arguments named like profile subjects (``host`` is one)."""
    lines = [
        "import pytest",
        "",
        "from opsverify import check",
        "",
        f'HOSTS = [f"host-{{i:05d}}.fleet.example" for i in range({hosts})]',
        "",
    ]
    for index, (check_id, cadences) in enumerate(checks):
        lines += [
            "",
            "@check(",
            f'    "{check_id}",',
            '    "Host is in the fleet inventory",',
            '    category="infrastructure",',
            '    severity="high",',
            f"    cadences={list(cadences)!r},",
            '    controls=["SOC2:CC7.1"],',
            '    runbook="runbooks/fleet.md",',
            ")",
            '@pytest.mark.parametrize("bench_host", HOSTS)',
            f"def test_host_{index}(bench_host):",
            '    name, _, domain = bench_host.partition(".")',
            '    assert name.startswith("host-") and domain == "fleet.example"',
            "",
        ]
    path = root / "checks" / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


class Suite:
    """A throwaway project (profile + fleet checks) and the ways to run it.

    ``checks`` is one (id, cadences) per check function, each over ``hosts`` parameters.
    Every run is verified (exit code, how many checks passed, HTML or not, nothing left
    behind by bare pytest) and its run folder removed afterwards, outside the timing.
    """

    def __init__(
        self,
        root: Path,
        hosts: int,
        *,
        timeout: float,
        checks: Sequence[tuple[str, Sequence[str]]] = (("BEN-001", ("predeploy",)),),
        measure_folder: bool = False,
    ) -> None:
        self.root = root
        self.hosts = hosts
        self.n = hosts * len(checks)
        self.timeout = timeout
        self.measure_folder = measure_folder
        self.profile = write_profile(root)
        write_fleet_checks(root, hosts, checks=checks)
        self.logs = root / "logs"
        self.logs.mkdir(exist_ok=True)

    def opsverify(
        self,
        name: str,
        *extra: str,
        env: Mapping[str, str] | None = None,
        passed: int | None = None,
        html: bool = False,
    ) -> Sample:
        """``opsverify run --env <profile.yaml> *extra``; ``info`` gets the in-session time
        from readiness.json (pytest_configure to the start of the report writing) and, with
        ``measure_folder``, the run folder's size."""
        sample = run(
            [OPSVERIFY, "run", "--env", self.profile, *extra],
            cwd=self.root,
            timeout=self.timeout,
            env=env,
            log=self.logs / f"{name}.log",
        )
        folder = only_run_folder(self.root)
        data = readiness(folder)
        expected = self.n if passed is None else passed
        if data["score"]["counts"]["passed"] != expected:
            raise BenchError(f"{name}: {data['score']['counts']} but {expected} should pass")
        if (folder / "html" / "index.html").exists() != html:
            raise BenchError(f"{name}: HTML report {'missing' if html else 'made'}")
        info: dict[str, Any] = {"session_seconds": data["run"]["duration_seconds"]}
        if self.measure_folder:
            info.update(folder_size(folder))
        shutil.rmtree(folder)
        return replace(sample, info=info)

    def pytest(self, name: str, *extra: str, passed: int | None = None) -> Sample:
        """pytest with opsverify off and no cache, on ``checks/``."""
        log = self.logs / f"{name}.log"
        sample = run(
            [PYTEST, "-q", "-p", "no:opsverify", "-p", "no:cacheprovider", *extra, "checks"],
            cwd=self.root,
            timeout=self.timeout,
            log=log,
        )
        expected = f"{self.n if passed is None else passed} passed"
        if expected not in log.read_text():
            raise BenchError(f"{name}: expected {expected!r}: {log.read_text()[-500:]}")
        return sample

    def collect(self, name: str, *extra: str, selected: int | None = None) -> Sample:
        """pytest --collect-only with opsverify on (``--env``): collection and selection
        alone, as ``opsverify run`` does them, without running anything."""
        log = self.logs / f"{name}.log"
        sample = run(
            [
                PYTEST,
                "-q",
                "-p",
                "no:cacheprovider",
                "--env",
                str(self.profile),
                "--collect-only",
                *extra,
                "checks",
            ],
            cwd=self.root,
            timeout=self.timeout,
            log=log,
        )
        count = self.n if selected is None else selected
        expected = f"{count}/{self.n} tests collected" if count != self.n else f"{count} tests"
        if expected not in log.read_text():
            raise BenchError(f"{name}: expected {expected!r}: {log.read_text()[-500:]}")
        return sample

    def bare(self, name: str = "bare") -> Sample:
        """pytest without opsverify and allure-pytest, no --junitxml: pytest itself."""
        before = self._files()
        sample = self.pytest(name, "-p", "no:allure_pytest")
        left = sorted(str(p.relative_to(self.root)) for p in self._files() - before)
        if left not in ([], [f"logs/{name}.log"]):
            raise BenchError(f"bare pytest left {left} behind")
        return sample

    def allure_only(self, name: str = "allure") -> Sample:
        """pytest --alluredir without opsverify: allure-pytest alone."""
        results = self.root / "allure-only"
        sample = self.pytest(name, "--alluredir", str(results))
        written = len(list(results.glob("*-result.json")))
        if written != self.n:
            raise BenchError(f"allure-pytest wrote {written} results, expected {self.n}")
        shutil.rmtree(results)
        return sample

    def _files(self) -> set[Path]:
        return {p for p in self.root.rglob("*") if "__pycache__" not in p.parts and p.is_file()}


@contextlib.contextmanager
def workspace(prefix: str) -> Iterator[Path]:
    """A throwaway project directory under the system temp dir (never inside the repo: its
    pyproject.toml would become pytest's rootdir config)."""
    path = Path(tempfile.mkdtemp(prefix=f"opsverify-bench-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_folders(root: Path, env: str = PROFILE_NAME) -> list[Path]:
    folder = root / "reports" / env
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name != "history")


def only_run_folder(root: Path, env: str = PROFILE_NAME) -> Path:
    found = run_folders(root, env)
    if len(found) != 1:
        raise BenchError(f"expected exactly one run folder under {root}/reports/{env}: {found}")
    return found[0]


def readiness(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "readiness.json"
    if not path.is_file():
        raise BenchError(f"{run_dir}: no readiness.json")
    return json.loads(path.read_text())


def folder_size(path: Path) -> dict[str, int]:
    """Files, apparent bytes and allocated bytes (what `du` reports) under ``path``."""
    files = apparent = allocated = 0
    for entry in path.rglob("*"):
        if entry.is_file():
            stat = entry.stat()
            files += 1
            apparent += stat.st_size
            allocated += stat.st_blocks * 512
    return {"files": files, "bytes": apparent, "allocated_bytes": allocated}


# --- output -------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], title: str = "") -> None:
    """A plain aligned table on stdout; numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [
        all(_is_number(r[i]) for r in cells) if cells else False for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    if title:
        print(f"\n{title}")
    print(line(headers))
    print(line(["-" * w for w in widths]))
    for row in cells:
        print(line(row))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def _is_number(text: str) -> bool:
    try:
        float(text.rstrip("x%"))
    except ValueError:
        return text == "-"
    return True


def mib(kib: float) -> float:
    return kib / 1024


def environment() -> dict[str, Any]:
    """Where and on what the numbers were taken."""
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "git": _git(),
        "opsverify": _opsverify_version(),
        "peak_rss_from": "GNU time" if GNU_TIME.is_file() else "wait4 (upper bound)",
        "bytecode": "cached in a temp dir (PYTHONPYCACHEPREFIX)",
        "ambient_PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE"),
    }


def _git() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30, check=False
        )
        return done.stdout.strip()

    try:
        return {
            "head": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        }
    except (OSError, subprocess.TimeoutExpired):
        return {}


def _opsverify_version() -> str | None:
    done = subprocess.run(
        [str(PYTHON), "-c", "from importlib.metadata import version; print(version('opsverify'))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.strip() or None


def source_fingerprint() -> str:
    """SHA-256 over opsverify's source and pyproject.toml: the code being measured (the
    package is installed editable, so an edit takes effect in the next run)."""
    digest = hashlib.sha256()
    for path in sorted([*(REPO / "src").rglob("*.py"), REPO / "pyproject.toml"]):
        if path.is_file():
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


# Taken when a benchmark starts, compared when it writes its results.
_SOURCE_AT_START = source_fingerprint()


def write_results(name: str, data: Mapping[str, Any]) -> Path:
    """``bench/results/<name>.json`` with the environment the numbers were taken in.

    Warns (and records) when opsverify's source changed while the benchmark ran: its
    numbers then mix two versions of the code.
    """
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    source = source_fingerprint()
    changed = source != _SOURCE_AT_START
    if changed:
        print("\nWARNING: opsverify's source changed during this benchmark; rerun it.")
    document = {
        "benchmark": name,
        "environment": environment(),
        "source": {"sha256": source, "changed_during_run": changed},
        **data,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"\nresults: {path.relative_to(REPO)}")
    return path


def require_venv() -> None:
    for tool in (PYTHON, PYTEST, OPSVERIFY):
        if not tool.exists():
            raise SystemExit(f"{tool} not found: create the virtualenv first (scripts/setup.sh)")
