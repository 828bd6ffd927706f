"""Activity records in the run history, and the checklist's "performance/load/chaos testing
completed" checks (APP-012..014) that read them back, through the real CLI.

The activity here is a small check of the test's own, declared ``records="load"``: what
matters is what the history keeps of it and how APP-013 judges that.
"""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsverify import check
from opsverify.history import WINDOW_KEY, DeclaredWindow, History, HistoryError, Record, Span
from tests.helpers import ROOT, Suite, readiness

LOAD_TEST = """\
    import os
    import time

    import pytest

    from opsverify import check

    @check("LDT-001", "load test", category="load", severity="high", cadences=["monthly"],
           controls=["SOC2:A1.1"], runbook="runbooks/x.md", records="load")
    @pytest.mark.traffic
    @pytest.mark.parametrize("load_profile", ["smoke", "standard"])
    def test_load(load_profile, evidence):
        time.sleep(0.5)  # long enough for a reader on another worker to start meanwhile
        evidence.measure(p95_ms=123.4, rps=56.0, secret_probe=os.environ["CANARY"])
        assert load_profile not in os.environ.get("FAIL", ""), f"{load_profile}: p95 too high"
"""


CANARY = f"canary-{secrets.token_hex(8)}"


def profile_text(**testing: dict) -> str:
    # The canary is a secret of the profile's, so the run knows to keep it out of files.
    service = "service: {name: s, base_url: 'https://127.0.0.1:9', auth: {token: {env: CANARY}}}"
    return f"name: t\ntier: staging\n{service}\ntesting: {json.dumps(testing)}\n"


@pytest.fixture
def suite(suite: Suite) -> Suite:
    suite.checks("test_load.py", LOAD_TEST)
    shutil.copy(ROOT / "checks/application/test_testing_completed.py", suite.root / "checks")
    suite.profile(profile_text())
    return suite


def run(suite: Suite, select: str, *, fail: str = "") -> dict[str, dict]:
    outcome = suite.run("-k", select, env={"FAIL": fail, "CANARY": CANARY})
    assert outcome.code in (0, 1), outcome.output
    return {f"{c['id']}[{c['parameter']}]": c for c in readiness(suite.latest())["checks"]}


def history(suite: Suite) -> History:
    return History(suite.root / "reports" / "t" / "history")


def old_run(suite: Suite, name: str, records: list[Record]) -> None:
    """``records`` of a run that finished long ago (only a finished run's records count)."""
    history(suite).append_records(records)
    history(suite).append_run({"run": name, "interrupted": False})


def test_an_activity_check_leaves_a_record_with_status_and_figures(suite: Suite) -> None:
    results = run(suite, "LDT-001", fail="standard")
    records = history(suite).records("load")
    assert [(r.check, r.parameter, r.status) for r in records] == [
        ("LDT-001", "smoke", "passed"),
        ("LDT-001", "standard", "failed"),
    ]
    assert records[0].run == suite.latest().name
    assert "standard: p95 too high" in records[1].message
    # Figures reach readiness.json and the record; a secret among them reaches neither.
    assert results["LDT-001[smoke]"]["figures"]["p95_ms"] == 123.4
    assert records[0].figures["rps"] == 56.0
    raw = (history(suite).folder / "records.jsonl").read_text()
    assert CANARY not in raw and "[REDACTED]" in raw
    # Ordinary checks leave no record: only activities are remembered.
    run(suite, "APP-013")
    assert len(history(suite).records("load")) == 2


def test_load_testing_completed_fails_until_a_load_test_passes(suite: Suite) -> None:
    first = run(suite, "APP-013")["APP-013[None]"]
    assert first["status"] == "failed"
    assert "no load test in the history of t: none has ever been recorded" in first["message"]

    run(suite, "LDT-001", fail="smoke standard")
    failed = run(suite, "APP-013")["APP-013[None]"]
    assert failed["status"] == "failed"
    assert "no passing load test in the last 30.0 days" in failed["message"]
    assert "p95 too high" in failed["message"]

    run(suite, "LDT-001")
    passed = run(suite, "APP-013")["APP-013[None]"]
    assert passed["status"] == "passed", passed["message"]
    assert passed["figures"]["run"] == history(suite).records("load")[-1].run


def test_only_the_named_load_profile_counts(suite: Suite) -> None:
    suite.profile(profile_text(load={"within": "30d", "only": ["standard"]}))
    run(suite, "LDT-001", fail="standard")  # smoke passed, standard failed
    result = run(suite, "APP-013")["APP-013[None]"]
    assert result["status"] == "failed"
    assert "load test (standard)" in result["message"]


def test_a_pass_older_than_the_limit_does_not_count(suite: Suite) -> None:
    old = datetime.now(UTC) - timedelta(days=40)
    old_run(
        suite, "an-old-run", [Record("load", "LDT-001", "standard", "an-old-run", old, "passed")]
    )
    result = run(suite, "APP-013")["APP-013[None]"]
    assert result["status"] == "failed"
    assert "the last passing one is 40.0 days old" in result["message"]

    suite.profile(profile_text(load={"within": "41d"}))
    assert run(suite, "APP-013")["APP-013[None]"]["status"] == "passed"


def test_out_of_scope_is_not_applicable_with_the_reason(suite: Suite) -> None:
    suite.profile(profile_text(chaos={"within": "92d", "out_of_scope": "no chaos programme"}))
    results = run(suite, "APP-012 or APP-014")
    assert results["APP-014[None]"]["status"] == "not_applicable"
    assert (
        results["APP-014[None]"]["message"] == "chaos testing is out of scope: no chaos programme"
    )
    assert results["APP-012[None]"]["status"] == "failed"  # the others still apply


def test_a_damaged_history_line_fails_naming_file_and_line(suite: Suite) -> None:
    run(suite, "LDT-001")
    path = history(suite).folder / "records.jsonl"
    path.write_text(path.read_text() + '{"activity": "load"}\n')
    result = run(suite, "APP-013")["APP-013[None]"]
    assert result["status"] == "failed"
    assert f"{path}: line 3: not a history record" in result["message"]


def test_an_activity_name_must_be_a_plain_word() -> None:
    with pytest.raises(ValueError, match="records='Load Test' must be a lower-case activity"):
        check(
            "LDT-002",
            "x",
            category="load",
            severity="low",
            cadences=["daily"],
            controls=[],
            runbook="r.md",
            records="Load Test",
        )


def test_a_record_needs_a_time_zone(tmp_path: Path) -> None:
    (tmp_path / "records.jsonl").write_text(
        json.dumps(
            {
                "activity": "load",
                "check": "LDT-001",
                "parameter": None,
                "run": "r",
                "finished": "2026-11-27T10:00:00",
                "status": "passed",
            }
        )
        + "\n"
    )
    with pytest.raises(ValueError, match="line 1: not a history record .finished has no time"):
        History(tmp_path).records("load")


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_load_test_counts_in_its_own_run(suite: Suite, workers: list[str]) -> None:
    # APP-013 is collected first (checks/test_testing_completed.py sorts before test_load.py)
    # but runs after the run's own load tests, and sees their records.
    outcome = suite.run("-k", "LDT-001 or APP-013", *workers, env={"CANARY": CANARY})
    assert outcome.code == 0, outcome.output
    results = {c["id"]: c for c in readiness(suite.latest())["checks"]}
    assert results["APP-013"]["status"] == "passed", results["APP-013"]["message"]
    assert results["APP-013"]["figures"]["run"] == suite.latest().name


def replayed(suite: Suite, *args: str) -> dict[str, dict]:
    """A daily run: the monthly load test is not repeated but read back from the history."""
    outcome = suite.run("-k", "LDT-001", "--cadence", "daily", *args, env={"CANARY": CANARY})
    assert outcome.code in (0, 1), outcome.output
    return {f"{c['id']}[{c['parameter']}]": c for c in readiness(suite.latest())["checks"]}


def test_a_run_of_another_cadence_fails_an_activity_that_never_ran(suite: Suite) -> None:
    results = replayed(suite)
    assert {k: r["status"] for k, r in results.items()} == {
        "LDT-001[smoke]": "failed",
        "LDT-001[standard]": "failed",
    }
    assert (
        "LDT-001[smoke] has never run against t: a monthly load is due"
        in (results["LDT-001[smoke]"]["message"])
    )
    assert history(suite).records("load") == []


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_run_of_another_cadence_reads_a_fresh_result_back(
    suite: Suite, workers: list[str]
) -> None:
    run(suite, "LDT-001", fail="standard")
    done = suite.latest().name
    results = replayed(suite, *workers)
    smoke, standard = results["LDT-001[smoke]"], results["LDT-001[standard]"]
    assert smoke["status"] == "passed"
    assert smoke["figures"]["replayed_from"] == done and smoke["figures"]["p95_ms"] == 123.4
    assert standard["status"] == "failed"
    assert f"as in run {done} of" in standard["message"]
    assert "failed: standard: p95 too high" in standard["message"]
    assert len(history(suite).records("load")) == 2  # read back, not recorded again


def test_a_result_past_its_period_earns_nothing(suite: Suite) -> None:
    old = datetime.now(UTC) - timedelta(days=40)
    old_run(
        suite,
        "an-old-run",
        [Record("load", "LDT-001", p, "an-old-run", old, "passed") for p in ("smoke", "standard")],
    )
    result = replayed(suite)["LDT-001[smoke]"]
    assert result["status"] == "failed"
    assert "run an-old-run of" in result["message"]
    assert "is 40 days old; a monthly one counts for 31 days" in result["message"]


def test_only_records_of_finished_uninterrupted_runs_count(tmp_path: Path) -> None:
    history = History(tmp_path)
    now = datetime.now(UTC)
    history.append_records(
        [Record("load", "LDT-001", "smoke", run, now, "passed") for run in ("done", "cut", "going")]
    )
    history.append_run({"run": "done", "interrupted": False})
    history.append_run({"run": "cut", "interrupted": True})
    assert [(r.run, r.status) for r in history.records("load")] == [
        ("done", "passed"),
        ("cut", "interrupted"),
    ]
    # A run still going sees its own records (APP-013 of the run that load-tested).
    going = History(tmp_path, current="going")
    assert [r.run for r in going.records("load")] == ["done", "cut", "going"]


# --- declared windows ------------------------------------------------------------------------


def test_declared_windows_are_read_back_from_the_records_of_any_activity(tmp_path: Path) -> None:
    """A drill or a chaos experiment that takes the service down on purpose records when (its
    declared window) and the outages it measured through the load balancer; SLO-001 reads
    every window that reaches into its own."""
    now = datetime.now(UTC).replace(microsecond=0)
    drill = DeclaredWindow(
        Span(now - timedelta(minutes=10), now - timedelta(minutes=9)),
        outages=(Span(now - timedelta(seconds=595), now - timedelta(seconds=592), "failover"),),
        measured_at="https://lb.example/ready",
    )
    chaos = DeclaredWindow(Span(now - timedelta(minutes=3), now - timedelta(minutes=2)))
    old = DeclaredWindow(Span(now - timedelta(hours=2), now - timedelta(hours=1)))
    history = History(tmp_path)
    history.append_records(
        [
            Record("dr-failover", "DRL-002", None, "r1", now, "passed", details=declared(drill)),
            Record("load", "LOAD-001", "smoke", "r1", now, "passed"),  # declares none
            Record("chaos", "CHS-001", "kill", "r2", now, "failed", details=declared(chaos)),
            Record("dr-failover", "DRL-002", None, "r0", now, "passed", details=declared(old)),
        ]
    )
    for run in ("r0", "r1", "r2"):  # only finished runs' records count
        history.append_run({"run": run, "interrupted": False})
    found = history.declared_windows(since=now - timedelta(minutes=15))
    assert [(w.record.check, w.record.run) for w in found] == [("DRL-002", "r1"), ("CHS-001", "r2")]
    assert [replace(w, record=None) for w in found] == [drill, chaos]
    assert found[0].outages[0].seconds == 3


def test_a_damaged_declared_window_names_file_and_line(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    damaged = {"declared_window": {"start": now.isoformat(), "outages": []}}  # no end
    History(tmp_path).append_records(
        [Record("dr-failover", "DRL-002", None, "r", now, "passed", details=damaged)]
    )
    History(tmp_path).append_run({"run": "r", "interrupted": False})
    with pytest.raises(HistoryError, match=r"records.jsonl: line 1: declared_window: .*end"):
        History(tmp_path).declared_windows(since=now - timedelta(hours=1))


def declared(window: DeclaredWindow) -> dict:
    return {WINDOW_KEY: window.to_dict()}
