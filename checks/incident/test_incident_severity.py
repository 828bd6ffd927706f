"""Handbook › Incident Response › "Incident Severity Levels" (P1 15 min, P2 30 min, P3 2 h,
P4 8 h), "On-call engineer acknowledges within SLA" and "Alert fires in PagerDuty": every
alert lands in a level, and every level is routed in time."""

from opsverify import family, message, not_applicable
from opsverify.drivers import alertmanager as am
from opsverify.drivers import prometheus as prom

incident_check = family(
    category="incident",
    controls=["SOC2:CC7.3", "SOC2:CC7.4", "ISO27001:A.5.24", "ISO27001:A.5.25", "ISO27001:A.5.26"],
    runbook="runbooks/incident-response.md",
    cadences=["predeploy", "weekly"],
)


@incident_check(
    "INC-001",
    "Each incident level has an Alertmanager route that notifies within its response time",
    severity="high",
)
def test_severity_level_routing(incident_severity, profile, evidence):
    level = incident_severity
    alertmanager = profile.monitoring.alertmanager
    assert alertmanager is not None, (
        "incident levels are configured but monitoring.alertmanager is not: nothing routes them"
    )
    reload = am.config_reload(alertmanager)
    config = am.loaded_config(alertmanager)
    label_sets = level.label_sets()
    routed = [(labels, match) for labels in label_sets for match in am.route_for(config, labels)]
    evidence.json(
        f"routing-{level.level}",
        {
            "config_reload": reload.describe(),
            "level": level.level,
            "matchers": level.matchers,
            "respond_within": str(level.respond_within),
            "routes_reached": [{"labels": labels, **m.describe()} for labels, m in routed],
        },
    )
    assert reload.successful, reload.problem
    problems = []
    for labels, match in routed:
        where = " → ".join(match.path)
        if len(label_sets) > 1:  # a list of values: each problem names its label set
            where = f"{labels}: {where}"
        if match.is_root:
            problems.append(f"no dedicated route: {labels} falls through to the root route")
        integrations = am.receiver_integrations(config, match.receiver)
        if not integrations:
            problems.append(f"{where}: receiver {match.receiver!r} notifies nobody")
        if match.first_notification > level.respond_within / 2:
            problems.append(
                f"{where}: group_wait + group_interval = {match.first_notification} leaves "
                f"less than half of the {level.respond_within} response time to acknowledge"
            )
        if match.repeat_interval > level.respond_within:
            problems.append(
                f"{where}: repeat_interval {match.repeat_interval} exceeds the "
                f"{level.respond_within} response time: an unacknowledged page is not repeated "
                "in time"
            )
    assert not problems, f"{level.level}: " + "; ".join(problems)


@incident_check(
    "INC-002",
    "Every alerting rule maps to an incident level (pipeline alerts such as Watchdog declared)",
    severity="high",
)
def test_every_alert_maps_to_a_level(prometheus, profile, evidence):
    if profile.incident is None or not profile.incident.severities:
        not_applicable("no incident levels configured (incident.severities)")
    incident = profile.incident
    reload = prom.config_reload(prometheus)
    rules = prom.alerting_rules(prom.rule_groups(prometheus))
    rows, unmapped = prom.incident_levels(rules, incident.severities, incident.pipeline_alerts)
    evidence.json(
        "alert-levels",
        {
            "config_reload": reload.describe(),
            "levels": [s.model_dump(mode="json") for s in incident.severities],
            "pipeline_alerts": incident.pipeline_alerts,
            "alerts": rows,
        },
    )
    assert reload.successful, reload.problem
    assert rules, "Prometheus has no alerting rule loaded"
    message.conclude(unmapped)
