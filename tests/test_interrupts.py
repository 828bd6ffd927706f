"""Ctrl-C at every point of a run's life: never exit 0, never a passing record; the run
either completes its reports or says it was interrupted, and its history records are
marked so. The signal is sent by the suite itself at a named point, so every point is hit
every time (the drills' own interrupt tests send it to real drills, at real steps)."""

from __future__ import annotations

import json
import textwrap

import pytest

from opsverify.history import History
from opsverify.report import manifest
from tests.helpers import Suite, readiness

PROFILE = """\
    name: t
    tier: staging
    gate: {min_score: 0}
"""

# Each point sends SIGINT to the run's own process where the engine or a check is busy.
CONFTEST = """\
    import asyncio
    import os
    import signal

    import pytest

    from opsverify import report
    from opsverify.history import History
    from opsverify.report import allure_results, manifest, readiness

    POINT = os.environ.get("POINT", "")


    def ctrl_c(point):
        if POINT == point:
            os.kill(os.getpid(), signal.SIGINT)


    def during(module, name, point):
        original = getattr(module, name)

        def wrapped(*args, **kwargs):
            ctrl_c(point)
            return original(*args, **kwargs)

        setattr(module, name, wrapped)


    during(report, "write_all", "before-reports")
    during(allure_results, "write_html", "html")
    during(readiness, "write", "readiness")
    during(manifest, "write", "manifest")
    during(History, "append_run", "history")


    def pytest_runtest_setup(item):
        ctrl_c(f"setup-{item.name}")


    def pytest_runtest_teardown(item):
        ctrl_c(f"teardown-{item.name}")
"""

CHECKS = """\
    import asyncio
    import os
    import signal
    import time

    from opsverify import check
    from conftest import ctrl_c

    def meta(id, **extra):
        return check(id, f"check {id}", category="backup", severity="high",
                     cadences=["monthly"], controls=["SOC2:A1.2"], runbook="runbooks/x.md",
                     **extra)

    @meta("INT-001")
    def test_first(evidence):
        evidence.text("note", "ran")

    @meta("INT-002", records="drill")
    def test_drill(evidence):
        for step in ("restore", "recover", "verify"):
            ctrl_c(f"step-{step}")
            evidence.text(step, "done")

    @meta("INT-003", records="drill")
    def test_drill_whose_libraries_meet_ctrl_c():
        async def cancellable():
            try:
                ctrl_c("asyncio")
                await asyncio.sleep(1)
            except asyncio.CancelledError:  # asyncio.run's own Ctrl-C is a cancellation
                return "cancelled, and carrying on as if nothing happened"
        asyncio.run(cancellable())
        try:  # a retry loop that catches everything
            ctrl_c("swallowed")
            time.sleep(1)
        except BaseException:
            pass

    @meta("INT-004")
    def test_last():
        pass
"""

POINTS = [
    "setup-test_first",
    "step-restore",
    "step-recover",
    "step-verify",
    "asyncio",
    "swallowed",
    "teardown-test_drill",
    "setup-test_last",
    "before-reports",
    "html",
]
# Once the verdict is written, a Ctrl-C no longer changes it: the run completes as judged.
AFTER_THE_VERDICT = ["readiness", "manifest", "history"]


@pytest.fixture
def interruptible(suite: Suite) -> Suite:
    suite.profile(PROFILE)
    (suite.root / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    suite.checks("test_interruptible.py", CHECKS)
    return suite


def _drill_records(suite: Suite) -> list:
    return History(suite.root / "reports" / "t" / "history").records("drill")


def test_an_uninterrupted_run_passes_and_its_records_count(interruptible: Suite) -> None:
    assert interruptible.run().code == 0
    assert [r.status for r in _drill_records(interruptible)] == ["passed", "passed"]


def _interrupted(suite: Suite, point: str, code: int, interrupted: bool) -> dict:
    """Ctrl-C at ``point``: the exit code, a run folder its manifest proves, and the
    history's line for the run, all as expected; readiness.json's checks, by id."""
    outcome = suite.run(env={"POINT": point})
    assert outcome.code == code, outcome.output
    folder = suite.latest()
    data = readiness(folder)
    assert data["run"]["interrupted"] is interrupted
    assert manifest.verify(folder) == []
    runs = (folder.parent / "history" / "runs.jsonl").read_text().splitlines()
    assert json.loads(runs[-1])["interrupted"] is interrupted
    if interrupted:
        assert data["gate"]["passed"] is False
        assert data["gate"]["reasons"] == ["interrupted (Ctrl-C)"]
    return {c["id"]: c["status"] for c in data["checks"]}


@pytest.mark.parametrize("point", POINTS)
def test_ctrl_c_at_any_point_exits_2_with_reports_and_no_passing_record(
    interruptible: Suite, point: str
) -> None:
    statuses = _interrupted(interruptible, point, code=2, interrupted=True)
    if point.startswith("step-"):  # the drill under way did not pass
        assert statuses["INT-002"] == "error"
    if point == "asyncio":  # not turned into a cancellation: it stopped the drill
        assert statuses["INT-003"] == "error"
    if point == "swallowed":  # the library absorbed the Ctrl-C; the engine did not
        assert statuses["INT-003"] == "failed"
    assert all(r.status != "passed" for r in _drill_records(interruptible))


@pytest.mark.parametrize("point", AFTER_THE_VERDICT)
def test_ctrl_c_once_the_verdict_is_written_leaves_the_run_as_judged(
    interruptible: Suite, point: str
) -> None:
    _interrupted(interruptible, point, code=0, interrupted=False)
    assert [r.status for r in _drill_records(interruptible)] == ["passed", "passed"]
