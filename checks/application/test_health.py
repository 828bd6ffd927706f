"""Handbook › Monitoring › "Health probes configured"; Post-Deployment › "Verify health"."""

from opsverify import check
from opsverify.drivers import http


@check(
    "APP-001",
    "Liveness endpoint answers healthy",
    category="application",
    severity="critical",
    cadences=["predeploy", "daily"],
    controls=["SOC2:CC7.1", "ISO27001:A.8.16"],
    runbook="runbooks/service-health.md",
)
def test_liveness(liveness_endpoint, profile, evidence):
    response = http.call(liveness_endpoint, profile.service)
    evidence.json("exchange", http.exchange(response))
    assert response.status_code == liveness_endpoint.expect_status, (
        f"{liveness_endpoint.url} answered {response.status_code}, "
        f"expected {liveness_endpoint.expect_status}"
    )


@check(
    "APP-002",
    "Readiness endpoint reports the service ready (its database reachable)",
    category="application",
    severity="critical",
    cadences=["predeploy", "daily"],
    controls=["SOC2:CC7.1", "ISO27001:A.8.16"],
    runbook="runbooks/service-health.md",
)
def test_readiness(readiness_endpoint, profile, evidence):
    response = http.call(readiness_endpoint, profile.service)
    evidence.json("exchange", http.exchange(response))
    assert response.status_code == readiness_endpoint.expect_status, (
        f"{readiness_endpoint.url} answered {response.status_code} "
        f"({response.text[:200]!r}), expected {readiness_endpoint.expect_status}"
    )
