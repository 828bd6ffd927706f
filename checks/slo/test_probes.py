"""Handbook › Monitoring › Service Level Indicators (availability > 99.9 %, P95 < 500 ms,
error rate < 1 %), measured actively: each profile ``probes`` entry sends a bounded burst of
real requests through the load balancer and holds the latency percentiles and the success
ratio against its objectives. A passing run is the record that "performance testing
completed" (APP-012) reads back."""

import pytest

from opsverify import check, unreachable
from opsverify import probe as probing


@check(
    "SLO-010",
    "Active probe through the load balancer meets the latency and success objectives",
    category="slo",
    severity="high",
    cadences=["predeploy", "daily"],
    controls=["SOC2:A1.2", "ISO27001:A.8.16"],
    runbook="runbooks/probes.md",
    records="performance",
)
# Takes turns with the load tests, so no load test inflates the latencies measured here.
@pytest.mark.traffic
def test_active_probe(probe, profile, evidence):
    headers = profile.service.auth.headers() if probe.auth else {}
    result = probing.run(probe, headers)
    evidence.json("probe", result.evidence())
    evidence.measure(**result.figures())
    if reason := result.unreachable:
        unreachable(reason)  # reported apart from a slow or failing service
    assert not result.shortfalls(), result.message()
