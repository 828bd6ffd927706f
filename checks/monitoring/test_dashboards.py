"""Handbook › Monitoring › "Grafana dashboards deployed"; Dashboard Access (SLO,
Infrastructure, Application)."""

from opsverify import check
from opsverify.drivers import grafana
from opsverify.drivers import prometheus as prom


@check(
    "MON-006",
    "Dashboard is valid and every panel's query returns series",
    category="monitoring",
    severity="medium",
    cadences=["predeploy", "weekly"],
    controls=["SOC2:CC7.2", "ISO27001:A.8.16"],
    runbook="runbooks/dashboards.md",
)
def test_dashboard_panels_return_data(dashboard, profile, evidence):
    prometheus = profile.monitoring.prometheus
    assert prometheus is not None, "dashboards are checked against monitoring.prometheus"
    board = grafana.load(dashboard)
    rows, broken = [], []
    for query in grafana.queries(board):
        promql = grafana.render(query.expr, profile.monitoring.dashboards.variables)
        try:
            series = len(prom.query(prometheus, promql))
        except prom.PrometheusError as exc:
            series, error = 0, str(exc)
        else:
            error = "" if series else "no series"
        rows.append(
            {
                "panel": query.panel,
                "ref": query.ref,
                "promql": promql,
                "series": series,
                "error": error,
            }
        )
        if error:
            broken.append(f"{query.panel} [{query.ref}]: {error}")
    evidence.json("panels", {"dashboard": board["title"], "uid": board["uid"], "queries": rows})
    assert rows, f"{board['title']}: no panel queries Prometheus"
    assert not broken, f"{board['title']}: {len(broken)} of {len(rows)} queries fail: {broken}"
