"""The pre-deploy run against the local sandbox: wall time vs its slowest check.

    .venv/bin/opsverify sandbox up        # first, if it is not running (not done for you)
    .venv/bin/python bench/predeploy.py [--reps 5]

Runs `opsverify run --env local --cadence predeploy` from the repository root with -n 0 and
with -n 2, round-robin, median of --reps after one warm-up each, each into its own --run-dir
under a temporary directory (nothing lands in the repository's reports/). From each run's
readiness.json: the slowest single check's duration, the sum of all check durations and the
in-session time (pytest_configure to the start of report writing). The repository has
node_modules, so each run also renders the Allure HTML report: that is part of the wall time,
as for a user.

Exits 2 without running anything when https://127.0.0.1:18443/health does not answer.
"""

from __future__ import annotations

import argparse
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import _common as c

HEALTH = "https://127.0.0.1:18443/health"
CA = c.REPO / ".sandbox" / "pki" / "ca.pem"


def sandbox_answers(timeout: float = 5) -> str | None:
    """None when the sandbox's health endpoint answers (any HTTP status), else why not."""
    context = ssl.create_default_context(cafile=str(CA)) if CA.is_file() else None
    if context is None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # only asking whether it answers at all
    try:
        with urllib.request.urlopen(HEALTH, timeout=timeout, context=context):
            return None
    except urllib.error.HTTPError:
        return None  # it answered, if not happily; the checks will say what is wrong
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="timed runs per variant")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per subprocess")
    args = parser.parse_args()
    c.require_venv()

    problem = sandbox_answers()
    if problem is not None:
        print(f"The local sandbox does not answer at {HEALTH} ({problem}).")
        print("Start it, then run this again:")
        print(f"    cd {c.REPO} && .venv/bin/opsverify sandbox up")
        return 2

    with c.workspace("predeploy") as root:
        counter = iter(range(1_000_000))

        def predeploy(workers: str) -> c.Sample:
            run_dir = root / f"n{workers}-{next(counter)}"
            sample = c.run(
                [
                    c.OPSVERIFY,
                    "run",
                    "--env",
                    "local",
                    "--cadence",
                    "predeploy",
                    "--run-dir",
                    str(run_dir),
                    "-n",
                    workers,
                ],
                cwd=c.REPO,
                timeout=args.timeout,
                log=root / f"n{workers}.log",
                ok=(0, 1),  # 1 = the gate failed: still a complete run to time
            )
            return replace(sample, info=describe(run_dir))

        variants: dict[str, Callable[[], c.Sample]] = {
            "-n 0": lambda: predeploy("0"),
            "-n 2": lambda: predeploy("2"),
        }
        samples = c.repeat(variants, args.reps)

    report(samples)
    return 0


def describe(run_dir: Path) -> dict[str, Any]:
    data = c.readiness(run_dir)
    checks = data["checks"]
    if not checks:
        raise c.BenchError(f"{run_dir}: no check ran")
    slowest = max(checks, key=lambda check: check["duration"])
    return {
        "slowest_seconds": slowest["duration"],
        "slowest_check": slowest["id"]
        + (f"[{slowest['parameter']}]" if slowest["parameter"] else ""),
        "sum_seconds": sum(check["duration"] for check in checks),
        "session_seconds": data["run"]["duration_seconds"],
        "checks": len(checks),
        "score": data["score"]["score"],
        "gate_passed": data["gate"]["passed"],
        "html": (run_dir / "html" / "index.html").exists(),
    }


def report(samples: dict[str, list[c.Sample]]) -> None:
    stats = {name: c.summary(runs) for name, runs in samples.items()}
    rows = []
    for name, s in stats.items():
        info = s["info_median"]
        wall = s["wall_median"]
        rows.append(
            [
                name,
                wall,
                info["session_seconds"],
                info["slowest_seconds"],
                info["sum_seconds"],
                c.ratio(wall, info["slowest_seconds"]),
                wall - info["slowest_seconds"],
            ]
        )
    c.table(
        ["variant", "wall s", "session s", "slowest s", "sum s", "wall/slowest", "wall-slowest"],
        rows,
        title=f"opsverify run --env local --cadence predeploy, median of {args_n(stats)}",
    )
    for name, runs in samples.items():
        last = runs[-1].info
        print(
            f"{name}: {last['checks']} checks, slowest {last['slowest_check']}, score "
            f"{last['score']}, gate {'passed' if last['gate_passed'] else 'FAILED'}, "
            f"HTML {'rendered' if last['html'] else 'not rendered'}"
        )
    ratio = c.ratio(stats["-n 2"]["wall_median"], stats["-n 0"]["wall_median"])
    print(f"-n 2 / -n 0 wall: {ratio:.3f}")
    c.write_results("predeploy", {"variants": stats, "n2_over_n0": ratio})


def args_n(stats: dict[str, Any]) -> str:
    return "/".join(sorted({str(s["n"]) for s in stats.values()})) + " runs"


if __name__ == "__main__":
    raise SystemExit(main())
