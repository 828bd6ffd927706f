"""A run: one invocation against one environment, and the folder that proves it.

``reports/<env>/<run-id>/`` holds allure-results, the HTML report, readiness.json,
junit.xml, summary.md, evidence/ and manifest.json; ``reports/<env>/history/`` gets a line
per finished run and one per activity it performed (see opsverify.history).
"""

from __future__ import annotations

import getpass
import os
import platform
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsverify import gate, interrupt
from opsverify import score as scoring
from opsverify.history import FOLDER as HISTORY_FOLDER
from opsverify.history import History, Record
from opsverify.profile import Profile
from opsverify.result import CheckResult

REPORTS_DIR = "reports"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Run:
    directory: Path
    profile: Profile
    cadence: str | None
    policy: gate.Policy
    started: datetime = field(default_factory=_now)
    results: dict[str, CheckResult] = field(default_factory=dict)
    finished: datetime | None = None
    interrupted: bool = False
    score: scoring.Score | None = None
    verdict: gate.Verdict | None = None
    html_report: Path | None = None
    notes: list[str] = field(default_factory=list)

    @staticmethod
    def new_dir(root: Path, profile: Profile, override: str | None) -> Path:
        if override:
            chosen = Path(override).resolve()
            # A run folder is hashed and swept for secrets whole: never someone else's files.
            if chosen.exists() and (not chosen.is_dir() or any(chosen.iterdir())):
                raise ValueError(f"--run-dir {chosen}: must not exist yet or be an empty folder")
            return chosen
        # Milliseconds, so run ids sort in the order the runs started.
        now = _now()
        stamp = now.strftime("%Y%m%dT%H%M%S") + f".{now.microsecond // 1000:03d}Z"
        return root / REPORTS_DIR / profile.name / f"{stamp}-{secrets.token_hex(2)}"

    @property
    def id(self) -> str:
        return self.directory.name

    @property
    def allure_results(self) -> Path:
        return self.directory / "allure-results"

    @property
    def junit_xml(self) -> Path:
        return self.directory / "junit.xml"

    @property
    def evidence(self) -> Path:
        return self.directory / "evidence"

    @property
    def health_notes(self) -> Path:
        """Where workers note each health check's outcome for the run's traffic checks."""
        return self.directory / ".health"

    @property
    def history(self) -> History:
        return History(self.directory.parent / HISTORY_FOLDER, current=self.id)

    def ordered_results(self) -> list[CheckResult]:
        return sorted(self.results.values(), key=lambda r: (r.meta.id, r.nodeid))

    def finish(self, *, stopped: str | None = None) -> None:
        """Score, gate, write every artifact, then the manifest and the history line.

        ``stopped`` says why the run did not complete; such a run never passes the gate.
        """
        from opsverify import report

        # A Ctrl-C now would leave a run without a verdict: it waits, and the reports say
        # the run was interrupted if it came before the verdict was written.
        with interrupt.deferred("writing the run's reports", then_stop=False):
            self.finished = _now()
            self.conclude(stopped)
            self.directory.mkdir(parents=True, exist_ok=True)
            # The workers' notes to each other are not part of the run's record.
            shutil.rmtree(self.health_notes, ignore_errors=True)
            report.write_all(self)
            self._append_history()

    def conclude(self, stopped: str | None) -> None:
        """Score and verdict; ``stopped`` (or a Ctrl-C seen by now) fails the gate."""
        if stopped is None and interrupt.received():
            stopped = interrupt.REASON
        self.interrupted = stopped is not None
        results = self.ordered_results()
        self.score = scoring.compute(results)
        self.verdict = gate.evaluate(self.score, results, self.policy)
        if stopped is not None:
            self.verdict = gate.Verdict(False, self.policy, (stopped,))

    def context(self) -> dict[str, Any]:
        """Who ran what, where and when: the audit header of every report."""
        return {
            "id": self.id,
            "environment": self.profile.name,
            "tier": str(self.profile.tier),
            "profile": str(self.profile.source) if self.profile.source else None,
            "cadence": self.cadence,
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat() if self.finished else None,
            "duration_seconds": round((self.finished - self.started).total_seconds(), 3)
            if self.finished
            else None,
            "interrupted": self.interrupted,
            "operator": _operator(),
            "host": platform.node(),
            "opsverify_version": _version(),
        }

    def _append_history(self) -> None:
        assert self.score is not None and self.verdict is not None and self.finished
        self.history.append_run(
            {
                "run": self.id,
                "started": self.started.isoformat(),
                "cadence": self.cadence,
                "score": self.score.value,
                "gate": "passed" if self.verdict.passed else "failed",
                "counts": self.score.overall.to_dict()["counts"],
                # Its activities' records count only if it was not interrupted.
                "interrupted": self.interrupted,
                "path": os.path.relpath(self.directory, self.history.folder),
            }
        )

    def record(self, result: CheckResult) -> None:
        """An activity check finished: remember it at once, so the checks of this same run
        that ask whether the activity passed (APP-012..014, run last) can see it."""
        if result.meta.records:
            # Not applicable is remembered too: the activity was due and did not happen.
            record = Record(
                activity=result.meta.records,
                check=result.meta.id,
                parameter=result.parameter,
                run=self.id,
                finished=_now(),
                status=str(result.status),
                message=result.message,
                figures=result.figures,
                details=result.details,
            )
            self.history.append_records([record])


def _operator() -> str:
    try:
        return getpass.getuser()
    except OSError:  # no passwd entry, e.g. an arbitrary container uid
        return str(os.getuid())


def _version() -> str:
    from importlib.metadata import version

    return version("opsverify")
