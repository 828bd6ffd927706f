"""How long the opsverify command takes to start, against the interpreter itself.

From the repository root, round-robin, median of --reps (default 10) after one warm-up:

  python -c pass                  the interpreter alone (the venv's python)
  python -c 'import opsverify.cli'  what the console script imports before doing anything
  opsverify --help
  opsverify list --env local      collects the repository's checks against the local profile
                                  (no sandbox needed: listing reaches nothing)

--imports also prints the slowest top-level imports of `opsverify --help` (-X importtime).

    .venv/bin/python bench/startup.py [--reps 10] [--imports]
"""

from __future__ import annotations

import argparse
import re
from typing import Any

import _common as c

PASS = "python -c pass"
IMPORT = "python -c 'import opsverify.cli'"
HELP = "opsverify --help"
LIST = "opsverify list --env local"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10, help="timed runs per command")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per subprocess")
    parser.add_argument("--imports", action="store_true", help="-X importtime of --help")
    args = parser.parse_args()
    c.require_venv()

    commands = {
        PASS: [c.PYTHON, "-c", "pass"],
        IMPORT: [c.PYTHON, "-c", "import opsverify.cli"],
        HELP: [c.OPSVERIFY, "--help"],
        LIST: [c.OPSVERIFY, "list", "--env", "local"],
    }
    variants = {
        # No GNU time wrapper (rss=False): its ~1 ms would blur a 10 ms baseline.
        name: (lambda argv=argv: c.run(argv, cwd=c.REPO, timeout=args.timeout, rss=False))
        for name, argv in commands.items()
    }
    samples = c.repeat(variants, args.reps)

    stats = {name: c.summary(runs) for name, runs in samples.items()}
    base = stats[PASS]["wall_median"]
    rows = []
    for name, s in stats.items():
        rows.append(
            [
                name,
                1000 * s["wall_median"],
                1000 * s["wall_min"],
                1000 * s["wall_max"],
                c.ratio(s["wall_median"], base),
                c.paired_ratio(samples[name], samples[PASS]),
                1000 * (s["wall_median"] - base),
            ]
        )
    c.table(
        ["command", "median ms", "min ms", "max ms", "x python", "x paired", "+ms"],
        rows,
        title=f"Start-up from {c.REPO}, median of {args.reps} runs",
    )
    data: dict[str, Any] = {"variants": stats, "baseline": PASS}
    if args.imports:
        data["imports_of_help"] = imports(args.timeout)
    c.write_results("startup", data)
    return 0


_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def imports(timeout: float, top: int = 15) -> list[dict[str, Any]]:
    """Top-level modules imported by `opsverify --help`, slowest (cumulative) first."""
    log = c.RESULTS_DIR / "startup-importtime.log"
    c.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    c.run(
        [c.PYTHON, "-X", "importtime", c.OPSVERIFY, "--help"], cwd=c.REPO, timeout=timeout, log=log
    )
    found = []
    for line in log.read_text().splitlines():
        match = _LINE.match(line)
        if match and not match[3]:  # no indentation: imported by the script itself
            found.append({"module": match[4], "cumulative_ms": int(match[2]) / 1000})
    found.sort(key=lambda m: m["cumulative_ms"], reverse=True)
    c.table(
        ["top-level import of --help", "cumulative ms"],
        [[m["module"], m["cumulative_ms"]] for m in found[:top]],
        title="-X importtime (one run; times include the import's own imports)",
    )
    return found[:top]


if __name__ == "__main__":
    raise SystemExit(main())
