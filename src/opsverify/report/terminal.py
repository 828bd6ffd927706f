"""The terminal: a live progress line while checks run, then the score table and the verdict."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from opsverify import message
from opsverify.check import NOT_APPLICABLE, meta_of
from opsverify.result import CheckResult, Status

if TYPE_CHECKING:
    from opsverify.gate import Verdict
    from opsverify.run import Run
    from opsverify.score import Score

_STYLE = {
    Status.passed: "green",
    Status.failed: "red",
    Status.error: "magenta",
    Status.not_applicable: "dim",
    Status.waived: "yellow",
}
_LABEL = {
    Status.passed: "PASS",
    Status.failed: "FAIL",
    Status.error: "ERROR",
    Status.not_applicable: "N/A",
    Status.waived: "WAIVED",
}


def _console() -> Console:
    # A CI log is no 80-column terminal: give tables room unless COLUMNS says otherwise.
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(file=sys.stdout, highlight=False, width=160 if wide else None)


class Progress:
    """One line rewritten in place on a terminal; one line per check in a CI log."""

    def __init__(self) -> None:
        self.console = _console()
        self.total = 0
        self.done = 0
        self.counts: Counter[Status] = Counter()

    def start(self, total: int) -> None:
        self.total = max(self.total, total)

    def advance(self, result: CheckResult) -> None:
        self.done += 1
        self.counts[result.status] += 1
        label = result.meta.id + (f"[{result.parameter}]" if result.parameter else "")
        if self.console.is_terminal:
            tally = " ".join(f"{n} {_LABEL[s].lower()}" for s, n in sorted(self.counts.items()))
            line = f"[{self.done}/{self.total}] {tally} · {label}"
            self.console.file.write("\r\x1b[2K" + line[: self.console.width - 1])
            self.console.file.flush()
        else:  # a CI log: plain lines, no rendering cost per check
            line = f"[{self.done}/{self.total}] {_LABEL[result.status]:<6} {label}\n"
            self.console.file.write(line)

    def stop(self) -> None:
        if self.console.is_terminal and self.done:
            self.console.file.write("\n")


def _fmt(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.1f}"


def print_summary(run: Run) -> None:
    assert run.score is not None and run.verdict is not None
    console = _console()
    table = Table(
        title=f"Readiness — {run.profile.name} ({run.profile.tier})", title_justify="left"
    )
    for column in ("Category", "Passed", "Failed", "Error", "N/A", "Score"):
        table.add_column(column, justify="left" if column == "Category" else "right")
    for name, tally in run.score.categories.items():
        c = tally.counts
        table.add_row(
            name,
            str(c["passed"]),
            str(c["failed"]),
            str(c["error"]),
            str(c["not_applicable"]),
            _fmt(tally.score),
        )
    console.print(table)
    shown = (Status.failed, Status.error, Status.waived)
    problems = [r for r in run.ordered_results() if r.status in shown]
    for r in problems:
        where = escape(f"{r.meta.id}[{r.parameter}]" if r.parameter else r.meta.id)
        reach = " (unreachable)" if r.unreachable else ""
        console.print(
            f"[{_STYLE[r.status]}]{_LABEL[r.status]}[/] {where} {r.meta.severity}{reach}: "
            f"{escape(r.meta.title)} — {escape(message.head(r.message, 300))}",
            markup=True,
            soft_wrap=True,
        )
    print_verdict(console, run.score.value, run.verdict)
    for note in run.notes:
        console.print(f"note: {note}", markup=False)
    target = run.html_report or run.directory
    console.print(f"Report: {target}", markup=False, soft_wrap=True)


def print_verdict(console: Console, score: float | None, verdict: Verdict) -> None:
    state = "[green]PASSED[/]" if verdict.passed else "[red]FAILED[/]"
    console.print(
        f"Readiness score: [bold]{_fmt(score)}[/] (minimum {verdict.min_score:g}) · gate {state}",
        markup=True,
    )
    for reason in verdict.reasons:
        console.print(f"  - {reason}", markup=False)


def print_replay(run: dict[str, Any], score: Score, verdict: Verdict) -> None:
    console = _console()
    console.print(
        f"Run {run['id']} of {run['environment']} ({run['started']}), manifest verified",
        markup=False,
    )
    print_verdict(console, score.value, verdict)


def print_selection(items: list[Any]) -> None:
    """`opsverify list`: the checks a run would select, one row per parameter."""
    table = Table(title_justify="left")
    for column in ("Id", "Severity", "Cadences", "Category", "Parameter"):
        table.add_column(column, no_wrap=True)
    table.add_column("Title")
    count = 0
    for item in items:
        meta = meta_of(getattr(item, "function", None))
        if meta is None:
            continue
        count += 1
        skip = item.get_closest_marker("skip")
        reason = skip.kwargs.get("reason", "") if skip else ""
        callspec = getattr(item, "callspec", None)
        parameter = reason.replace(NOT_APPLICABLE, "n/a: ") if reason else ""
        replayed = item.get_closest_marker("opsverify_replay") is not None
        table.add_row(
            meta.id,
            str(meta.severity),
            ",".join(meta.cadences),
            str(meta.category),
            escape(parameter or (callspec.id if callspec else "")),
            escape(meta.title) + (" [dim](read back from the history)[/]" if replayed else ""),
        )
    table.title = f"{count} checks selected"
    _console().print(table)


def print_components(components: list[Any]) -> None:
    """`opsverify sandbox up|status`: what runs where."""
    table = Table(title="Sandbox", title_justify="left")
    for column in ("Component", "State", "PID", "Address"):
        table.add_column(column)
    for c in components:
        style = "green" if c.state == "running" else "red"
        table.add_row(c.name, f"[{style}]{c.state}[/]", str(c.pid or "-"), c.address)
    _console().print(table)


def print_controls(folder: Path, data: dict[str, Any]) -> None:
    """`opsverify controls`: one block per control, the way an auditor walks a run."""
    from opsverify.report import controls

    console = _console()
    run = data["run"]
    console.print(f"Run {run['id']} of {run['environment']} ({run['started']})", markup=False)
    table = Table(title_justify="left", show_lines=True)
    for column in ("Control", "Status", "Check", "Result", "Evidence"):
        table.add_column(column, no_wrap=column != "Evidence")
    for control, checks in controls.by_control(data).items():
        verdict = controls.status(checks)
        style = {"failing": "red", "not assessed": "dim"}.get(verdict, "green")
        rows = [
            (
                escape(c["id"] + (f"[{c['parameter']}]" if c["parameter"] else "")),
                c["status"],
                escape("\n".join(str(folder / e) for e in c["evidence"]) or "-"),
            )
            for c in checks
        ]
        check_ids, results, evidence = ("\n".join(col) for col in zip(*rows, strict=True))
        table.add_row(control, f"[{style}]{verdict}[/]", check_ids, results, evidence)
    console.print(table)


def print_drills(environment: str, records: list[Any]) -> None:
    """`opsverify drills`: every drill recorded, oldest first, with its measured RTO and RPO
    against the objectives and the change since the previous drill of the same check."""
    console = _console()
    if not records:
        console.print(f"No drill recorded for {environment} yet.", markup=False)
        return
    table = Table(title=f"Drills — {environment}", title_justify="left")
    for column in ("Finished", "Run", "Drill", "Status", "RTO", "RPO", "Trend"):
        table.add_column(column)
    previous: dict[tuple[str, str | None], Any] = {}
    for record in records:
        key = (record.check, record.parameter)
        figures, before = record.figures, previous.get(key)
        trend = [
            _change(
                label, figures.get(f"{label.lower()}_s"), before.figures.get(f"{label.lower()}_s")
            )
            for label in ("RTO", "RPO")
            if before is not None
        ]
        style = "green" if record.status == "passed" else "red"
        table.add_row(
            f"{record.finished:%Y-%m-%d %H:%M}",
            escape(record.run),
            escape(record.check + (f"[{record.parameter}]" if record.parameter else "")),
            f"[{style}]{record.status}[/]",
            _measured(figures, "rto"),
            _measured(figures, "rpo"),
            ", ".join(t for t in trend if t) or "-",
        )
        previous[key] = record
    console.print(table)


def _measured(figures: dict[str, Any], name: str) -> str:
    value, objective = figures.get(f"{name}_s"), figures.get(f"{name}_objective_s")
    if value is None:
        return "-"
    shown = f"{value:.1f} s"
    if objective is not None:
        style = "green" if value <= objective else "red"
        shown = f"[{style}]{shown}[/] of {objective:g} s"
    return shown


def _change(label: str, now: float | None, then: float | None) -> str:
    if now is None or then is None:
        return ""
    return f"{label} {now - then:+.1f} s"
