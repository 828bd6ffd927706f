"""How opsverify run scales with the number of checks: a fleet of hosts, 1k vs 10k.

Run, for each size N (default 1,000 and 10,000, plus a 1-check suite for the fixed cost):

  opsverify     opsverify run: one @check parametrized over N host names
  allure-only   pytest --alluredir on the same file, opsverify off   (attribution)
  bare          pytest, opsverify and allure-pytest off               (attribution)

Wall time (median; --reps below --large-from checks, --large-reps from there on), peak RSS
of the pytest process, the run folder's size, the in-session time from readiness.json
(pytest_configure to the start of report writing), and how the cost per check changes from
the small to the large size ("slope ratio": 1.0 = linear, 10 = quadratic for 1k -> 10k).

Selection, for each of --selection-sizes (default 1k, 10k, 20k, 40k): two @check functions of
N/2 hosts each, one predeploy and one daily, collected with opsverify on and nothing run
(pytest --env ... --collect-only), deselecting the daily half either with

  --cadence     opsverify's --cadence predeploy
  --deselect    pytest's --deselect checks/test_fleet.py::test_host_1 (a prefix match)

Their difference is what opsverify's cadence selection costs beyond pytest's own.

--profile N runs `opsverify run` at N checks and the --cadence collection at N checks
once more under cProfile and prints the hot spots (.prof files land in bench/results/).

    .venv/bin/python bench/scale.py [--sizes 1000 10000] [--reps 5] [--large-reps 3]
    .venv/bin/python bench/scale.py --profile 10000
"""

from __future__ import annotations

import argparse
import contextlib
import io
import pstats
import shutil
from collections.abc import Callable
from typing import Any

import _common as c

OPSVERIFY, ALLURE, BARE = "opsverify", "allure-only", "bare"
CADENCE, DESELECT = "select --cadence", "select --deselect"
SPLIT = (("BEN-001", ("predeploy",)), ("BEN-002", ("daily",)))
DAILY_HALF = "checks/test_fleet.py::test_host_1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000], help="none: skip")
    parser.add_argument(
        "--selection-sizes", type=int, nargs="*", default=[1000, 10000, 20000, 40000]
    )
    parser.add_argument("--reps", type=int, default=5, help="timed runs below --large-from")
    parser.add_argument("--large-reps", type=int, default=3, help="timed runs from --large-from")
    parser.add_argument("--large-from", type=int, default=5000, help="checks")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per subprocess")
    parser.add_argument("--profile", type=int, metavar="N", help="cProfile the run at N checks")
    parser.add_argument("--no-attribution", action="store_true", help="skip bare, allure-only")
    args = parser.parse_args()
    c.require_venv()
    sizes = sorted(set(args.sizes))
    selection_sizes = sorted(set(args.selection_sizes))
    if len(sizes) == 1 or (sizes and min(sizes) < 2):
        parser.error("--sizes needs two sizes or more (or none), each at least 2")
    if any(n < 2 or n % 2 for n in selection_sizes):
        parser.error("--selection-sizes must be even: the suite is two halves")

    variants: dict[str, Callable[[], c.Sample]] = {}
    reps: dict[str, int] = {}
    warm: list[str] = []
    with contextlib.ExitStack() as stack:

        def suite(kind: str, hosts: int, **kwargs: Any) -> c.Suite:
            root = stack.enter_context(c.workspace(f"scale-{kind}-{hosts}"))
            return c.Suite(root, hosts, timeout=args.timeout, **kwargs)

        def add(name: str, n: int, func: Callable[[], c.Sample], large: bool) -> None:
            key = f"{name} @{n}"
            variants[key] = func
            reps[key] = args.large_reps if large else args.reps
            if not large:
                warm.append(key)  # warming the large runs would only double the wait

        kinds = [OPSVERIFY] + ([] if args.no_attribution else [ALLURE, BARE])
        for n in [1, *sizes] if sizes else []:
            fleet = suite("fleet", n, measure_folder=True)
            large = n >= args.large_from
            add(OPSVERIFY, n, lambda s=fleet: s.opsverify("opsverify"), large)
            if ALLURE in kinds:
                add(ALLURE, n, fleet.allure_only, large)
                add(BARE, n, fleet.bare, large)
        for n in selection_sizes:
            split = suite("split", n // 2, checks=SPLIT)
            how = {CADENCE: ("--cadence", "predeploy"), DESELECT: ("--deselect", DAILY_HALF)}
            for name, extra in how.items():
                log = name.rpartition("-")[2]
                run = lambda s=split, e=extra, g=log: s.collect(g, *e, selected=s.hosts)  # noqa: E731
                add(name, n, run, n >= args.large_from)
        samples = c.repeat(variants, reps, warmup=warm)

        profiles = {}
        if args.profile:
            profiles = profile_runs(suite, args.profile, args.timeout)

    stats = {name: c.summary(runs) for name, runs in samples.items()}
    data = report(stats, sizes, kinds, selection_sizes)
    for name, found in profiles.items():
        print(f"\ncProfile of {name} at {args.profile} checks ({found['wall_profiled']:.1f}s")
        print(f"profiled): {found['file']}\n-- by tottime\n{found['top_tottime']}")
        print(f"-- by cumulative time, /opsverify/ only\n{found['opsverify_cumtime']}")
    data["profiles"] = profiles
    c.write_results("scale", data)
    return 0


def report(
    stats: dict[str, dict[str, Any]], sizes: list[int], kinds: list[str], selection: list[int]
) -> dict[str, Any]:
    wall = {name: s["wall_median"] for name, s in stats.items()}
    linearity = report_runs(stats, wall, sizes, kinds) if sizes else None
    selection_data = report_selection(wall, selection) if selection else None
    return {"sizes": sizes, "variants": stats, "linearity": linearity, "selection": selection_data}


def report_runs(
    stats: dict[str, dict[str, Any]], wall: dict[str, float], sizes: list[int], kinds: list[str]
) -> dict[str, Any]:
    rows = []
    for name, s in stats.items():
        if name.startswith("select"):
            continue
        info = s["info_median"]
        rows.append(
            [
                name,
                s["n"],
                s["wall_median"],
                s["wall_min"],
                s["wall_max"],
                info.get("session_seconds"),
                c.mib(s["maxrss_kib_median"]),
                info.get("files"),
                info["bytes"] / 2**20 if "bytes" in info else None,
                info["allocated_bytes"] / 2**20 if "allocated_bytes" in info else None,
            ]
        )
    c.table(
        [
            "variant @checks",
            "runs",
            "median s",
            "min s",
            "max s",
            "session s",
            "rss MiB",
            "run files",
            "run MiB",
            "du MiB",
        ],
        rows,
        title="Wall time (median), in-session time, peak RSS and run folder size",
    )

    small, large = sizes[0], sizes[-1]
    linearity: dict[str, Any] = {}
    for kind in kinds:
        t1, ts, tl = wall[f"{kind} @1"], wall[f"{kind} @{small}"], wall[f"{kind} @{large}"]
        slope_small = (ts - t1) / (small - 1)
        slope_large = (tl - ts) / (large - small)
        linearity[kind] = {
            "fixed_seconds": t1,
            f"wall_{small}": ts,
            f"wall_{large}": tl,
            "ratio": tl / ts,
            f"ms_per_check_1_to_{small}": 1000 * slope_small,
            f"ms_per_check_{small}_to_{large}": 1000 * slope_large,
            "slope_ratio": c.ratio(slope_large, slope_small),
        }
    c.table(
        [
            "variant",
            "fixed s",
            f"@{small} s",
            f"@{large} s",
            "ratio",
            f"ms/check 1-{small}",
            f"ms/check {small}-{large}",
            "slope ratio",
        ],
        [[k, *v.values()] for k, v in linearity.items()],
        title=f"Linearity: ratio {large}/{small} (x{large / small:g} if linear and no fixed "
        "cost); slope ratio 1.0 = linear",
    )
    if len(kinds) == 3:
        per_check = {k: linearity[k][f"ms_per_check_{small}_to_{large}"] for k in kinds}
        post = {
            n: wall[f"{OPSVERIFY} @{n}"]
            - stats[f"{OPSVERIFY} @{n}"]["info_median"]["session_seconds"]
            for n in [1, small, large]
        }
        c.table(
            ["where the time per check goes", "ms/check"],
            [
                ["pytest itself (bare)", per_check[BARE]],
                ["allure-pytest (allure-only - bare)", per_check[ALLURE] - per_check[BARE]],
                ["opsverify (opsverify - allure-only)", per_check[OPSVERIFY] - per_check[ALLURE]],
                ["  of which outside the session (report writing)", _slope(post, small, large)],
                ["total (opsverify run)", per_check[OPSVERIFY]],
            ],
            title=f"Cost per check between {small} and {large} checks",
        )
    return linearity


def report_selection(wall: dict[str, float], selection: list[int]) -> dict[str, Any]:
    """--cadence minus --deselect per size, and how that difference grows with the size."""
    extra = {n: wall[f"{CADENCE} @{n}"] - wall[f"{DESELECT} @{n}"] for n in selection}
    rows = []
    for i, n in enumerate(selection):
        before = selection[i - 1] if i else None
        growth = c.ratio(extra[n], extra[before]) if before and extra[before] > 0 else None
        size_step = n / before if before else None
        rows.append(
            [n, wall[f"{CADENCE} @{n}"], wall[f"{DESELECT} @{n}"], extra[n], size_step, growth]
        )
    c.table(
        ["collected", "--cadence s", "--deselect s", "difference s", "size x", "difference x"],
        rows,
        title="Selection (collect-only, half of the checks deselected): opsverify --cadence vs "
        "pytest --deselect.\nDifference growing like size x = linear, like (size x)^2 = "
        "quadratic",
    )
    return {"cadence_minus_deselect_seconds": extra}


def _slope(values: dict[int, float], small: int, large: int) -> float:
    return 1000 * (values[large] - values[small]) / (large - small)


def profile_runs(suite: Callable[..., c.Suite], n: int, timeout: float) -> dict[str, Any]:
    """opsverify run and the --cadence collection at n checks, under cProfile."""
    out: dict[str, Any] = {}
    fleet = suite("prof-fleet", n)
    split = suite("prof-split", n // 2, checks=SPLIT)
    cases = {
        OPSVERIFY: (fleet, [c.OPSVERIFY, "run", "--env", fleet.profile]),
        CADENCE: (
            split,
            [c.PYTEST, "-q", "-p", "no:cacheprovider", "--env", split.profile, "--collect-only"]
            + ["--cadence", "predeploy", "checks"],
        ),
    }
    c.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    for name, (s, command) in cases.items():
        target = c.RESULTS_DIR / f"scale-{name.replace(' --', '-')}-{n}.prof"
        argv = [c.PYTHON, "-m", "cProfile", "-o", target, *command]
        sample = c.run(argv, cwd=s.root, timeout=timeout, log=s.logs / "prof.log", rss=False)
        for folder in c.run_folders(s.root):
            shutil.rmtree(folder)
        out[name] = {
            "file": str(target.relative_to(c.REPO)),
            "wall_profiled": sample.wall,
            "top_tottime": hot_spots(target, "tottime", None, 15),
            "opsverify_cumtime": hot_spots(target, "cumulative", "/opsverify/", 15),
        }
    return out


def hot_spots(path: Any, key: str, where: str | None, limit: int) -> str:
    """pstats' table sorted by ``key``, restricted to file names matching ``where``."""
    buffer = io.StringIO()
    stats = pstats.Stats(str(path), stream=buffer)
    stats.sort_stats(key)
    restrictions: list[Any] = [where, limit] if where else [limit]
    stats.print_stats(*restrictions)
    text = buffer.getvalue()
    return text[text.find("   ncalls") :].rstrip()


if __name__ == "__main__":
    raise SystemExit(main())
