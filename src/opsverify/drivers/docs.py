"""Documentation driver: Markdown headings and anchors, runbook links, review dates, and the DR
objectives a document states. OpenAPI documents: drivers/openapi.py."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml


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


def runbook_problem(url: str, root: Path, timeout: float, within: Path | None = None) -> str | None:
    """Why ``url`` (an alert's runbook_url) does not lead to a runbook, or None when it does.

    An http(s) URL must answer 200; anything else is a path relative to ``root`` (the
    repository) that must name an existing file inside ``within`` (default: ``root``), and
    for Markdown, its ``#anchor`` must be one of the file's headings.
    """
    if urlsplit(url).scheme in ("http", "https"):
        try:
            response = httpx.get(url, timeout=timeout, follow_redirects=True)
        except httpx.HTTPError as exc:
            return f"{url} cannot be fetched: {type(exc).__name__}: {exc}"
        return None if response.status_code == 200 else f"{url} answered {response.status_code}"
    if urlsplit(url).scheme:
        return f"{url}: expected an http(s) URL or a path relative to the repository"
    path, _, anchor = url.partition("#")
    file = (root / path).resolve()
    if not file.is_relative_to(root.resolve()):
        return f"{url} leaves the repository"
    if within is not None and not file.is_relative_to(within.resolve()):
        return f"{url} is not in the runbooks folder {within}"
    if not file.is_file():
        return f"{url}: no file {path} in {root}"
    if (
        anchor
        and file.suffix == ".md"
        and anchor not in {slug(h) for h in headings(file.read_text())}
    ):
        return f"{url}: {path} has no section #{anchor}"
    return None


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
    text = path.read_text()
    found: dict[str, tuple[timedelta, str]] = {}
    if path.suffix in (".yaml", ".yml"):
        try:
            _walk_yaml(yaml.safe_load(text), found)
        except yaml.YAMLError as exc:
            raise DocError(f"{path}: not valid YAML: {exc}") from None
        return found
    for match in _MARKDOWN_OBJECTIVE.finditer(text):
        name = match[1].lower()
        if name not in found and (parsed := duration(match[2])) is not None:
            found[name] = (parsed, match[0].strip())
    return found


def today() -> date:
    return datetime.now().astimezone().date()
