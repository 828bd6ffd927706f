"""Active probe accuracy: the P95 SLO-010 measures against a known injected delay.

    .venv/bin/python bench/probe_accuracy.py [--delays 0 50 100 200 400] [--reps 3]

Starts a sandbox of its own on loopback ports --base-port.. (29000..29006 by default; the
tests use 27000), then for each delay sets the service's fault switch (PUT /api/v1/faults
{"latency_ms": N}: an asyncio.sleep in the items handler, behind nginx and TLS, so in the
path the probe measures) and runs `opsverify run -k SLO-010` from the repository root
against a profile with one probe of the items API (--requests after 10 warm-up requests,
--concurrency at a time). The percentiles come from readiness.json, as a user gets them.
Delays run round-robin, --reps times each; a run whose probe saw a failed request or a
delay the switch did not confirm stops the benchmark.

Reported per delay (medians over the reps): measured p50/p95/p99, p95 − injected, p95 /
injected, and p95 − injected − the p95 at 0 ms (what the delay adds beyond the path's own
latency; ~0 when the probe is accurate).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

import _common as c
import httpx

from opsverify import sandbox

FIGURES = ("p50_ms", "p95_ms", "p99_ms")


def sandbox_settings(state_dir: Path, base_port: int) -> sandbox.Settings:
    names = list(sandbox.Ports.model_fields)
    ports = sandbox.Ports(**{name: base_port + i for i, name in enumerate(names)})
    return sandbox.Settings(state_dir=state_dir, ports=ports)


def write_profile(root: Path, settings: sandbox.Settings, args: argparse.Namespace) -> Path:
    state, https = settings.layout().root, settings.ports.https
    path = root / "probe-bench.yaml"
    path.write_text(
        f"""\
name: probe-bench
tier: sandbox
service:
  name: cronos-ai
  base_url: https://127.0.0.1:{https}
  ca_file: {state}/pki/ca.pem
  auth: {{token: {{file: {state}/secrets/api_token}}}}
probes:
  - name: items
    url: https://127.0.0.1:{https}/api/v1/items
    auth: true
    requests: {args.requests}
    concurrency: {args.concurrency}
    deadline: 4m
    # Every request must succeed (or the run stops the benchmark); latency is only reported.
    objectives: {{p95: 30s, success_ratio: 100}}
"""
    )
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delays", type=int, nargs="+", default=[0, 50, 100, 200, 400])
    parser.add_argument("--reps", type=int, default=3, help="probe runs per delay")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per run")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--base-port", type=int, default=29000)
    parser.add_argument("--timeout", type=float, default=300, help="seconds per subprocess")
    args = parser.parse_args()
    c.require_venv()

    with c.workspace("probe") as root:
        settings = sandbox_settings(root / "sandbox", args.base_port)
        sandbox.up(settings, timeout=180)
        try:
            samples = measure(root, settings, args)
        finally:
            sandbox.down(settings, purge=True)
    report(samples, args)
    return 0


def measure(
    root: Path, settings: sandbox.Settings, args: argparse.Namespace
) -> dict[str, list[c.Sample]]:
    profile = write_profile(root, settings, args)
    faults = f"http://127.0.0.1:{settings.ports.service}/api/v1/faults"
    token = settings.layout().api_token.read_text().strip()
    runs = iter(range(len(args.delays) * args.reps))

    def probe(delay: int) -> c.Sample:
        run_dir = root / f"run-{next(runs)}"
        with httpx.Client(timeout=5, headers={"Authorization": f"Bearer {token}"}) as client:
            applied = client.put(faults, json={"latency_ms": delay}).raise_for_status().json()
            if applied["latency_ms"] != delay:
                raise c.BenchError(f"asked for {delay} ms, the fault switch says {applied}")
            try:
                sample = c.run(
                    [c.OPSVERIFY, "run", "--env", profile, "--run-dir", run_dir, "-k", "SLO-010"],
                    cwd=c.REPO,
                    timeout=args.timeout,
                    log=root / f"{run_dir.name}.log",
                )
            finally:
                client.delete(faults).raise_for_status()
        (check,) = c.readiness(run_dir)["checks"]
        figures = check["figures"]
        if check["status"] != "passed" or figures["requests"] != args.requests:
            raise c.BenchError(f"{delay} ms: {check['status']}: {check['message']}")
        return replace(sample, info={k: figures[k] for k in FIGURES})

    return c.repeat(
        {f"{d} ms": lambda d=d: probe(d) for d in args.delays},
        args.reps,
        warmup=False,  # the probe warms its own connections; nothing else to warm
        label="probe ",
    )


def report(samples: dict[str, list[c.Sample]], args: argparse.Namespace) -> None:
    rows: list[dict[str, Any]] = []
    for delay in args.delays:
        runs = samples[f"{delay} ms"]
        row: dict[str, Any] = {"injected_ms": delay, "runs": len(runs)}
        for key in FIGURES:
            row[key] = c.median(s.info[key] for s in runs)
        p95s = [s.info["p95_ms"] for s in runs]
        row |= {"p95_min_ms": min(p95s), "p95_max_ms": max(p95s)}
        row["p95_minus_injected_ms"] = row["p95_ms"] - delay
        row["p95_over_injected"] = c.ratio(row["p95_ms"], delay)
        rows.append(row)
    baseline = rows[0]["p95_ms"] if rows and rows[0]["injected_ms"] == 0 else None
    for row in rows:
        row["excess_over_baseline_ms"] = (
            None if baseline is None else row["p95_minus_injected_ms"] - baseline
        )
    c.table(
        [
            "injected ms",
            "p50 ms",
            "p95 ms",
            "p95 min..max",
            "p99 ms",
            "p95-injected",
            "p95/injected",
            "excess ms",
        ],
        [
            [
                r["injected_ms"],
                r["p50_ms"],
                r["p95_ms"],
                f"{r['p95_min_ms']:.1f}..{r['p95_max_ms']:.1f}",
                r["p99_ms"],
                r["p95_minus_injected_ms"],
                r["p95_over_injected"],
                r["excess_over_baseline_ms"],
            ]
            for r in rows
        ],
        title=(
            f"SLO-010 probe of the items API: {args.requests} requests, {args.concurrency} at a"
            f" time, median of {args.reps} runs per delay (excess: p95 - injected - p95 at 0 ms)"
        ),
    )
    c.write_results(
        "probe_accuracy",
        {
            "requests": args.requests,
            "concurrency": args.concurrency,
            "reps": args.reps,
            "delays": rows,
            "samples": {name: [s.info for s in runs] for name, runs in samples.items()},
        },
    )


if __name__ == "__main__":
    raise SystemExit(main())
