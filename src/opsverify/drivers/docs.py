"""Documentation driver: Markdown headings and anchors, runbook links (and each alerting
rule's), review dates, and the DR objectives a document states. OpenAPI documents:
drivers/openapi.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from opsverify import userfile
from opsverify.drivers import http
from opsverify.drivers.prometheus import AlertingRule
from opsverify.message import Finding


class DocError(Exception):
    """A document that cannot be read the way a check needs it."""


# --- Markdown and runbook links ----------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def headings(text: str) -> list[str]:
    """The ATX headings (``# …`` to ``###### …``) of a Markdown text, outside code fences."""
    found, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and (match := re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)):
            found.append(match[1])
    return found


@dataclass(frozen=True)
class RunbookProblem:
    """Why a runbook_url does not lead to a runbook (``cause`` groups it in messages), or why
    this runner cannot tell (``unreachable``: a host it cannot resolve, reach or log in to)."""

    cause: str
    detail: str
    unreachable: bool = False
    host_down: bool = False  # no answer from its host at all: its other URLs need no try


RUNBOOK_NOT_FOUND = "runbook not found"


def _not_reached(exc: httpx.TransportError) -> str:
    text = str(exc)
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    if "name resolution" in text or "not known" in text or "No address" in text:
        return "name not resolved"
    if "refused" in text:
        return "connection refused"
    return type(exc).__name__


def _fetched_problem(url: str, timeout: float) -> RunbookProblem | None:
    host = urlsplit(url).netloc
    try:
        response = http.get(url, timeout=timeout, follow_redirects=True)
    except httpx.TransportError as exc:
        if "SSL" in str(exc) or "CERTIFICATE" in str(exc):  # it answered: its TLS is the finding
            return RunbookProblem("runbook host fails TLS verification", f"{url}: {exc}")
        cause = f"runbook host {host} not reachable from this runner ({_not_reached(exc)})"
        return RunbookProblem(cause, url, unreachable=True, host_down=True)
    except httpx.HTTPError as exc:  # too many redirects, say
        return RunbookProblem(
            "runbook URL cannot be fetched", f"{url}: {type(exc).__name__}: {exc}"
        )
    status = response.status_code
    if status == 200:
        return None
    if status in (401, 403, 407):  # behind a login this runner does not have
        cause = f"runbook host {host} refuses this runner ({status})"
        return RunbookProblem(cause, url, unreachable=True)
    cause = RUNBOOK_NOT_FOUND if status in (404, 410) else "runbook URL answers an error"
    return RunbookProblem(cause, f"{url} answered {status}")


def runbook_problem(
    url: str, root: Path, timeout: float, within: Path | None = None
) -> RunbookProblem | None:
    """Why ``url`` (an alert's runbook_url) does not lead to a runbook, or None when it does.

    An http(s) URL must answer 200 (404 and 410 say the runbook is missing; a host this
    runner cannot resolve, reach or log in to is unreachable, not missing); anything else is
    a path relative to ``root`` (the repository) that must name an existing file inside
    ``within`` (default: ``root``), and for Markdown, its ``#anchor`` must be one of the
    file's headings.
    """
    if urlsplit(url).scheme in ("http", "https"):
        return _fetched_problem(url, timeout)
    if urlsplit(url).scheme:
        return RunbookProblem(
            "runbook_url not usable", f"{url}: expected an http(s) URL or a repository path"
        )
    path, _, anchor = url.partition("#")
    file = (root / path).resolve()
    if not file.is_relative_to(root.resolve()):
        return RunbookProblem("runbook_url not usable", f"{url} leaves the repository")
    if within is not None and not file.is_relative_to(within.resolve()):
        return RunbookProblem(
            "runbook_url not usable", f"{url} is not in the runbooks folder {within}"
        )
    if not file.is_file():
        return RunbookProblem(RUNBOOK_NOT_FOUND, f"{url}: no file {path} in {root}")
    if (
        anchor
        and file.suffix == ".md"
        and anchor not in {slug(h) for h in headings(file.read_text())}
    ):
        return RunbookProblem(RUNBOOK_NOT_FOUND, f"{url}: {path} has no section #{anchor}")
    return None


@dataclass(frozen=True)
class RuleReview:
    """An alerting rule and what is wrong with it."""

    rule: AlertingRule
    findings: list[Finding]

    def describe(self) -> dict[str, Any]:
        return {**self.rule.describe(), "problems": [f.describe() for f in self.findings]}


def review_alert_rules(
    rules: list[AlertingRule],
    root: Path,
    timeout: float,
    *,
    within: Path | None = None,
    labels: tuple[str, ...] = (),
    annotations: tuple[str, ...] = (),
) -> list[RuleReview]:
    """Each alerting rule with what it lacks (these ``labels``, these ``annotations`` and a
    runbook_url) and why its runbook_url leads to no runbook (see ``runbook_problem``). Each
    URL is followed once, and none more on a host this runner has found unreachable."""
    seen: dict[str, RunbookProblem | None] = {}
    lost: dict[str, RunbookProblem] = {}  # host → why it could not be reached
    reviews = []
    for rule in rules:
        found = [
            Finding("alert", f"no label {n}", rule.rule) for n in labels if not rule.labels.get(n)
        ]
        found += [
            Finding("alert", f"no annotation {n}", rule.rule)
            for n in (*annotations, "runbook_url")
            if not rule.annotations.get(n)
        ]
        url = rule.annotations.get("runbook_url")
        if url and url not in seen:
            host = urlsplit(url).netloc
            seen[url] = (
                lost.get(host) if host in lost else runbook_problem(url, root, timeout, within)
            )
            if seen[url] is not None and seen[url].host_down:
                lost[host] = seen[url]
        if url and (problem := seen[url]):
            item = rule.rule if problem.unreachable else f"{rule.rule}: {problem.detail}"
            found.append(Finding("alert", problem.cause, item, problem.unreachable))
        reviews.append(RuleReview(rule, found))
    return reviews


def findings(reviews: list[RuleReview]) -> list[Finding]:
    """Every finding of every rule, in the rules' order."""
    return [finding for review in reviews for finding in review.findings]


# --- review dates -------------------------------------------------------------------------

# "Last reviewed: 2026-11-27" in any dress: Markdown bold, a list item, YAML (front matter or
# a top-level key last_reviewed), quoted or not.
_REVIEWED = re.compile(
    r"^[\s>*_#-]*last[ _-]reviewed[*_]*\s*:[*_]*\s*[\"']?(\d{4}-\d{2}-\d{2})\b",
    re.IGNORECASE | re.MULTILINE,
)


def last_reviewed(text: str) -> tuple[date, str] | None:
    """The review date a document states, and the line that states it; None without one."""
    match = _REVIEWED.search(text)
    if match is None:
        return None
    try:
        when = date.fromisoformat(match[1])
    except ValueError:
        return None
    return when, match[0].strip()


# --- DR objectives ------------------------------------------------------------------------

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+?)s?\s*$", re.IGNORECASE)


def duration(value: Any) -> timedelta | None:
    """``4 hours``, ``15 min``, ``4h``, ``15m``, ``30 seconds`` → timedelta; None if not one."""
    match = _AMOUNT.match(str(value))
    if not match or match[2].lower() not in _UNITS:
        return None
    return timedelta(seconds=float(match[1]) * _UNITS[match[2].lower()])


_MARKDOWN_OBJECTIVE = re.compile(
    r"\b(RTO|RPO)\b[^:\n]*:[*_\s]*(\d+(?:\.\d+)?\s*[a-z]+)", re.IGNORECASE
)
_YAML_KEYS = {"rto": "rto", "rpo": "rpo", "recovery_time_objective": "rto"}
_YAML_KEYS |= {"recovery_point_objective": "rpo"}


def _walk_yaml(node: Any, found: dict[str, tuple[timedelta, str]], where: str = "") -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            name = _YAML_KEYS.get(str(key).lower())
            if name and name not in found and (parsed := duration(value)) is not None:
                found[name] = (parsed, f"{here}: {value}")
            else:
                _walk_yaml(value, found, here)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _walk_yaml(item, found, f"{where}[{index}]")


def dr_objectives(path: Path) -> dict[str, tuple[timedelta, str]]:
    """RTO and RPO stated in a DR document: ``{"rto": (value, where it says so), …}``.

    YAML (``.yaml``/``.yml``): the first key ``rto``/``rpo`` (or ``recovery_time_objective``…)
    anywhere in it, with a value like ``4 hours`` or ``15m``. Anything else is read as text:
    the first ``RTO …: 4 hours`` and ``RPO …: 15 minutes`` lines.
    """
    found: dict[str, tuple[timedelta, str]] = {}
    try:
        text = userfile.read_text(path, "DR document", userfile.MAX_DOCUMENT_BYTES)
        if path.suffix in (".yaml", ".yml"):
            for document in userfile.parse_yaml(text, str(path)):
                _walk_yaml(document, found)
            return found
    except userfile.UserFileError as exc:
        raise DocError(str(exc)) from None
    for match in _MARKDOWN_OBJECTIVE.finditer(text):
        name = match[1].lower()
        if name not in found and (parsed := duration(match[2])) is not None:
            found[name] = (parsed, match[0].strip())
    return found


def today() -> date:
    return datetime.now().astimezone().date()
