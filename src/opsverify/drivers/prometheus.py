"""Prometheus driver: its HTTP API (query, targets, rules, alerts), its alerting rules as
the profile requires them, whether a configuration reload was refused, and the text
exposition format."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from opsverify.drivers import http
from opsverify.message import Finding
from opsverify.profile import IncidentSeverity, Prometheus, RequiredAlert


class PrometheusError(RuntimeError):
    """Prometheus answered, and refused: a bad query, say. Its own words are kept."""


def _api(prometheus: Prometheus, path: str, params: dict[str, str] | None = None) -> Any:
    url = str(prometheus.url).rstrip("/") + path
    response = http.get(url, params=params, timeout=prometheus.timeout.total_seconds())
    if response.status_code in (400, 422):  # bad_data / execution: the body says why
        body = response.json()
        raise PrometheusError(f"{path}: {body.get('errorType')}: {body.get('error')}")
    response.raise_for_status()
    body = response.json()
    if body.get("status") != "success":
        raise PrometheusError(f"{path}: {body.get('errorType')}: {body.get('error')}")
    return body["data"]


def query(prometheus: Prometheus, promql: str) -> list[dict[str, Any]]:
    """Instant query; the result vector as Prometheus returns it."""
    return _api(prometheus, "/api/v1/query", {"query": promql})["result"]


def target_health(prometheus: Prometheus) -> list[dict[str, Any]]:
    """One row per active scrape target: job, instance, health, last error and scrape."""
    targets = _api(prometheus, "/api/v1/targets", {"state": "active"})["activeTargets"]
    return [
        {
            "job": t["labels"].get("job"),
            "instance": t["labels"].get("instance"),
            "health": t["health"],
            "last_error": t.get("lastError", ""),
            "last_scrape": t.get("lastScrape"),
        }
        for t in targets
    ]


def rule_groups(prometheus: Prometheus) -> list[dict[str, Any]]:
    """``/api/v1/rules``: every loaded rule group with its rules (alerting and recording)."""
    return _api(prometheus, "/api/v1/rules")["groups"]


@dataclass(frozen=True)
class AlertingRule:
    """An alerting rule as Prometheus loaded it. ``rule`` names it in messages and evidence:
    ``group/alert``, plus the labels that tell it apart from the other rules of that name in
    its group (Sloth's page and ticket alerts, a mixin's warning and critical pair)."""

    rule: str
    group: str
    file: str | None
    alert: str
    expr: str
    labels: dict[str, str]
    annotations: dict[str, str]

    def describe(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "group": self.group,
            "file": self.file,
            "alert": self.alert,
            "expr": self.expr,
            "labels": self.labels,
            "annotations": self.annotations,
        }


def _telling_labels(siblings: list[dict[str, str]]) -> list[str]:
    """The labels whose values differ between rules of one name: those every one carries if
    any differ (Sloth: severity, sloth_severity), else all that differ."""
    names = sorted(set().union(*siblings))
    common = [n for n in names if all(n in labels for labels in siblings)]
    for candidates in (common, names):
        if differ := [n for n in candidates if len({lbl.get(n) for lbl in siblings}) > 1]:
            return differ
    return []


def alerting_rules(groups: list[dict[str, Any]]) -> list[AlertingRule]:
    """The alerting rules of ``rule_groups()``'s answer, in Prometheus' order."""
    found = [(g, r) for g in groups for r in g["rules"] if r.get("type") == "alerting"]
    siblings: dict[tuple[str, str], list[dict[str, str]]] = {}
    for group, rule in found:
        siblings.setdefault((group["name"], rule["name"]), []).append(rule.get("labels") or {})
    rules, seen = [], {}
    for group, rule in found:
        labels = rule.get("labels") or {}
        name = f"{group['name']}/{rule['name']}"
        telling = _telling_labels(siblings[group["name"], rule["name"]])
        if telling:
            name += "{" + ",".join(f'{n}="{labels[n]}"' for n in telling if n in labels) + "}"
        seen[name] = seen.get(name, 0) + 1
        if len(siblings[group["name"], rule["name"]]) > 1 and not telling:
            name += f" #{seen[name]}"  # the same labels twice: told apart by their order
        rules.append(
            AlertingRule(
                rule=name,
                group=group["name"],
                file=group.get("file"),
                alert=rule["name"],
                expr=rule.get("query", ""),
                labels=labels,
                annotations=rule.get("annotations") or {},
            )
        )
    return rules


def _squeezed(promql: str) -> str:
    return re.sub(r"\s+", "", promql)


def _shortfalls(rule: AlertingRule, wanted: RequiredAlert) -> list[str]:
    """How ``rule`` differs from what the profile requires of it; empty when it complies."""
    found = [
        f"label {name} is {rule.labels[name]!r}, expected {value!r}"
        if name in rule.labels
        else f"no label {name} (expected {value!r})"
        for name, value in wanted.labels.items()
        if rule.labels.get(name) != value
    ]
    found += [
        f"its expression lacks {fragment!r}"
        for fragment in wanted.expr_contains
        if _squeezed(fragment) not in _squeezed(rule.expr)
    ]
    return found


def unmet_requirements(rules: list[AlertingRule], required: list[RequiredAlert]) -> list[Finding]:
    """Each required alert no loaded rule satisfies: not loaded at all, or loaded without the
    labels or expression the profile requires (said of its closest rule)."""
    found = []
    for wanted in required:
        named = wanted.alert + (f" ({wanted.purpose})" if wanted.purpose else "")
        shortfalls = [_shortfalls(rule, wanted) for rule in rules if rule.alert == wanted.alert]
        if not shortfalls:
            found.append(Finding("required alert", "not loaded in Prometheus", named))
        elif all(shortfalls):
            closest = ", ".join(min(shortfalls, key=len))
            found.append(
                Finding("required alert", "loaded, not as required", f"{named}: {closest}")
            )
    return found


def incident_levels(
    rules: list[AlertingRule], levels: list[IncidentSeverity], pipeline: list[str]
) -> tuple[list[dict[str, Any]], list[Finding]]:
    """Which incident levels each alerting rule's labels select; every rule must reach one,
    except the declared pipeline alerts (a dead man's switch, an inhibitor). Returns a row per
    rule and a finding per rule that reaches none."""
    keys = list(dict.fromkeys(key for level in levels for key in level.matchers))
    rows, found = [], []
    for rule in rules:
        reached = [level.level for level in levels if level.matches(rule.labels)]
        exempt = rule.alert in pipeline
        rows.append(
            {"rule": rule.rule, "labels": rule.labels, "levels": reached, "pipeline": exempt}
        )
        if reached or exempt:
            continue
        carried = [f"{key} {rule.labels[key]!r}" for key in keys if key in rule.labels]
        said = ", ".join(carried) if carried else "no label " + " or ".join(keys)
        found.append(Finding("alert", f"{said} maps to no incident level", rule.rule))
    return rows, found


@dataclass(frozen=True)
class ConfigReload:
    """Whether a Prometheus or an Alertmanager runs the configuration on its disk. After a
    reload it refuses (a file that does not parse, a receiver that does not exist) it goes on
    with the previous one, and only its reload metrics and its log say so."""

    component: str
    url: str
    successful: bool
    last_success: datetime | None

    @property
    def problem(self) -> str:
        when = self.last_success.isoformat(timespec="seconds") if self.last_success else "?"
        return (
            f"{self.component} {self.url} rejected its last configuration reload; it still runs"
            f" the one loaded at {when} (its log says why)"
        )

    def describe(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "url": self.url,
            "last_reload_successful": self.successful,
            "last_successful_reload": self.last_success.isoformat() if self.last_success else None,
        }


def config_reload_of(url: str, component: str, timeout: float) -> ConfigReload:
    """``<component>_config_last_reload_successful`` and ``…_success_timestamp_seconds`` from
    the ``/metrics`` page of the ``component`` (prometheus, alertmanager) at ``url``."""
    base = url.rstrip("/")
    response = http.get(f"{base}/metrics", timeout=timeout)
    response.raise_for_status()
    prefix = f"{component}_config_last_reload_"
    values = {
        s.name.removeprefix(prefix): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if s.name.startswith(prefix)
    }
    if "successful" not in values:
        raise PrometheusError(
            f"{base}/metrics exports no {prefix}successful: cannot tell whether the"
            " configuration it runs is the one on its disk"
        )
    stamp = values.get("success_timestamp_seconds")
    return ConfigReload(
        component=component.capitalize(),
        url=base,
        successful=values["successful"] == 1,
        last_success=datetime.fromtimestamp(stamp, UTC) if stamp else None,
    )


def config_reload(prometheus: Prometheus) -> ConfigReload:
    """Whether Prometheus runs the configuration and rule files on its disk."""
    return config_reload_of(str(prometheus.url), "prometheus", prometheus.timeout.total_seconds())


def alerts(prometheus: Prometheus) -> list[dict[str, Any]]:
    """``/api/v1/alerts``: alerts pending or firing now."""
    return _api(prometheus, "/api/v1/alerts")["alerts"]


def alerts_fired(prometheus: Prometheus, window: str = "24h") -> list[dict[str, Any]]:
    """Every alert that was firing at some point in ``window``, from Prometheus' ``ALERTS``
    series: its labels and roughly how long it fired (samples × evaluation interval)."""
    samples_ = query(prometheus, f'count_over_time(ALERTS{{alertstate="firing"}}[{window}])')
    last = {
        tuple(sorted(r["metric"].items())): float(r["value"][1])
        for r in query(
            prometheus, f'max_over_time(timestamp(ALERTS{{alertstate="firing"}})[{window}:])'
        )
    }
    fired = []
    for row in samples_:
        labels = {k: v for k, v in row["metric"].items() if k != "alertstate"}
        key = tuple(sorted(row["metric"].items()))  # both queries drop the metric name
        seen = last.get(key)
        fired.append(
            {
                "labels": labels,
                "samples": int(float(row["value"][1])),
                "last_seen": datetime.fromtimestamp(seen, UTC).isoformat() if seen else None,
            }
        )
    return sorted(fired, key=lambda a: (a["labels"].get("alertname", ""), str(a["labels"])))


def samples(exposition: str, metric: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of ``metric`` in a /metrics page: (labels, value)."""
    return [
        (dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == metric
    ]
