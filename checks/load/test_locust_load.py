"""Handbook › Performance Management › "Run load tests" (`locust -f … --users 100
--spawn-rate 10 --run-time 10m`): every load profile of the environment runs the plain
locustfile with Locust, in a process of its own, against the profile's host, and must meet
its k6-style thresholds. A passing run is the "load" record APP-013 reads back."""

import tempfile
from pathlib import Path

import pytest

from opsverify import check, not_applicable, thresholds
from opsverify.drivers import locust


@check(
    "LOAD-001",
    "Load test meets its thresholds",
    category="load",
    severity="high",
    cadences=["predeploy", "weekly", "monthly"],
    controls=["SOC2:A1.1", "ISO27001:A.8.6"],
    runbook="runbooks/load-testing.md",
    destructive=True,  # it writes items and loads the service
    records="load",
)
@pytest.mark.traffic  # never beside a latency probe or another load test
def test_load_profile(load_profile, profile, pytestconfig, evidence):
    cadence = pytestconfig.getoption("opsverify_cadence")
    if cadence and cadence not in load_profile.cadences:
        runs = ", ".join(load_profile.cadences)
        not_applicable(f"load profile {load_profile.name} runs {runs}, not {cadence}")
    load = profile.load
    assert load.locustfile.is_file(), f"locustfile {load.locustfile} not found"
    plan = locust.Plan(
        locustfile=load.locustfile,
        host=str(load.host).rstrip("/"),  # the locustfile's paths start with /
        users=load_profile.users,
        spawn_rate=load_profile.spawn_rate,
        run_time_s=int(load_profile.run_time.total_seconds()),
        processes=load_profile.processes,
        ca_file=load.ca_file,
        token=load.token.resolve() if load.token else None,
    )
    rules = load_profile.thresholds
    with tempfile.TemporaryDirectory(prefix="opsverify-locust-") as folder:
        outcome = locust.run(
            plan, Path(folder), abort=lambda stats, at: thresholds.lost(rules, stats, at)
        )
        _attach(evidence, outcome)
    assert outcome.start_error is None, f"Locust could not start: {outcome.start_error}"
    assert not outcome.timed_out, (
        f"Locust did not finish within {locust.deadline(plan.run_time_s):g} s and was killed"
    )
    assert outcome.exit_code == 0 and outcome.stats is not None, (
        f"Locust failed (exit code {outcome.exit_code}): {_last_line(outcome.log_tail)}"
    )
    verdicts = [thresholds.evaluate(rule.threshold, outcome.stats) for rule in rules]
    evidence.json("thresholds", [v.to_dict() for v in verdicts])
    total = outcome.stats.total
    evidence.measure(
        requests=total.requests,
        failures=total.failures,
        rps=round(total.rps, 1),
        p50_ms=total.percentiles["p50"],
        p95_ms=total.percentiles["p95"],
        p99_ms=total.percentiles["p99"],
        error_rate=round(total.error_rate, 3),
        users=plan.users,
        duration_s=round(outcome.seconds, 1),
        aborted=outcome.aborted is not None,
        aborted_at_s=outcome.aborted_at_s,
    )
    problems = []
    if outcome.exceptions:
        raised = "; ".join(outcome.exceptions[:3])
        problems.append(f"the locustfile's tasks raised exceptions: {raised}")
    if outcome.aborted is not None:
        problems.append(
            f"aborted at {outcome.aborted_at_s:g} s of {plan.run_time_s} s: "
            f"{outcome.aborted.describe()} was already lost"
        )
    failed = [v for v in verdicts if not v.passed]
    if failed:
        problems.append(
            f"{len(failed)} of {len(verdicts)} thresholds failed: "
            + "; ".join(v.describe() for v in failed)
        )
    if problems and outcome.failures:
        problems.append(f"most frequent failure: {outcome.failures[0]}")
    assert not problems, "; ".join(problems)


def _attach(evidence, outcome):
    """Locust's own outputs, as written (redacted like all evidence)."""
    evidence.json("command", outcome.evidence())
    evidence.text("locust-log-tail", outcome.log_tail)
    for key, name, extension, mime in (
        ("stats", "locust-stats", "csv", "text/csv"),
        ("failures", "locust-failures", "csv", "text/csv"),
        ("exceptions", "locust-exceptions", "csv", "text/csv"),
        ("json", "locust-statistics", "json", "application/json"),
        ("html", "locust-report", "html", "text/html"),
    ):
        path = outcome.files[key]
        if path.is_file():
            evidence.binary(name, path.read_bytes(), extension=extension, mime=mime)


def _last_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
