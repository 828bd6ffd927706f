"""Failure messages: the line a reader sees first in the terminal and in every report.

A message is masked before anything is cut: a cut inside a secret would leave a fragment no
redactor recognises. It is shortened at a word boundary and says how much it left out, and a
long list states its count and where the rest is, never stopping mid-item with no count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from opsverify.check import unreachable
from opsverify.evidence import REDACTOR

LIMIT = 2000  # characters of a check's message in the reports
FIRST = 10  # items of a long list named in a message; all of them are in the evidence
_BREAKS = " \t\n;,"


def one_line(text: str) -> str:
    """Lines joined into one, blank ones dropped: a message is a line in a table."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def head(text: str, limit: int = LIMIT) -> str:
    """The start of ``text``, masked, cut at the last word boundary within ``limit``."""
    text = REDACTOR.text(text)
    if len(text) <= limit:
        return text
    cut = max(text.rfind(c, 0, limit) for c in _BREAKS)
    kept = text[: cut if cut > limit // 2 else limit].rstrip(_BREAKS)
    return f"{kept} … [{len(text) - len(kept)} more characters]"


def tail(text: str, limit: int = LIMIT) -> str:
    """The end of ``text`` (where a tool's output says what went wrong), masked, starting at a
    word boundary within the last ``limit`` characters."""
    text = REDACTOR.text(text).strip()
    if len(text) <= limit:
        return text
    start = len(text) - limit
    found = [i for i in (text.find(c, start) for c in _BREAKS) if i != -1]
    begin = min(found) + 1 if found and min(found) < start + limit // 2 else start
    kept = text[begin:].lstrip(_BREAKS)
    return f"[{len(text) - len(kept)} characters before] … {kept}"


def listing(items: Sequence[str], noun: str, cause: str = "", first: int = FIRST) -> str:
    """``39 alerts: runbook not found; first 10: a; b; …; all 39 in the evidence``; a list of
    up to ``first`` items is named whole."""
    count = f"{len(items)} {noun}" + (f": {cause}" if cause else "")
    if len(items) <= first:
        return f"{count}: " + "; ".join(items)
    return (
        f"{count}; first {first}: "
        + "; ".join(items[:first])
        + f"; all {len(items)} in the evidence"
    )


@dataclass(frozen=True)
class Finding:
    """One problem a check found about one ``item`` (an alert, a query): messages group the
    findings of one ``cause`` and count them. An ``unreachable`` one says only that this
    runner could not tell ("cannot verify from here")."""

    noun: str  # what the item is, singular: "alert", "required alert"
    cause: str
    item: str
    unreachable: bool = False

    def describe(self) -> dict[str, str | bool]:
        return {"cause": self.cause, "item": self.item, "unreachable": self.unreachable}


def grouped(findings: Sequence[Finding]) -> str:
    """``2 alerts: no annotation summary: a; b | 39 alerts: runbook host … not reachable from
    this runner; first 10: …; all 39 in the evidence``: one counted list per cause, the
    findings before what could not be verified."""
    groups: dict[tuple[bool, str, str], list[str]] = {}
    for finding in findings:
        groups.setdefault((finding.unreachable, finding.noun, finding.cause), []).append(
            finding.item
        )
    return " | ".join(
        listing(items, noun if len(items) == 1 else f"{noun}s", cause)
        for (_, noun, cause), items in sorted(groups.items(), key=lambda group: group[0][0])
    )


def conclude(findings: Sequence[Finding]) -> None:
    """Fail the running check with its findings grouped by cause; when every one of them only
    says this runner could not tell, fail it as unreachable. Nothing found: return."""
    if not findings:
        return
    text = grouped(findings)
    if all(finding.unreachable for finding in findings):
        unreachable(text)
    raise AssertionError(text)
