"""Alertmanager driver: its v2 HTTP API (status, alerts) and its routing rules.

``route_for`` walks the loaded route tree the way Alertmanager's dispatcher does: the root
matches every alert; a child is entered when all its matchers (``matchers``, ``match``,
``match_re``) match; the first matching child wins unless it says ``continue: true``; an
alert no child matches stays at the current node. Settings a route leaves out are inherited
from its parent, and the root falls back to Alertmanager's defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from opsverify.drivers import http
from opsverify.drivers.prometheus import ConfigReload, config_reload_of
from opsverify.profile import Alertmanager

# Alertmanager's own defaults for a route that sets none (dispatch.DefaultRouteOpts).
DEFAULTS = {"group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"}
TIMINGS = tuple(DEFAULTS)

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_MATCHER = re.compile(r'\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|[^,}]*)\s*(?:,|$)')


def _url(alertmanager: Alertmanager, path: str) -> str:
    return str(alertmanager.url).rstrip("/") + path


def status(alertmanager: Alertmanager) -> dict[str, Any]:
    """``GET /api/v2/status``: cluster, version and the loaded configuration."""
    response = http.get(
        _url(alertmanager, "/api/v2/status"), timeout=alertmanager.timeout.total_seconds()
    )
    response.raise_for_status()
    return response.json()


def loaded_config(alertmanager: Alertmanager) -> dict[str, Any]:
    """The configuration Alertmanager runs with (secrets already masked by Alertmanager)."""
    return yaml.safe_load(status(alertmanager)["config"]["original"])


def config_reload(alertmanager: Alertmanager) -> ConfigReload:
    """Whether Alertmanager routes with the configuration on its disk (a refused reload
    leaves the previous one running)."""
    timeout = alertmanager.timeout.total_seconds()
    return config_reload_of(str(alertmanager.url), "alertmanager", timeout)


def alerts(alertmanager: Alertmanager) -> list[dict[str, Any]]:
    """``GET /api/v2/alerts``: every alert Alertmanager holds that has not ended."""
    response = http.get(
        _url(alertmanager, "/api/v2/alerts"), timeout=alertmanager.timeout.total_seconds()
    )
    response.raise_for_status()
    return response.json()


def post_alerts(alertmanager: Alertmanager, batch: list[dict[str, Any]]) -> None:
    """``POST /api/v2/alerts``: what Prometheus does when an alert fires (or resolves)."""
    response = http.get(
        _url(alertmanager, "/api/v2/alerts"),
        method="POST",
        json=batch,
        timeout=alertmanager.timeout.total_seconds(),
    )
    response.raise_for_status()


def synthetic_alert(
    labels: dict[str, str], annotations: dict[str, str], lasts: timedelta
) -> dict[str, Any]:
    """An alert as the API takes it, starting now and ending after ``lasts``."""
    now = datetime.now(UTC)
    return {
        "labels": labels,
        "annotations": annotations,
        "startsAt": now.isoformat(),
        "endsAt": (now + lasts).isoformat(),
    }


def parse_duration(text: str) -> timedelta:
    """Alertmanager/Prometheus durations: ``30s``, ``5m``, ``1h30m``, ``1d``."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in parts))


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1].encode().decode("unicode_escape")
    return value


def _matches(kind: str, expected: str, actual: str) -> bool:
    if kind == "=":
        return actual == expected
    if kind == "!=":
        return actual != expected
    found = re.fullmatch(expected, actual) is not None
    return found if kind == "=~" else not found


def route_matches(route: dict[str, Any], labels: dict[str, str]) -> bool:
    """Do all of a route's matchers accept these labels? (A missing label is the empty string.)"""
    checks: list[tuple[str, str, str]] = []
    for text in route.get("matchers") or []:
        body = text.strip().removeprefix("{").removesuffix("}").strip()
        found = _MATCHER.findall(body)
        if not found:
            raise ValueError(f"matcher {text!r} cannot be parsed")
        checks += [(name, kind, _unquote(value.strip())) for name, kind, value in found]
    checks += [(k, "=", str(v)) for k, v in (route.get("match") or {}).items()]
    checks += [(k, "=~", str(v)) for k, v in (route.get("match_re") or {}).items()]
    return all(_matches(kind, value, labels.get(name, "")) for name, kind, value in checks)


@dataclass
class Match:
    """A route an alert ends up at, with the settings in force there."""

    path: list[str]  # how it was reached: "root", then each child's matchers
    receiver: str
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    route: dict[str, Any] = field(repr=False)

    @property
    def is_root(self) -> bool:
        return len(self.path) == 1

    @property
    def first_notification(self) -> timedelta:
        """Upper bound on the first page for a new alert: it may join a group that notified
        just before, so it waits for that group's next interval, else for ``group_wait``."""
        return self.group_wait + self.group_interval

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "receiver": self.receiver,
            "group_wait": str(self.group_wait),
            "group_interval": str(self.group_interval),
            "repeat_interval": str(self.repeat_interval),
        }


def _describe(route: dict[str, Any]) -> str:
    parts = list(route.get("matchers") or [])
    parts += [f"{k}={v!r}" for k, v in (route.get("match") or {}).items()]
    parts += [f"{k}=~{v!r}" for k, v in (route.get("match_re") or {}).items()]
    return "{" + ", ".join(parts) + "}"


def route_for(config: dict[str, Any], labels: dict[str, str]) -> list[Match]:
    """Every route an alert with ``labels`` is delivered from, in Alertmanager's order."""
    root = config["route"]
    inherited = {k: parse_duration(str(root.get(k) or v)) for k, v in DEFAULTS.items()}
    return _walk(root, labels, root.get("receiver", ""), inherited, ["root"])


def _walk(
    route: dict[str, Any],
    labels: dict[str, str],
    receiver: str,
    timings: dict[str, timedelta],
    path: list[str],
) -> list[Match]:
    receiver = route.get("receiver") or receiver
    timings = {k: parse_duration(str(route[k])) if route.get(k) else v for k, v in timings.items()}
    found: list[Match] = []
    for child in route.get("routes") or []:
        if not route_matches(child, labels):
            continue
        found += _walk(child, labels, receiver, timings, [*path, _describe(child)])
        if not child.get("continue", False):
            break
    if not found:
        found = [Match(path=path, receiver=receiver, route=route, **timings)]
    return found


def receiver_integrations(config: dict[str, Any], name: str) -> list[str] | None:
    """The kinds of notifier a receiver has (``pagerduty_configs``…); None if it is not defined."""
    for receiver in config.get("receivers") or []:
        if receiver.get("name") == name:
            return sorted(k for k, v in receiver.items() if k.endswith("_configs") and v)
    return None
