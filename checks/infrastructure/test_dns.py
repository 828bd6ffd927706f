"""Handbook › Infrastructure › "DNS records configured"."""

from opsverify import check
from opsverify.drivers import dns


@check(
    "INF-003",
    "DNS name resolves to the expected addresses",
    category="infrastructure",
    severity="high",
    cadences=["predeploy", "daily"],
    controls=["SOC2:CC7.1", "ISO27001:A.8.20"],
    runbook="runbooks/infrastructure.md",
)
def test_dns_record(dns_record, profile, evidence):
    expected = set(dns_record.addresses)
    answered = dns.resolve(dns_record.name, profile.dns)
    resolver = str(profile.dns.resolver or "system resolver")
    evidence.json(
        "resolution",
        {"name": dns_record.name, "resolver": resolver, "answers": sorted(map(str, answered))},
    )
    assert answered, f"{dns_record.name} does not resolve ({resolver})"
    unexpected = answered - expected
    assert not unexpected, f"{dns_record.name} also resolves to {sorted(map(str, unexpected))}"
    missing = expected - answered if dns_record.all_required else set()
    assert not missing, f"{dns_record.name} does not resolve to {sorted(map(str, missing))}"
