"""Handbook › Performance Management › "Run load tests" (`locust -f … --users 100
--spawn-rate 10 --run-time 10m`): every load profile of the environment runs the plain
locustfile with Locust, in a process of its own, against the profile's host, and must meet
its k6-style thresholds. A passing run is the "load" record APP-013 reads back."""

import tempfile
from pathlib import Path

import pytest

from opsverify import check, not_applicable, thresholds, unreachable
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
    evidence.measure(**outcome.figures())
    problems = outcome.problems(load_profile.min_requests)
    assert outcome.stats is not None, "; ".join([*problems, "Locust reported no statistics"])
    if reason := outcome.unreachable():
        unreachable(reason)
    verdicts = [thresholds.evaluate(rule.threshold, outcome.stats) for rule in rules]
    failed = [v for v in verdicts if not v.passed]
    if problems:  # figures of a run that did not happen as planned prove nothing
        verdicts = [v.void("the run did not happen as planned") for v in verdicts]
        if held := len(verdicts) - len(failed):
            meet = "threshold its figures meets" if held == 1 else "thresholds its figures meet"
            problems.append(f"the {held} {meet} cannot pass on such a run")
    evidence.json("thresholds", [v.to_dict() for v in verdicts])
    if failed:
        problems.append(
            f"{len(failed)} of {len(verdicts)} thresholds failed: "
            + "; ".join(v.describe() for v in failed)
        )
    if problems and outcome.facts.shape:
        problems.append(
            f"users and spawn rate came from the locustfile's LoadTestShape"
            f" {outcome.facts.shape}, within the profile's {plan.run_time_s} s run time"
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
