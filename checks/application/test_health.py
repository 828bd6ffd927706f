"""Handbook › Monitoring › "Health probes configured"; Deployment › "Verify health";
Deployment › "Run smoke tests"."""

import pytest

from opsverify import family, message

service_check = family(
    category="application",
    controls=["SOC2:CC7.1", "ISO27001:A.8.16"],
    runbook="runbooks/service-health.md",
    cadences=["predeploy", "daily"],
)


def mismatch(endpoint, response) -> str:
    status = response.status_code
    return f"{endpoint.method} {endpoint.url} answered {status}, expected {endpoint.expect_status}"


@service_check("APP-001", "Liveness endpoint answers healthy", severity="critical")
@pytest.mark.health  # traffic checks of the run do not start while it fails
def test_liveness(liveness_endpoint, answer):
    response = answer(liveness_endpoint)
    assert response.status_code == liveness_endpoint.expect_status, mismatch(
        liveness_endpoint, response
    )


@service_check(
    "APP-002",
    "Readiness endpoint reports the service ready (its database reachable)",
    severity="critical",
)
@pytest.mark.health
def test_readiness(readiness_endpoint, answer):
    response = answer(readiness_endpoint)
    assert response.status_code == readiness_endpoint.expect_status, (
        f"{mismatch(readiness_endpoint, response)}: {message.head(response.text, 200)}"
    )


@service_check("APP-003", "API endpoint answers an authenticated request", severity="high")
def test_api_answers(api_endpoint, answer):
    response = answer(api_endpoint)
    assert response.status_code == api_endpoint.expect_status, mismatch(api_endpoint, response)
