"""JUnit XML driver: read a test report (``<testsuites>`` or a bare ``<testsuite>`` root) into
counts, failing test names and the time the tests ran."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsverify import message as text


class JunitError(Exception):
    """A file that is not a readable JUnit XML report."""


@dataclass(frozen=True)
class JunitReport:
    path: Path
    suites: int
    tests: int
    failures: int
    errors: int
    skipped: int
    failing: list[str] = field(default_factory=list)  # "classname::name: first line of message"
    ran_at: datetime | None = None  # the oldest suite timestamp; None when no suite has one
    ran_at_source: str = "file mtime"

    def evidence(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "suites": self.suites,
            "tests": self.tests,
            "failures": self.failures,
            "errors": self.errors,
            "skipped": self.skipped,
            "failing": self.failing,
        }


def _timestamp(text: str) -> tuple[datetime, bool]:
    """An ISO 8601 suite timestamp; one without a zone (Surefire, Ant) is read as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC), False
    return value, True


def _int(element: ET.Element, name: str) -> int:
    """A count attribute; an unreadable one is an error, never a silent zero failures."""
    text = element.get(name) or "0"
    try:
        return int(float(text))
    except ValueError:
        raise JunitError(f"suite {element.get('name')!r}: {name}={text!r} is not a count") from None


def _first_line(element: ET.Element) -> str:
    message = element.get("message") or (element.text or "").strip()
    return text.head(message.splitlines()[0], 200) if message else ""


def parse(path: Path) -> JunitReport:
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise JunitError(f"{path}: test report not found") from None
    except (ET.ParseError, OSError) as exc:
        raise JunitError(f"{path}: not readable as JUnit XML: {exc}") from None
    if root.tag == "testsuite":
        suites = [root]
    elif root.tag == "testsuites":
        suites = list(root.iter("testsuite"))
    else:
        raise JunitError(f"{path}: root element <{root.tag}>, expected <testsuites> or <testsuite>")

    cases = list(root.iter("testcase"))
    failing: list[str] = []
    if cases:  # count what ran, not what the header claims
        failures = errors = skipped = 0
        for case in cases:
            name = "::".join(p for p in (case.get("classname"), case.get("name")) if p)
            failure, error = case.find("failure"), case.find("error")
            if failure is not None:
                failures += 1
            if error is not None:
                errors += 1
            if case.find("skipped") is not None:
                skipped += 1
            problem = failure if failure is not None else error
            if problem is not None:
                detail = _first_line(problem)
                failing.append(f"{name}: {detail}" if detail else name)
        tests = len(cases)
    else:  # a summary-only report: the suite attributes are all there is
        leaves = [s for s in suites if s.find("testsuite") is None]
        tests = sum(_int(s, "tests") for s in leaves)
        failures = sum(_int(s, "failures") for s in leaves)
        errors = sum(_int(s, "errors") for s in leaves)
        skipped = sum(_int(s, "skipped") + _int(s, "disabled") for s in leaves)

    stamps = []
    zoned = True
    for suite in [root, *suites]:
        if suite.get("timestamp"):
            try:
                value, has_zone = _timestamp(suite.get("timestamp", ""))
            except ValueError:
                raise JunitError(
                    f"{path}: suite timestamp {suite.get('timestamp')!r} is not ISO 8601"
                ) from None
            stamps.append(value)
            zoned = zoned and has_zone
    source = "file mtime"
    if stamps:
        source = "suite timestamp" + ("" if zoned else " (no time zone given, read as UTC)")
    return JunitReport(
        path=path,
        suites=len(suites),
        tests=tests,
        failures=failures,
        errors=errors,
        skipped=skipped,
        failing=failing,
        ran_at=min(stamps) if stamps else None,
        ran_at_source=source,
    )


def produced_at(report: JunitReport) -> tuple[datetime, str]:
    """When the tests ran: the suite timestamp, else the file's modification time."""
    if report.ran_at is not None:
        return report.ran_at, report.ran_at_source
    return datetime.fromtimestamp(report.path.stat().st_mtime, UTC), "file mtime"
