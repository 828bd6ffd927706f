"""What opsverify adds on top of pytest, for trivial checks.

One ``@check`` function parametrized over N host names (default 500), run from a throwaway
directory with no node_modules (so no HTML report) as:

  a  opsverify run --env <profile.yaml>              the product path
  b  pytest, bare: opsverify and allure-pytest off, no --junitxml, no cache
  c  pytest --alluredir, opsverify off                allure-pytest alone
  d  opsverify run --env <profile.yaml> -n 2          pytest-xdist with 2 workers

round-robin, median of --reps runs each after one warm-up round. The same four also run on
a one-check suite in the same rounds, which splits each wall time into a fixed cost
(start-up, imports, writing the run folder) and a cost per check. Finally (a) runs once more
with OPSVERIFY_ALLURE pointing at the repository's Allure 3 CLI, to price the HTML report.

    .venv/bin/python bench/engine_overhead.py [--checks 500] [--reps 5]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import _common as c

A, B, C, D = "a opsverify run", "b pytest (bare)", "c pytest --alluredir", "d opsverify run -n 2"


def variants(suite: c.Suite) -> dict[str, Callable[[], c.Sample]]:
    return {
        A: lambda: suite.opsverify("a"),
        B: suite.bare,
        C: suite.allure_only,
        D: lambda: suite.opsverify("d", "-n", "2"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=500, help="parameters of the one check")
    parser.add_argument("--reps", type=int, default=5, help="timed runs per variant")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per subprocess")
    parser.add_argument("--html-reps", type=int, default=1, help="runs with the HTML report")
    args = parser.parse_args()
    c.require_venv()

    with c.workspace("overhead") as big_root, c.workspace("overhead-1") as one_root:
        big = c.Suite(big_root, args.checks, timeout=args.timeout)
        one = c.Suite(one_root, 1, timeout=args.timeout)
        runs = variants(big) | {f"{k} [1 check]": v for k, v in variants(one).items()}
        samples = c.repeat(runs, args.reps)
        html: list[c.Sample] = []
        if c.ALLURE_CLI.exists():
            html_env = c.bench_env(OPSVERIFY_ALLURE=str(c.ALLURE_CLI))
            for _ in range(args.html_reps):
                html.append(big.opsverify("a-html", env=html_env, html=True))

    report(samples, html, args.checks)
    return 0


def report(samples: dict[str, list[c.Sample]], html: list[c.Sample], n: int) -> None:
    stats = {name: c.summary(runs) for name, runs in samples.items()}
    wall = {name: s["wall_median"] for name, s in stats.items()}
    c.table(
        ["variant", "median s", "min s", "max s", "cpu s", "rss MiB"],
        [
            [
                name,
                s["wall_median"],
                s["wall_min"],
                s["wall_max"],
                s["cpu_median"],
                c.mib(s["maxrss_kib_median"]),
            ]
            for name, s in stats.items()
        ],
        title=f"{n} trivial parametrized checks (and a 1-check suite), median of {args_n(stats)}",
    )

    ratios: dict[str, Any] = {}
    for label, x, y in (("a/b", A, B), ("a/c", A, C), ("c/b", C, B), ("d/a", D, A)):
        ratios[label] = {
            "of_medians": c.ratio(wall[x], wall[y]),
            "paired": c.paired_ratio(samples[x], samples[y]),
        }
    c.table(
        ["ratio", "of medians", "median of paired"],
        [[k, v["of_medians"], v["paired"]] for k, v in ratios.items()],
        title=f"Ratios at {n} checks",
    )

    # Fixed cost = the 1-check run; cost per check = the slope between 1 and n checks.
    split = {}
    for name in (A, B, C, D):
        fixed = wall[f"{name} [1 check]"]
        per_check = (wall[name] - fixed) / (n - 1) if n > 1 else None
        split[name] = {"fixed_seconds": fixed, "ms_per_check": per_check and 1000 * per_check}
    c.table(
        ["variant", "fixed s", "ms/check", "ms/check vs b"],
        [
            [
                name,
                v["fixed_seconds"],
                v["ms_per_check"],
                c.ratio(v["ms_per_check"] or 0, split[B]["ms_per_check"] or 0),
            ]
            for name, v in split.items()
        ],
        title="Fixed cost (1-check run) and cost per check (slope from 1 to n checks)",
    )

    html_data = None
    if html:
        h = c.summary(html)
        cost = h["wall_median"] - wall[A]
        html_data = {**h, "html_cost_seconds": cost}
        c.table(
            ["HTML report (Allure 3)", "value"],
            [
                ["runs", h["n"]],
                ["a with OPSVERIFY_ALLURE, s", h["wall_median"]],
                ["a without, median s", wall[A]],
                ["HTML generation, s", cost],
            ],
            title=f"HTML report cost at {n} checks",
        )
    else:
        print(f"\nno HTML measurement: {c.ALLURE_CLI} not found (npm ci)")

    c.write_results(
        "engine_overhead",
        {
            "checks": n,
            "variants": stats,
            "ratios": ratios,
            "fixed_and_per_check": split,
            "html": html_data,
        },
    )


def args_n(stats: dict[str, Any]) -> str:
    counts = sorted({s["n"] for s in stats.values()})
    return "/".join(map(str, counts)) + " runs"


if __name__ == "__main__":
    raise SystemExit(main())
