"""Grafana dashboards: as files and as deployed (Grafana's HTTP API), their panels and the
PromQL each one asks Prometheus."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from opsverify.drivers import http

if TYPE_CHECKING:
    from opsverify.profile import Grafana


class DashboardError(ValueError):
    """Not a dashboard Grafana would load: names the file and the problem."""


class GrafanaError(RuntimeError):
    """Grafana could not be asked, or refused: names its URL, never the token."""


class GrafanaUnreachable(GrafanaError, ConnectionError):
    """No answer at all; a ConnectionError, so reports mark the check unreachable."""


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
    return validate(data, str(path))


def validate(data: Any, where: str) -> dict[str, Any]:
    """The dashboard model, if it is one Grafana would show; ``where`` names its source."""
    if not isinstance(data, dict) or not data.get("title") or not data.get("uid"):
        raise DashboardError(f"{where}: a dashboard needs a title and a uid")
    if not isinstance(data.get("panels"), list) or not data["panels"]:
        raise DashboardError(f"{where}: the dashboard has no panels")
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


def drift(expected: dict[str, Any], deployed: dict[str, Any]) -> list[dict[str, Any]]:
    """Panels whose queries differ between two versions of a dashboard (repository file and
    deployed one): each with its queries on both sides; a panel only one side has counts."""

    def by_panel(dashboard: dict[str, Any]) -> dict[str, list[str]]:
        panels: dict[str, list[str]] = {}
        for query in queries(dashboard):
            panels.setdefault(query.panel, []).append(f"[{query.ref}] {query.expr}")
        return panels

    want, have = by_panel(expected), by_panel(deployed)
    return [
        {"panel": panel, "repository": want.get(panel, []), "deployed": have.get(panel, [])}
        for panel in dict.fromkeys([*want, *have])
        if want.get(panel) != have.get(panel)
    ]


def base_url(grafana: Grafana) -> str:
    """The URL as messages and evidence show it (no trailing slash)."""
    return str(grafana.url).rstrip("/")


def _message(response: httpx.Response) -> str:
    """Grafana's own words from an error answer ({"message": …}), else the reason phrase."""
    try:
        return str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase


def _get(grafana: Grafana, path: str, *, authorized: bool = True) -> httpx.Response:
    """One API call with the profile's timeout and trust; 401/403 and no answer raise."""
    headers = grafana.auth.headers() if authorized and grafana.auth else {}
    try:
        response = http.get(
            base_url(grafana) + path,
            timeout=grafana.timeout.total_seconds(),
            ca_file=grafana.ca_file,
            headers=headers,
        )
    except httpx.TransportError as exc:
        raise GrafanaUnreachable(f"Grafana {base_url(grafana)} is unreachable: {exc}") from None
    if response.status_code in (401, 403):
        sent = (
            f"the token {grafana.auth.token.describe()}"
            if grafana.auth
            else "no credentials (set monitoring.dashboards.grafana.auth)"
        )
        raise GrafanaError(
            f"Grafana {base_url(grafana)} refused {path} with {sent}:"
            f" {response.status_code} {_message(response)}"
        )
    return response


def _body(grafana: Grafana, response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a 200 answer; anything else raises, naming the call."""
    path = response.request.url.path
    if response.status_code != 200:
        raise GrafanaError(
            f"Grafana {base_url(grafana)} answered {path} with"
            f" {response.status_code} {_message(response)}"
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):  # a login page or a proxy's error page, say
        raise GrafanaError(
            f"Grafana {base_url(grafana)} answered {path} with no JSON object: is it Grafana's URL?"
        )
    return body


def health(grafana: Grafana) -> dict[str, Any]:
    """``GET /api/health`` (needs no credentials): {"database": "ok", "version", "commit"};
    Grafana answers 503 when its database is failing."""
    return _body(grafana, _get(grafana, "/api/health", authorized=False))


def deployed(grafana: Grafana, uid: str) -> dict[str, Any]:
    """``GET /api/dashboards/uid/<uid>``: {"dashboard": model, "meta": {version, updated,
    folderTitle, provisioned, url…}}; Grafana answers 404 when it has no such dashboard."""
    response = _get(grafana, f"/api/dashboards/uid/{quote(uid, safe='')}")
    if response.status_code == 404:
        raise GrafanaError(f"dashboard {uid} is not deployed in Grafana {base_url(grafana)}")
    body = _body(grafana, response)
    validate(body.get("dashboard"), f"Grafana {base_url(grafana)} dashboard {uid}")
    return body
