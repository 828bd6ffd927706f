"""Handbook › Infrastructure › "TLS certificates installed and valid";
Security Operations › Certificate Management."""

import pytest

from opsverify import family
from opsverify.drivers import tls

tls_check = family(
    category="infrastructure",
    controls=["SOC2:CC6.7", "ISO27001:A.8.24"],
    runbook="runbooks/tls-certificates.md",
    cadences=["predeploy", "daily"],
)


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


@tls_check(
    "TLS-001",
    "Certificate chains to the trusted CA and matches the endpoint's name",
    severity="critical",
)
def test_certificate_trusted(handshake):
    assert handshake.verified, f"certificate rejected: {handshake.verify_error}"


# Fewer days than tls.min_days_left: renewal has failed, and an outage is on its way.
@tls_check("TLS-002", "Certificate is not expired and has enough days left", severity="critical")
def test_certificate_lifetime(handshake, profile):
    minimum = profile.tls.min_days_left
    assert handshake.days_left >= minimum, (
        f"certificate expires {handshake.certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, "
        f"{handshake.days_left:.1f} days left; at least {minimum} required"
    )


@tls_check(
    "TLS-003", "Negotiated TLS version meets the minimum", severity="high", cadences=["predeploy"]
)
def test_protocol_version(handshake, profile):
    minimum = profile.tls.min_version
    assert tls.at_least(handshake.protocol, minimum), (
        f"negotiated {handshake.protocol or 'nothing'}, minimum is {minimum}"
    )
