"""Handbook › Incident Response › "Incident Severity Levels" (P1 15 min, P2 30 min, P3 2 h,
P4 8 h) and "On-call engineer acknowledges within SLA"."""

from opsverify import family
from opsverify.drivers import alertmanager as am

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
    config = am.loaded_config(alertmanager)
    matches = am.route_for(config, dict(level.matchers))
    evidence.json(
        f"routing-{level.level}",
        {
            "level": level.level,
            "matchers": level.matchers,
            "respond_within": str(level.respond_within),
            "routes_reached": [m.describe() for m in matches],
        },
    )
    problems = []
    for match in matches:
        where = " → ".join(match.path)
        if match.is_root:
            problems.append(f"no dedicated route: {level.matchers} falls through to the root route")
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
