"""Results: what became of each check instance in a run, as the controller saw it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from opsverify.check import CheckMeta


class Status(StrEnum):
    passed = "passed"
    failed = "failed"
    error = "error"  # the check itself broke (setup/teardown, or it could not be evaluated)
    not_applicable = "not_applicable"
    waived = "waived"


@dataclass
class CheckResult:
    meta: CheckMeta
    nodeid: str
    parameter: str | None
    status: Status
    message: str = ""
    duration: float = 0.0
    unreachable: bool = False  # failed because the target could not be reached
    evidence: list[str] = field(default_factory=list)
    waiver: dict[str, Any] | None = None  # the waiver that matched a failure, active or expired
    figures: dict[str, Any] = field(default_factory=dict)  # what the check measured
    # For the history record of an activity only (not in readiness.json): its step log…
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.meta.to_dict(),
            "nodeid": self.nodeid,
            "parameter": self.parameter,
            "status": str(self.status),
            "message": self.message,
            "duration": round(self.duration, 4),
            "unreachable": self.unreachable,
            "evidence": self.evidence,
            "waiver": self.waiver,
            "figures": self.figures,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        return cls(
            meta=CheckMeta.from_dict(data),
            nodeid=data["nodeid"],
            parameter=data["parameter"],
            status=Status(data["status"]),
            message=data.get("message", ""),
            duration=data.get("duration", 0.0),
            unreachable=data.get("unreachable", False),
            evidence=list(data.get("evidence", [])),
            waiver=data.get("waiver"),
            figures=dict(data.get("figures", {})),
        )
