"""LOAD-001 through opsverify vs raw `locust --headless`: same locustfile, same target.

    .venv/bin/opsverify sandbox up          # first, if it is not running (not done for you)
    .venv/bin/python bench/load_harness.py [--env local] [--load-profile standard] [--reps 3]

Two variants, round-robin after one warm-up each, median of --reps:

  raw        locust -f <locustfile> --headless -u U -r R -t T -H <host> --json-file F
             the handbook's command, with the load profile's users, spawn rate and run time;
             API_TOKEN and SSL_CERT_FILE in its environment, as the locustfile documents
  opsverify  opsverify run --env ENV -k "LOAD-001 and NAME" --cadence <its first cadence>
             the whole product path: Locust with CSV, JSON and HTML output, the abort
             watcher, evidence, readiness.json, the manifest and, with node_modules, the
             Allure HTML report

Both read requests/s the same way, from the statistics Locust writes at exit (requests over
the span from the first to the last request). Reported: requests/s and wall time of each,
and opsverify / raw for both. Exit code 1 of opsverify (a threshold failed on a busy
machine) still counts as a complete run; an aborted run does not.

Exits 2 without running anything when <host>/health does not answer.
"""

from __future__ import annotations

import argparse
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import _common as c

from opsverify import profile as profiles
from opsverify.drivers import locust


@dataclass(frozen=True)
class Target:
    """The load profile to run and everything the locustfile needs, from an env profile."""

    profile: Path
    load: profiles.Load
    entry: profiles.LoadProfile

    def plan(self, processes: int | None = None) -> locust.Plan:
        return locust.Plan(
            locustfile=self.load.locustfile,
            host=str(self.load.host).rstrip("/"),
            users=self.entry.users,
            spawn_rate=self.entry.spawn_rate,
            run_time_s=int(self.entry.run_time.total_seconds()),
            processes=processes or self.entry.processes,
            ca_file=self.load.ca_file,
            token=self.load.token.resolve() if self.load.token else None,
        )


def target(env: str, name: str) -> Target:
    path = profiles.resolve_path(env, c.REPO)
    loaded = profiles.load(path)
    if loaded.load is None:
        raise SystemExit(f"{path}: no load section")
    entries = {p.name: p for p in loaded.load.profiles}
    if name not in entries:
        raise SystemExit(f"{path}: no load profile {name!r} (has {', '.join(entries)})")
    return Target(path, loaded.load, entries[name])


def unanswered(plan: locust.Plan, timeout: float = 5) -> str | None:
    """None when <host>/health answers (any HTTP status), else why not."""
    context = ssl.create_default_context(cafile=str(plan.ca_file) if plan.ca_file else None)
    try:
        with urllib.request.urlopen(f"{plan.host}/health", timeout=timeout, context=context):
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def require_target(plan: locust.Plan) -> bool:
    problem = unanswered(plan)
    if problem is not None:
        print(f"The target does not answer at {plan.host}/health ({problem}).")
        print(f"Start it, then run this again:  cd {c.REPO} && .venv/bin/opsverify sandbox up")
    return problem is None


def rps_at_exit(json_file: Path) -> dict[str, Any]:
    stats = locust.final_stats(json_file)
    if stats is None or stats.total.requests == 0:
        raise c.BenchError(f"{json_file}: Locust reported no requests")
    total = stats.total
    return {
        "rps": total.rps,
        "p95_ms": total.percentiles["p95"],
        "requests": total.requests,
        "error_rate": total.error_rate,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="local", help="environment profile name or YAML path")
    parser.add_argument("--load-profile", default="standard", help="entry of its load.profiles")
    parser.add_argument("--reps", type=int, default=3, help="timed runs per variant")
    args = parser.parse_args()
    c.require_venv()
    chosen = target(args.env, args.load_profile)
    plan = chosen.plan()
    if not require_target(plan):
        return 2
    timeout = locust.deadline(plan.run_time_s) + 120  # start-up, evidence, HTML report
    counter = iter(range(1_000_000))

    with c.workspace("load-harness") as root:

        def raw() -> c.Sample:
            folder = root / f"raw-{next(counter)}"
            folder.mkdir()
            argv = [c.BIN / "locust", "-f", plan.locustfile, "--headless", "-H", plan.host]
            argv += ["-u", str(plan.users), "-r", f"{plan.spawn_rate:g}"]
            argv += ["-t", f"{plan.run_time_s}s", "--json-file", folder / "locust"]
            sample = c.run(
                argv,
                cwd=folder,
                timeout=timeout,
                env=c.bench_env(**locustfile_env(plan)),
                log=folder / "log",
                ok=(0, 1),  # 1: some request failed; the rate is still the rate
            )
            return replace(sample, info=rps_at_exit(folder / "locust.json"))

        def harness() -> c.Sample:
            run_dir = root / f"opsverify-{next(counter)}"
            select = f"LOAD-001 and {chosen.entry.name}"
            sample = c.run(
                [c.OPSVERIFY, "run", "--env", chosen.profile, "--run-dir", run_dir, "-k", select]
                + ["--cadence", str(chosen.entry.cadences[0])],
                cwd=c.REPO,
                timeout=timeout,
                log=root / f"{run_dir.name}.log",
                ok=(0, 1),  # 1: a threshold failed on a busy machine; still a complete run
            )
            return replace(sample, info=figures(run_dir))

        variants: dict[str, Callable[[], c.Sample]] = {"raw locust": raw, "opsverify": harness}
        samples = c.repeat(variants, args.reps)

    report(samples, chosen)
    return 0


def locustfile_env(plan: locust.Plan) -> dict[str, str]:
    """API_TOKEN and SSL_CERT_FILE, as a user exports them for the locustfile."""
    env = locust.environment(plan)
    return {k: env[k] for k in (locust.TOKEN_ENV, locust.CA_ENV) if k in env}


def figures(run_dir: Path) -> dict[str, Any]:
    (check,) = [x for x in c.readiness(run_dir)["checks"] if x["id"] == "LOAD-001"]
    measured = check["figures"]
    if not measured or measured["aborted"]:
        raise c.BenchError(f"{run_dir}: LOAD-001 {check['status']}: {check['message']}")
    return {
        "rps": measured["rps"],
        "p95_ms": measured["p95_ms"],
        "requests": measured["requests"],
        "error_rate": measured["error_rate"],
        "locust_seconds": measured["duration_s"],
        "passed": check["status"] == "passed",
    }


def describe(entry: profiles.LoadProfile) -> dict[str, Any]:
    return {
        "name": entry.name,
        "users": entry.users,
        "spawn_rate": entry.spawn_rate,
        "run_time_s": entry.run_time.total_seconds(),
        "processes": entry.processes,
    }


def summarise(samples: dict[str, list[c.Sample]], title: str) -> dict[str, Any]:
    """Print one row per variant: requests/s, p95, requests, errors, CPU and wall time."""
    stats = {name: c.summary(runs) for name, runs in samples.items()}
    columns = ["req/s", "p95 ms", "requests", "error %", "cpu s", "wall s", "min s", "max s"]
    c.table(
        ["variant", *columns],
        [
            [
                name,
                *(s["info_median"][k] for k in ("rps", "p95_ms", "requests", "error_rate")),
                *(s[k] for k in ("cpu_median", "wall_median", "wall_min", "wall_max")),
            ]
            for name, s in stats.items()
        ],
        title=f"{title}, median of {'/'.join(sorted({str(s['n']) for s in stats.values()}))}",
    )
    return stats


def rps_ratio(samples: dict[str, list[c.Sample]], over: str, under: str) -> dict[str, Any]:
    """requests/s of ``over`` / ``under``: ratio of the medians and median of per-round ratios."""
    rates = {name: [s.info["rps"] for s in samples[name]] for name in (over, under)}
    return {
        "of_medians": c.ratio(c.median(rates[over]), c.median(rates[under])),
        "paired": c.median(a / b for a, b in zip(rates[over], rates[under], strict=True)),
    }


def report(samples: dict[str, list[c.Sample]], chosen: Target) -> None:
    entry = chosen.entry
    stats = summarise(
        samples,
        f"load profile {entry.name} ({entry.users} users, spawn {entry.spawn_rate:g}/s, "
        f"{int(entry.run_time.total_seconds())} s) of {chosen.profile.name}",
    )
    ratios = {
        "rps": rps_ratio(samples, "opsverify", "raw locust"),
        "wall": {
            "of_medians": c.ratio(
                stats["opsverify"]["wall_median"], stats["raw locust"]["wall_median"]
            ),
            "paired": c.paired_ratio(samples["opsverify"], samples["raw locust"]),
        },
    }
    c.table(
        ["opsverify / raw", "of medians", "median of paired"],
        [[k, v["of_medians"], v["paired"]] for k, v in ratios.items()],
        title="Ratios",
    )
    c.write_results(
        "load_harness",
        {
            "profile": str(chosen.profile),
            "load_profile": describe(entry),
            "variants": stats,
            "ratios": ratios,
        },
    )


if __name__ == "__main__":
    raise SystemExit(main())
