"""Handbook › Infrastructure › "TLS certificates installed and valid"; Certificate Management."""

import pytest

from opsverify import check
from opsverify.drivers import tls


@pytest.fixture
def handshake(tls_endpoint, profile, evidence):
    """One real handshake per endpoint and check; its details are the evidence."""
    seen = tls.handshake(
        tls_endpoint.host,
        tls_endpoint.port,
        server_name=tls_endpoint.server_name,
        ca_file=profile.tls.ca_file,
        timeout=tls_endpoint.timeout.total_seconds(),
    )
    evidence.json("handshake", seen.evidence())
    return seen


@check(
    "TLS-001",
    "Certificate chains to the trusted CA and matches the endpoint's name",
    category="infrastructure",
    severity="critical",
    cadences=["predeploy", "daily"],
    controls=["SOC2:CC6.7", "ISO27001:A.8.24"],
    runbook="runbooks/tls-certificates.md",
)
def test_certificate_trusted(handshake):
    assert handshake.verified, f"certificate rejected: {handshake.verify_error}"


@check(
    "TLS-002",
    "Certificate is not expired and has enough days left",
    category="infrastructure",
    severity="high",
    cadences=["predeploy", "daily"],
    controls=["SOC2:CC6.7", "ISO27001:A.8.24"],
    runbook="runbooks/tls-certificates.md",
)
def test_certificate_lifetime(handshake, profile):
    minimum = profile.tls.min_days_left
    assert handshake.days_left >= minimum, (
        f"certificate expires {handshake.certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, "
        f"{handshake.days_left:.1f} days left; at least {minimum} required"
    )


_VERSIONS = {"TLSv1": 0, "TLSv1.1": 1, "TLSv1.2": 2, "TLSv1.3": 3}


@check(
    "TLS-003",
    "Negotiated TLS version meets the minimum",
    category="infrastructure",
    severity="high",
    cadences=["predeploy"],
    controls=["SOC2:CC6.7", "ISO27001:A.8.24"],
    runbook="runbooks/tls-certificates.md",
)
def test_protocol_version(handshake, profile):
    minimum = profile.tls.min_version
    assert _VERSIONS.get(handshake.protocol, -1) >= _VERSIONS[minimum], (
        f"negotiated {handshake.protocol or 'nothing'}, minimum is {minimum}"
    )
