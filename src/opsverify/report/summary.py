"""summary.md: the run in a page of Markdown, ready for a CI step summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from opsverify import message as text
from opsverify.result import Status

if TYPE_CHECKING:
    from opsverify.run import Run

FILENAME = "summary.md"
_ICON = {
    Status.passed: "✅",
    Status.failed: "❌",
    Status.error: "💥",
    Status.not_applicable: "➖",
    Status.waived: "🛡️",
}


def _fmt(score: float | None) -> str:
    return "n/a" if score is None else f"{score:g}"


def render(run: Run) -> str:
    assert run.score is not None and run.verdict is not None
    verdict = "PASSED" if run.verdict.passed else "FAILED"
    ctx = run.context()
    lines = [
        f"# Readiness: {run.profile.name} — gate {verdict}",
        "",
        f"**Score {_fmt(run.score.value)}** (minimum {run.verdict.min_score:g}) · "
        f"run `{run.id}` · cadence {run.cadence or 'all'} · {ctx['started']} "
        f"· by {ctx['operator']}",
        "",
    ]
    lines += [f"- {reason}" for reason in run.verdict.reasons]
    lines += [
        "",
        "| Category | Passed | Failed | Error | N/A | Score |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, tally in run.score.categories.items():
        c = tally.counts
        lines.append(
            f"| {name} | {c['passed']} | {c['failed']} | {c['error']} | "
            f"{c['not_applicable']} | {_fmt(tally.score)} |"
        )
    lines += ["", "| | Check | Severity | Parameter | Message |", "|---|---|---|---|---|"]
    for r in run.ordered_results():
        message = text.head(r.message, 200).replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {_ICON[r.status]} | {r.meta.id} {r.meta.title} | {r.meta.severity} | "
            f"{r.parameter or ''} | {message} |"
        )
    lines += [""] + [f"> {note}" for note in run.notes]
    return "\n".join(lines) + "\n"


def write(run: Run) -> Path:
    path = run.directory / FILENAME
    path.write_text(render(run))
    return path
