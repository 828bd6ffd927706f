"""Compliance view of a run: per control (SOC 2, ISO 27001), its checks, their status, evidence."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from opsverify.report import readiness


def by_control(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Controls sorted by framework, then by their numbering, each with its check rows."""
    table: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for check in data["checks"]:
        for control in check["controls"]:
            table[control].append(check)
    return dict(sorted(table.items(), key=lambda item: _control_key(item[0])))


def _control_key(control: str) -> tuple[str, tuple[int | str, ...]]:
    framework, _, code = control.partition(":")
    parts = code.replace("-", ".").split(".")
    return framework, tuple(int(p) if p.isdigit() else p for p in parts)


def status(checks: list[dict[str, Any]]) -> str:
    """A control holds when every applicable check of it passed (or is waived)."""
    seen = {c["status"] for c in checks}
    if seen & {"failed", "error"}:
        return "failing"
    if seen <= {"not_applicable"}:
        return "not assessed"
    return "met" if "waived" not in seen else "met with waivers"


def load(path: Path) -> tuple[Path, dict[str, Any]]:
    """A run folder or its readiness.json, proven intact by its manifest."""
    return readiness.load_verified(path)
