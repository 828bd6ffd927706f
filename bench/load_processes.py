"""Locust with `processes: 2` (its master and two local workers) vs one process.

    .venv/bin/opsverify sandbox up          # first, if it is not running (not done for you)
    .venv/bin/python bench/load_processes.py [--env local] [--load-profile standard]
                                             [--users N] [--reps 3]

The load profile's locustfile, target, spawn rate and run time (users from --users if
given), run exactly as LOAD-001 runs it (the driver's command line: CSV, JSON and HTML
output), with 1 and with 2 processes, round-robin after one warm-up each, median of --reps.
Reported: requests/s at exit (requests over the span from the first to the last request),
p95, the CPU seconds of all Locust processes, and 2 / 1 for requests/s.

On one machine the load generator shares the cores with the target: a second process only
helps while one Locust process, not the target, is the bottleneck.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace

import _common as c
from load_harness import (
    locustfile_env,
    require_target,
    rps_at_exit,
    rps_ratio,
    summarise,
    target,
)

from opsverify.drivers import locust


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="local", help="environment profile name or YAML path")
    parser.add_argument("--load-profile", default="standard", help="entry of its load.profiles")
    parser.add_argument("--users", type=int, help="instead of the load profile's users")
    parser.add_argument("--reps", type=int, default=3, help="timed runs per variant")
    args = parser.parse_args()
    c.require_venv()
    chosen = target(args.env, args.load_profile)
    if not require_target(chosen.plan()):
        return 2
    users = args.users or chosen.entry.users
    counter = iter(range(1_000_000))

    with c.workspace("load-processes") as root:

        def locust_with(processes: int) -> c.Sample:
            plan = replace(chosen.plan(processes), users=users)
            folder = root / f"p{processes}-{next(counter)}"
            folder.mkdir()
            prefix = folder / "locust"
            sample = c.run(
                locust.command(plan, prefix),
                cwd=folder,
                timeout=locust.deadline(plan.run_time_s),
                env=c.bench_env(**locustfile_env(plan)),
                log=folder / "log",
            )
            return replace(sample, info=rps_at_exit(folder / "locust.json"))

        variants: dict[str, Callable[[], c.Sample]] = {
            "1 process": lambda: locust_with(1),
            "2 processes": lambda: locust_with(2),
        }
        samples = c.repeat(variants, args.reps)

    stats = summarise(
        samples,
        f"{users} users, spawn {chosen.entry.spawn_rate:g}/s, "
        f"{int(chosen.entry.run_time.total_seconds())} s against {chosen.load.host}",
    )
    ratio = rps_ratio(samples, "2 processes", "1 process")
    print(f"\nreq/s, 2 processes / 1: {ratio['of_medians']:.3f} (paired {ratio['paired']:.3f})")
    c.write_results(
        "load_processes",
        {"profile": str(chosen.profile), "users": users, "variants": stats, "rps_2_over_1": ratio},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
