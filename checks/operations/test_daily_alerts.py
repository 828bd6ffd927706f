"""Handbook › Operational Checklist › Daily Operations › "Review overnight alerts": no critical
alert firing now; every alert fired in the last 24 hours listed for the review."""

from opsverify import family
from opsverify.drivers import alertmanager as am
from opsverify.drivers import prometheus as prom

daily_check = family(
    category="operations",
    controls=["SOC2:CC7.2", "SOC2:CC7.3", "ISO27001:A.8.16", "ISO27001:A.5.25"],
    runbook="runbooks/daily-alerts.md",
    cadences=["daily"],
)

PROBE_LABEL = "opsverify_probe"  # opsverify's own paging probes (MON-005) are not incidents


def _critical(labels: dict[str, str]) -> bool:
    return labels.get("severity") == "critical" and PROBE_LABEL not in labels


@daily_check(
    "OPS-001",
    "No critical alert is firing; the last 24 h of alerts are listed",
    severity="critical",
)
def test_no_critical_alert_firing(alertmanager, profile, evidence):
    firing = []
    held = am.alerts(alertmanager)
    for alert in held:
        if _critical(alert["labels"]):
            state = alert.get("status", {}).get("state", "active")
            firing.append(f"{alert['labels'].get('alertname')} (Alertmanager, {state})")
    prometheus = profile.monitoring.prometheus
    history, now = None, None
    if prometheus is not None:
        now = prom.alerts(prometheus)
        firing += [
            f"{a['labels'].get('alertname')} (Prometheus)"
            for a in now
            if a.get("state") == "firing" and _critical(a["labels"])
        ]
        history = prom.alerts_fired(prometheus, "24h")
    evidence.json(
        "alerts",
        {
            "alertmanager_alerts": held,
            "prometheus_alerts": now,
            "fired_last_24h": history,
            "note": None if prometheus else "no Prometheus configured: no 24 h history",
        },
    )
    assert not firing, f"critical alerts firing now: {sorted(set(firing))}"
