"""Handbook › Disaster Recovery › DR Procedure (activate the DR site, restore from backup,
verify it, switch DNS) and DR Testing ("Run DR drill (quarterly)"), against the DR
Objectives (RTO 4 hours, RPO 15 minutes): the primary fails, the DR site takes over behind
the load balancer and serves, the drill fails back; the outage and the data lost are
measured (see opsverify.failover)."""

import pytest

from opsverify import check, drill, failover, not_applicable
from opsverify.drivers.postgres import PostgresError
from opsverify.drivers.repository import RepositoryError


@check(
    "DRL-002",
    "DR failover drill: the DR site takes over and serves within the RTO and the RPO",
    category="backup",
    severity="high",
    cadences=["quarterly"],
    controls=["ISO27001:A.5.30", "ISO27001:A.8.14", "SOC2:A1.3", "SOC2:CC7.5", "SOC2:CC9.1"],
    runbook="runbooks/failover-drill.md",
    destructive=True,
    records="dr-failover",
)
# It takes the service down: it takes turns with load tests and probes, after the checks
# that measure the environment.
@pytest.mark.traffic
@pytest.mark.timeout(6 * 3600)  # each step is bounded by its own timeout
def test_failover_drill(profile, evidence):
    if profile.dr is None or profile.dr.failover is None:
        not_applicable("no failover drill configured (dr.failover)")
    outcome = failover.Outcome()
    try:
        failover.failover_drill(profile, outcome)
    except (drill.DrillError, RepositoryError, PostgresError) as exc:
        # After what failback left behind, which is said first.
        outcome.problems.insert(bool(outcome.left_behind), f"the drill stopped: {exc}")
    finally:
        failover.keep(outcome, profile, evidence)
    problems = drill.shortfalls(outcome, profile)
    assert not problems, "; ".join(problems)
