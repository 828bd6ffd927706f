"""Waivers: accepted, time-boxed exceptions to a check (InSpec-style).

A waiver file belongs to one environment (``environments/<env>.waivers.yaml`` by default):

    waivers:
      - check: TLS-002
        parameter: lb            # optional: only this instance of the check
        justification: Renewal booked with the CA, ticket OPS-123
        approver: jane.doe
        expires: 2026-12-31

An active waiver turns a failure into *waived*: it leaves the score and every report says
so. An expired one waives nothing, and the failure says the waiver expired. A malformed
file stops the run before any check runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from opsverify import userfile
from opsverify.profile import ProfileError, format_errors

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class WaiverError(ProfileError):
    """A waiver file that cannot be used; the run stops before any check."""


class Waiver(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    check: Annotated[str, Field(pattern=r"^[A-Z]{2,5}-\d{3}$")]
    parameter: str | None = None
    justification: Text
    approver: Text | None = None
    expires: date

    def matches(self, check_id: str, parameter: str | None) -> bool:
        return self.check == check_id and self.parameter in (None, parameter)

    def active(self, today: date) -> bool:
        return today <= self.expires

    def describe(self) -> str:
        by = f" approved by {self.approver}" if self.approver else ""
        return f"waived until {self.expires.isoformat()}{by}: {self.justification}"


class WaiverFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    waivers: list[Waiver] = []


@dataclass(frozen=True)
class Decision:
    """What a waiver makes of one failed check instance."""

    waiver: Waiver
    active: bool

    def to_dict(self) -> dict[str, Any]:
        return {**self.waiver.model_dump(mode="json"), "active": self.active}


@dataclass(frozen=True)
class Waivers:
    source: Path | None
    entries: tuple[Waiver, ...]

    def decide(self, check_id: str, parameter: str | None, today: date) -> Decision | None:
        """The most specific matching waiver (an exact parameter beats a whole-check one)."""
        found = [w for w in self.entries if w.matches(check_id, parameter)]
        if not found:
            return None
        best = max(found, key=lambda w: (w.parameter is not None, w.active(today), w.expires))
        return Decision(best, best.active(today))


def default_path(profile_path: Path) -> Path:
    """``environments/staging.yaml`` → ``environments/staging.waivers.yaml``."""
    return profile_path.with_name(profile_path.stem + ".waivers.yaml")


def load(path: Path | None, *, required: bool = False) -> Waivers:
    """Read a waiver file; a missing default file means no waivers, anything malformed stops."""
    if path is None or (not path.exists() and not required):
        return Waivers(None, ())
    try:
        raw = userfile.load_yaml(path, "waiver")
    except userfile.UserFileError as exc:
        raise WaiverError(str(exc)) from None
    try:
        parsed = WaiverFile.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        raise WaiverError(format_errors(path, exc)) from None
    return Waivers(path.resolve(), tuple(parsed.waivers))
