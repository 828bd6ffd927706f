"""Handbook › Monitoring › "Prometheus configured and scraping metrics";
Post-Deployment › "curl …/metrics | grep cronos_ai_up"."""

from opsverify import family
from opsverify.drivers import prometheus as prom

monitoring_check = family(
    category="monitoring",
    controls=["SOC2:CC7.2", "ISO27001:A.8.16"],
    runbook="runbooks/monitoring.md",
    cadences=["predeploy", "daily"],
)


@monitoring_check("MON-001", "The service exports cronos_ai_up = 1", severity="critical")
def test_cronos_ai_up(metrics_endpoint, answer):
    response = answer(metrics_endpoint)
    expected = metrics_endpoint.expect_status
    assert response.status_code == expected, (
        f"{metrics_endpoint.url} answered {response.status_code}, expected {expected}"
    )
    found = prom.samples(response.text, "cronos_ai_up")
    assert found, f"{metrics_endpoint.url} exports no cronos_ai_up sample"
    assert all(value == 1 for _, value in found), f"cronos_ai_up is {found}, expected 1"


@monitoring_check(
    "MON-002",
    "Prometheus scrapes every expected job and every target is up",
    # A target down is a blind spot: its alerts cannot fire (node-exporter: every resource).
    severity="critical",
)
def test_scrape_targets_up(prometheus, evidence):
    reload = prom.config_reload(prometheus)
    targets = prom.target_health(prometheus)
    evidence.json("targets", targets)
    evidence.json("config-reload", reload.describe())
    assert reload.successful, reload.problem
    missing = sorted(set(prometheus.expected_jobs) - {t["job"] for t in targets})
    down = [
        f"{t['job']}/{t['instance']}: {t['last_error'] or t['health']}"
        for t in targets
        if t["health"] != "up"
    ]
    assert targets, "Prometheus has no active scrape target"
    assert not missing, f"expected jobs not scraped: {missing}"
    assert not down, f"targets not up: {down}"
