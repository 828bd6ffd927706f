"""Handbook › Monitoring › "Prometheus configured and scraping metrics";
Post-Deployment › "curl …/metrics | grep cronos_ai_up"."""

from opsverify import check
from opsverify.drivers import http
from opsverify.drivers import prometheus as prom


@check(
    "MON-001",
    "The service exports cronos_ai_up = 1",
    category="monitoring",
    severity="critical",
    cadences=["predeploy", "daily"],
    controls=["SOC2:CC7.2", "ISO27001:A.8.16"],
    runbook="runbooks/monitoring.md",
)
def test_cronos_ai_up(metrics_endpoint, profile, evidence):
    response = http.call(metrics_endpoint, profile.service)
    assert response.status_code == 200, f"{metrics_endpoint.url} answered {response.status_code}"
    found = prom.samples(response.text, "cronos_ai_up")
    evidence.json("cronos_ai_up", {"url": str(metrics_endpoint.url), "samples": found})
    assert found, f"{metrics_endpoint.url} exports no cronos_ai_up sample"
    assert all(value == 1 for _, value in found), f"cronos_ai_up is {found}, expected 1"


@check(
    "MON-002",
    "Prometheus scrapes every expected job and every target is up",
    category="monitoring",
    severity="high",
    cadences=["predeploy", "daily"],
    controls=["SOC2:CC7.2", "ISO27001:A.8.16"],
    runbook="runbooks/monitoring.md",
)
def test_scrape_targets_up(prometheus, evidence):
    targets = prom.active_targets(prometheus)
    table = [
        {
            "job": t["labels"].get("job"),
            "instance": t["labels"].get("instance"),
            "health": t["health"],
            "last_error": t.get("lastError", ""),
            "last_scrape": t.get("lastScrape"),
        }
        for t in targets
    ]
    evidence.json("targets", table)
    missing = sorted(set(prometheus.expected_jobs) - {t["job"] for t in table})
    down = [
        f"{t['job']}/{t['instance']}: {t['last_error'] or t['health']}"
        for t in table
        if t["health"] != "up"
    ]
    assert table, "Prometheus has no active scrape target"
    assert not missing, f"expected jobs not scraped: {missing}"
    assert not down, f"targets not up: {down}"
