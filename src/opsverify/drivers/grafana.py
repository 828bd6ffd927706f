"""Grafana dashboards as files: their panels and the PromQL each one asks Prometheus."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class DashboardError(ValueError):
    """Not a dashboard Grafana would load: names the file and the problem."""


@dataclass(frozen=True)
class Query:
    panel: str
    ref: str
    expr: str


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise DashboardError(f"{path}: cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise DashboardError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not data.get("title") or not data.get("uid"):
        raise DashboardError(f"{path}: a dashboard needs a title and a uid")
    if not isinstance(data.get("panels"), list) or not data["panels"]:
        raise DashboardError(f"{path}: the dashboard has no panels")
    return data


def queries(dashboard: dict[str, Any]) -> list[Query]:
    """Every Prometheus query of every panel, rows (collapsed or not) included."""
    found: list[Query] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            walk(panel.get("panels", []))  # a collapsed row keeps its panels inside
            for target in panel.get("targets", []):
                if target.get("expr"):
                    title = panel.get("title") or f"panel {panel.get('id')}"
                    found.append(Query(title, target.get("refId", "?"), target["expr"]))

    walk(dashboard["panels"])
    return found


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def render(expr: str, variables: dict[str, str]) -> str:
    """Grafana's ``$name`` / ``${name}`` replaced, so Prometheus can run the query."""

    def value(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if name not in variables:
            raise DashboardError(
                f"variable ${name} has no value for checking (dashboards.variables)"
            )
        return variables[name]

    return _VARIABLE.sub(value, expr)
