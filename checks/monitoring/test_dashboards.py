"""Handbook › Monitoring › "Grafana dashboards deployed"; Dashboard Access (SLO,
Infrastructure, Application, Security).

When the profile names a Grafana (``monitoring.dashboards.grafana``), each dashboard that must
be deployed is read from Grafana's API: it must be there, equal its repository file (when the
repository has one) and its panels must return series. Without a Grafana, the repository's
dashboard files are checked the same way."""

from opsverify import check, message
from opsverify.drivers import grafana
from opsverify.drivers import prometheus as prom
from opsverify.profile import DeployedDashboard


@check(
    "MON-006",
    "Dashboard is valid (and deployed, where a Grafana is named); every panel query has data",
    category="monitoring",
    severity="medium",
    cadences=["predeploy", "weekly"],
    controls=["SOC2:CC7.2", "ISO27001:A.8.16"],
    runbook="runbooks/dashboards.md",
)
def test_dashboard_panels_return_data(dashboard, profile, evidence):
    prometheus = profile.monitoring.prometheus
    assert prometheus is not None, "dashboards are checked against monitoring.prometheus"
    dashboards = profile.monitoring.dashboards
    if isinstance(dashboard, DeployedDashboard):
        board = deployed_as_in_repository(dashboard, dashboards.grafana, evidence)
    else:
        board = grafana.load(dashboard)
    rows, broken = [], []
    for query in grafana.queries(board):
        promql = grafana.render(query.expr, dashboards.variables)
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
            broken.append(f"{query.panel} [{query.ref}]: {error}: {promql}")
    evidence.json("panels", {"dashboard": board["title"], "uid": board["uid"], "queries": rows})
    assert rows, f"{board['title']}: no panel queries Prometheus"
    assert not broken, f"{board['title']}: " + message.listing(
        broken, f"of {len(rows)} queries fail"
    )


def deployed_as_in_repository(dashboard: DeployedDashboard, server, evidence) -> dict:
    """The dashboard as Grafana serves it, once it is proven to be the repository's version."""
    repository = grafana.load(dashboard.file) if dashboard.file else None  # broken file: fail
    running = grafana.health(server)
    answer = grafana.deployed(server, dashboard.uid)
    board, meta = answer["dashboard"], answer.get("meta") or {}
    evidence.json(
        "grafana",
        {
            "grafana": grafana.base_url(server),
            "grafana_version": running.get("version"),
            "uid": dashboard.uid,
            "title": board["title"],
            "version": meta.get("version"),
            "updated": meta.get("updated"),
            "updated_by": meta.get("updatedBy"),
            "folder": meta.get("folderTitle"),
            "provisioned": meta.get("provisioned"),
            "url": meta.get("url"),
            "repository_file": str(dashboard.file) if dashboard.file else None,
        },
    )
    if repository is not None:
        differences = grafana.drift(repository, board)
        evidence.json("drift", {"repository_file": str(dashboard.file), "panels": differences})
        assert not differences, (
            f"{board['title']} in Grafana {grafana.base_url(server)} has drifted from"
            f" {dashboard.file.name}: the queries of panels {[d['panel'] for d in differences]}"
            " differ"
        )
    return board
