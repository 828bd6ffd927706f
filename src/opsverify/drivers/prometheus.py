"""Prometheus driver: its HTTP API (query, targets, rules, alerts) and the text exposition
format."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from opsverify.profile import Prometheus


class PrometheusError(RuntimeError):
    """Prometheus answered, and refused: a bad query, say. Its own words are kept."""


def _api(prometheus: Prometheus, path: str, params: dict[str, str] | None = None) -> Any:
    url = str(prometheus.url).rstrip("/") + path
    response = httpx.get(url, params=params, timeout=prometheus.timeout.total_seconds())
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
