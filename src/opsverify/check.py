"""Check metadata: the ``@check`` decorator that turns a pytest function into a readiness check.

A check is identified by a stable id (``TLS-002``), scored by its severity, selected by its
cadences and mapped to compliance controls. The metadata rides on the function and is copied
onto every pytest report, so the controller process can score a run collected by xdist
workers it never saw.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

ATTRIBUTE = "__opsverify_check__"
NOT_APPLICABLE = "not applicable: "


class Severity(StrEnum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"


class Cadence(StrEnum):
    predeploy = "predeploy"
    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"
    quarterly = "quarterly"


# How long the result of an activity (a drill, an experiment) done at this cadence counts:
# a run that does not repeat it reads it back from the history for this long.
FRESH_FOR = {
    Cadence.weekly: timedelta(days=7),
    Cadence.monthly: timedelta(days=31),
    Cadence.quarterly: timedelta(days=92),
}


class Category(StrEnum):
    infrastructure = "infrastructure"
    application = "application"
    monitoring = "monitoring"
    security = "security"
    documentation = "documentation"
    incident = "incident"
    slo = "slo"
    backup = "backup"
    dr = "dr"
    load = "load"
    chaos = "chaos"
    operations = "operations"


_ID = re.compile(r"^[A-Z]{2,5}-\d{3}$")
_CONTROL = re.compile(r"^(SOC2|ISO27001):[A-Z0-9.\-]+$")
_ACTIVITY = re.compile(r"^[a-z][a-z0-9-]*$")


@dataclass(frozen=True)
class CheckMeta:
    id: str
    title: str
    category: Category
    severity: Severity
    cadences: tuple[Cadence, ...]
    controls: tuple[str, ...]
    runbook: str
    destructive: bool = False
    # The activity each run of this check is recorded as in the history (load, chaos,
    # restore-drill…), so later checks and scores can ask when it last passed.
    records: str | None = None
    # Whether a run of another cadence reads the newest record back as this check's result.
    # False: recorded only for other checks to read (the monthly full read of a backup
    # repository counts for the daily check's coverage, not as a result of its own).
    replayed: bool = True

    @property
    def fresh_for(self) -> timedelta | None:
        """How long a recorded result of this activity counts (its most frequent periodic
        cadence's period); None: it is not an activity that is read back, or none of its
        cadences is periodic."""
        periods = [FRESH_FOR[c] for c in self.cadences if c in FRESH_FOR]
        return min(periods) if self.records and self.replayed and periods else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cadences"] = list(self.cadences)
        data["controls"] = list(self.controls)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckMeta:
        return cls(
            id=data["id"],
            title=data["title"],
            category=Category(data["category"]),
            severity=Severity(data["severity"]),
            cadences=tuple(Cadence(c) for c in data["cadences"]),
            controls=tuple(data["controls"]),
            runbook=data["runbook"],
            destructive=data.get("destructive", False),
            records=data.get("records"),
            replayed=data.get("replayed", True),
        )


def check(
    id: str,
    title: str,
    *,
    category: Category | str,
    severity: Severity | str,
    cadences: Iterable[Cadence | str],
    controls: Iterable[str],
    runbook: str,
    destructive: bool = False,
    records: str | None = None,
    replayed: bool = True,
) -> Callable[[F], F]:
    """Declare a function a readiness check. Bad metadata fails at import, i.e. collection."""
    if not _ID.match(id):
        raise ValueError(f"check id {id!r}: expected letters, a dash and 3 digits, e.g. TLS-001")
    bad = [c for c in controls if not _CONTROL.match(c)]
    if bad:
        raise ValueError(f"check {id}: controls {bad} must look like SOC2:CC7.2 or ISO27001:A.8.13")
    if records is not None and not _ACTIVITY.match(records):
        raise ValueError(f"check {id}: records={records!r} must be a lower-case activity name")
    meta = CheckMeta(
        id=id,
        title=title,
        category=Category(category),
        severity=Severity(severity),
        cadences=tuple(Cadence(c) for c in cadences),
        controls=tuple(controls),
        runbook=runbook,
        destructive=destructive,
        records=records,
        replayed=replayed,
    )
    if not meta.cadences:
        raise ValueError(f"check {id}: at least one cadence is required")

    def decorate(func: F) -> F:
        setattr(func, ATTRIBUTE, meta)
        return func

    return decorate


def family(
    *,
    category: Category | str,
    controls: Iterable[str],
    runbook: str,
    cadences: Iterable[Cadence | str],
) -> Callable[..., Callable[[F], F]]:
    """Checks of one handbook area share category, controls, runbook and usual cadences:
    declare those once at the top of the file, and each check adds its id, title and severity
    (and may override the rest)."""
    shared = {
        "category": category,
        "controls": tuple(controls),
        "runbook": runbook,
        "cadences": tuple(cadences),
    }

    def declare(id: str, title: str, *, severity: Severity | str, **overrides: Any):
        return check(id, title, severity=severity, **{**shared, **overrides})

    return declare


def meta_of(obj: Any) -> CheckMeta | None:
    return getattr(obj, ATTRIBUTE, None)


class Unreachable(AssertionError):
    """The check could not reach what it verifies from this runner: "cannot verify from
    here", told apart from a finding about the target in every report. It fails the check."""


def unreachable(reason: str) -> None:
    """Fail the running check as unable to reach its target (a refused connection, a name
    this runner cannot resolve): not a verdict on the target itself."""
    raise Unreachable(reason)


def not_applicable(reason: str) -> None:
    """Skip the running check as not applicable: it leaves the score unchanged."""
    import pytest  # kept out of module scope: the CLI imports this module and must start fast

    pytest.skip(NOT_APPLICABLE + reason)
