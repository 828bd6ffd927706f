"""Handbook › Deployment › "Run smoke tests": the API answers an authenticated request."""

from opsverify import check
from opsverify.drivers import http


@check(
    "APP-003",
    "API endpoint answers an authenticated request",
    category="application",
    severity="high",
    cadences=["predeploy", "daily"],
    controls=["SOC2:CC7.1", "ISO27001:A.8.16"],
    runbook="runbooks/service-health.md",
)
def test_api_answers(api_endpoint, profile, evidence):
    response = http.call(api_endpoint, profile.service)
    evidence.json("exchange", http.exchange(response))
    assert response.status_code == api_endpoint.expect_status, (
        f"{api_endpoint.method} {api_endpoint.url} answered {response.status_code}, "
        f"expected {api_endpoint.expect_status}"
    )
