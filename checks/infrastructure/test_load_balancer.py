"""Handbook › Infrastructure › "Load balancers configured" (its configuration is validated with
the other configuration, by the CFG checks)."""

import pytest

from opsverify import family
from opsverify.drivers import http

lb_check = family(
    category="infrastructure",
    controls=["SOC2:CC7.1", "ISO27001:A.8.20"],
    runbook="runbooks/infrastructure.md",
    cadences=["predeploy", "daily"],
)


@lb_check(
    "INF-001",
    "Load balancer answers through TLS and reaches a healthy upstream",
    severity="critical",
)
@pytest.mark.health  # traffic checks of the run do not start while it fails
def test_load_balancer_serves(load_balancer, evidence):
    response = http.get(
        str(load_balancer.url),
        timeout=load_balancer.timeout.total_seconds(),
        ca_file=load_balancer.ca_file,
    )
    evidence.json("exchange", http.exchange(response))
    assert response.url.scheme == "https", f"{load_balancer.url} is not served over TLS"
    assert response.status_code == load_balancer.expect_status, (
        f"{load_balancer.url} answered {response.status_code} "
        f"(an upstream problem if 502/503/504), expected {load_balancer.expect_status}"
    )
