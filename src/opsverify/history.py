"""History: what earlier runs against an environment did, kept in ``reports/<env>/history/``.

``runs.jsonl`` gets one line per finished run (score, gate, counts); ``records.jsonl`` one
line per finished instance of an *activity* check (a load test, a chaos experiment, a drill:
``@check(..., records="load")``) with its status and what it measured. Later runs read the
records back: the checklist's "load testing completed" asks when a load test last passed.

An activity that takes the service down on purpose (a failover drill, a chaos experiment)
declares when in its record (``details["declared_window"]``), with the outages it measured
through the load balancer inside that time: what users saw of it. SLO-001 reads these windows
back: inside one, the stopped scrape targets do not stand for users' experience, the
measured outages do.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

FOLDER = "history"
RUNS = "runs.jsonl"
RECORDS = "records.jsonl"
WINDOW_KEY = "declared_window"  # in a record's details
# How long a reader waits for the activities of its own run (a 10-minute load test on
# another xdist worker); readers carry a pytest-timeout above it.
ACTIVITY_WAIT_S = 1800
INTERRUPTED = "interrupted"  # the status of a record whose run was interrupted


class HistoryError(ValueError):
    """A history file that cannot be read: names the file, the line and the problem."""


@dataclass(frozen=True)
class Record:
    activity: str
    check: str
    parameter: str | None
    run: str
    finished: datetime  # when the run that performed it finished
    status: str
    message: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # e.g. a drill's step log

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "finished": self.finished.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        finished = datetime.fromisoformat(data["finished"])
        if finished.tzinfo is None:
            raise ValueError("finished has no time zone")
        return cls(**{**data, "finished": finished})


@dataclass(frozen=True)
class Span:
    """A stretch of time; ``during`` says which part of an activity it fell in."""

    start: datetime
    end: datetime
    during: str = ""

    @property
    def seconds(self) -> float:
        return max(0.0, (self.end - self.start).total_seconds())

    def to_dict(self) -> dict[str, Any]:
        found = {"start": self.start.isoformat(), "end": self.end.isoformat()}
        return {
            **found,
            "seconds": round(self.seconds, 3),
            **({"during": self.during} if self.during else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Span:
        start, end = (datetime.fromisoformat(data[key]) for key in ("start", "end"))
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("a time without a time zone")
        return cls(start, end, data.get("during", ""))


@dataclass(frozen=True)
class DeclaredWindow:
    """When an activity took the service down on purpose, the outages it measured inside that
    time through the load balancer (``measured_at``), and, read back, its record."""

    span: Span
    outages: tuple[Span, ...] = ()
    measured_at: str = ""
    record: Record | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.span.to_dict(),
            "outages": [o.to_dict() for o in self.outages],
            "measured_at": self.measured_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], record: Record | None = None) -> DeclaredWindow:
        outages = tuple(Span.from_dict(o) for o in data.get("outages", []))
        return cls(Span.from_dict(data), outages, data.get("measured_at", ""), record)


@dataclass(frozen=True)
class History:
    """An environment's history. A record counts once its run has finished (a runs.jsonl
    line says so) and was not interrupted: an interrupted run's records read back as
    ``interrupted``, those of a run still going or killed not at all; ``current`` (the run
    reading) sees its own."""

    folder: Path
    current: str | None = None

    def append_run(self, line: dict[str, Any]) -> None:
        self._append(RUNS, [line])

    def append_records(self, records: Iterable[Record]) -> None:
        self._append(RECORDS, [r.to_dict() for r in records])

    def records(self, activity: str) -> list[Record]:
        """Every record of ``activity`` of a finished run (or of the current one), oldest
        first; an interrupted run's with status ``interrupted``."""
        found = [record for _, record in self._records() if record.activity == activity]
        return sorted(found, key=lambda r: r.finished)

    def declared_windows(self, since: datetime) -> list[DeclaredWindow]:
        """The windows activities declared (any activity) that end after ``since``, each with
        its record, in the order they were recorded (an interrupted drill's outage happened
        too)."""
        found = []
        for number, record in self._records():
            data = record.details.get(WINDOW_KEY)
            if data is None:
                continue
            try:
                window = DeclaredWindow.from_dict(data, record)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                where = f"{self.folder / RECORDS}: line {number}: {WINDOW_KEY}"
                raise HistoryError(f"{where}: not a declared window ({exc!r})") from None
            if window.span.end > since:
                found.append(window)
        return found

    def _records(self) -> list[tuple[int, Record]]:
        """Every record of a finished run or of the current one, with its line number."""
        path = self.folder / RECORDS
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            return []
        ended = self._runs()
        found = []
        for number, line in enumerate(lines, start=1):
            try:
                record = Record.from_dict(json.loads(line))
            except (ValueError, TypeError, KeyError) as exc:
                raise HistoryError(f"{path}: line {number}: not a history record ({exc})") from None
            known = record.run in ended or record.run == self.current
            if not known:
                continue
            if ended.get(record.run):
                record = replace(record, status=INTERRUPTED)
            found.append((number, record))
        return found

    def _runs(self) -> dict[str, bool]:
        """Every finished run, and whether it was interrupted."""
        try:
            lines = (self.folder / RUNS).read_text().splitlines()
        except FileNotFoundError:
            return {}
        found = {}
        for line in lines:
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                data = json.loads(line)
                found[data["run"]] = bool(data.get("interrupted", False))
        return found

    def recorded(self, run: str) -> set[tuple[str, str | None]]:
        """The check instances (id, parameter) run ``run`` has recorded so far."""
        try:
            lines = (self.folder / RECORDS).read_text().splitlines()
        except FileNotFoundError:
            return set()
        found = set()
        for line in lines:
            with contextlib.suppress(ValueError, AttributeError):  # the readers' to report
                data = json.loads(line)
                if data.get("run") == run:
                    found.add((data.get("check"), data.get("parameter")))
        return found

    def _append(self, name: str, lines: list[dict[str, Any]]) -> None:
        if not lines:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        # One write per run: concurrent runs of one environment interleave whole lines only.
        text = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines)
        with (self.folder / name).open("a") as handle:
            handle.write(text)
