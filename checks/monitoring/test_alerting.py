"""Handbook › Monitoring › "Alert rules configured", "PagerDuty integration tested";
Incident Response › Detection › "Alert fires in PagerDuty"."""

import time
import uuid
from datetime import UTC, datetime, timedelta

from opsverify import family, message, not_applicable
from opsverify.drivers import alertmanager as am
from opsverify.drivers import docs, http
from opsverify.drivers import prometheus as prom

alerting_check = family(
    category="monitoring",
    controls=["SOC2:CC7.2", "SOC2:CC7.3", "ISO27001:A.8.16", "ISO27001:A.5.25"],
    runbook="runbooks/alerting.md",
    cadences=["predeploy", "daily"],
)

CRITICAL = {"severity": "critical"}
PROBE_LABEL = "opsverify_probe"  # marks opsverify's synthetic pages (OPS-001 leaves them out)
DELIVERY_BOUND = timedelta(seconds=20)


@alerting_check(
    "MON-003",
    "Alert rules are loaded, the required alerts among them, and every alert has a severity, a"
    " summary and a runbook that exists",
    severity="high",
)
def test_alert_rules_configured(prometheus, evidence, pytestconfig):
    # A relative runbook_url is read from the repository root: the folder the run starts in,
    # where checks/ and runbooks/ live (also the base of every check's own runbook link).
    root = pytestconfig.rootpath
    reload = prom.config_reload(prometheus)
    groups = prom.rule_groups(prometheus)
    rules = prom.alerting_rules(groups)
    unmet = prom.unmet_requirements(rules, prometheus.required_alerts)
    reviews = docs.review_alert_rules(
        rules,
        root,
        prometheus.timeout.total_seconds(),
        labels=("severity",),
        annotations=("summary",),
    )
    evidence.json(
        "alert-rules",
        {
            "config_reload": reload.describe(),
            "repository_root": str(root),
            "expected_groups": prometheus.rule_groups,
            "required_alerts": [r.model_dump() for r in prometheus.required_alerts],
            "unmet_requirements": [f.describe() for f in unmet],
            "rules": [review.describe() for review in reviews],
        },
    )
    assert reload.successful, reload.problem
    loaded = {g["name"] for g in groups}
    missing = [g for g in prometheus.rule_groups if g not in loaded]
    assert not missing, (
        f"rule groups not loaded in Prometheus: {missing} (loaded: {sorted(loaded)})"
    )
    assert rules, "Prometheus has no alerting rule loaded"
    message.conclude(unmet + docs.findings(reviews))


@alerting_check(
    "MON-004",
    "Alertmanager routes severity=critical alerts to the paging receiver",
    severity="critical",
)
def test_critical_alerts_page(alertmanager, evidence):
    if not alertmanager.paging_receiver:
        not_applicable("no paging receiver configured (monitoring.alertmanager.paging_receiver)")
    reload = am.config_reload(alertmanager)
    config = am.loaded_config(alertmanager)
    matches = am.route_for(config, {"alertname": "OpsverifyRouteProbe", **CRITICAL})
    integrations = am.receiver_integrations(config, alertmanager.paging_receiver)
    evidence.json(
        "critical-routing",
        {
            "config_reload": reload.describe(),
            "alert_labels": CRITICAL,
            "paging_receiver": alertmanager.paging_receiver,
            "paging_receiver_integrations": integrations,
            "routes_reached": [m.describe() for m in matches],
            "route_tree": config["route"],
        },
    )
    assert reload.successful, reload.problem
    reached = [m.receiver for m in matches]
    assert alertmanager.paging_receiver in reached, (
        f"a severity=critical alert is routed to {reached}, "
        f"not to the paging receiver {alertmanager.paging_receiver!r}"
    )
    assert integrations is not None, f"receiver {alertmanager.paging_receiver!r} is not defined"
    assert integrations, f"receiver {alertmanager.paging_receiver!r} has no notifier configured"


def _delivered(probe_url: str, probe_id: str, timeout: float) -> dict | None:
    response = http.get(probe_url, timeout=timeout)
    response.raise_for_status()
    for record in response.json():
        body = record.get("body")
        alerts = body.get("alerts", []) if isinstance(body, dict) else []
        if any(
            a.get("labels", {}).get(PROBE_LABEL) == probe_id and a.get("status") == "firing"
            for a in alerts
        ):
            return record
    return None


@alerting_check(
    "MON-005",
    "A synthetic critical alert sent to Alertmanager reaches the paging receiver in time",
    severity="critical",  # a page that never arrives leaves every incident unanswered
    cadences=["predeploy", "weekly"],
    destructive=True,
)
def test_paging_end_to_end(alertmanager, evidence):
    if alertmanager.delivery_probe is None:
        not_applicable(
            "no delivery probe configured (monitoring.alertmanager.delivery_probe): a real "
            "pager cannot be read back"
        )
    probe_id = uuid.uuid4().hex
    alert = am.synthetic_alert(
        {"alertname": "OpsverifyPagingProbe", PROBE_LABEL: probe_id, **CRITICAL},
        {"summary": "opsverify paging test: synthetic alert, no action needed"},
        lasts=timedelta(minutes=2),
    )
    timeout = alertmanager.timeout.total_seconds()
    sent = time.monotonic()
    sent_at = datetime.now(UTC)
    am.post_alerts(alertmanager, [alert])
    received = None
    try:
        while received is None and time.monotonic() - sent < DELIVERY_BOUND.total_seconds():
            received = _delivered(str(alertmanager.delivery_probe), probe_id, timeout)
            if received is None:
                time.sleep(0.25)
        latency = time.monotonic() - sent
    finally:  # resolve it: a probe must not stay firing (nor page twice)
        am.post_alerts(alertmanager, [{**alert, "endsAt": datetime.now(UTC).isoformat()}])
    evidence.json(
        "paging-probe",
        {
            "sent_at": sent_at.isoformat(),
            "alert_sent": alert,
            "delivery_probe": str(alertmanager.delivery_probe),
            "bound_seconds": DELIVERY_BOUND.total_seconds(),
            "notification_received": received,
            "latency_seconds": round(latency, 3) if received else None,
        },
    )
    assert received is not None, (
        f"the synthetic critical alert {probe_id} did not reach {alertmanager.delivery_probe} "
        f"within {DELIVERY_BOUND.total_seconds():g} s"
    )
