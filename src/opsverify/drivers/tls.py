"""TLS driver: a real handshake (standard library), the certificate read with cryptography."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from opsverify.drivers.http import tls_context

_VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


def at_least(protocol: str, minimum: str) -> bool:
    """Whether a negotiated protocol (as ssl reports it) is ``minimum`` or newer."""
    rank = {name: i for i, name in enumerate(_VERSIONS)}
    return rank.get(protocol, -1) >= rank[minimum]


@dataclass(frozen=True)
class Handshake:
    host: str
    port: int
    server_name: str
    protocol: str
    cipher: str
    certificate: x509.Certificate
    verified: bool  # chain to the trusted CA and name match, as a strict client checks them
    verify_error: str | None

    @property
    def days_left(self) -> float:
        remaining = self.certificate.not_valid_after_utc - datetime.now(UTC)
        return remaining.total_seconds() / 86400

    def evidence(self) -> dict[str, Any]:
        cert = self.certificate
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = [str(n.value) for n in san]
        except x509.ExtensionNotFound:
            names = []
        return {
            "endpoint": f"{self.host}:{self.port}",
            "server_name": self.server_name,
            "protocol": self.protocol,
            "cipher": self.cipher,
            "verified": self.verified,
            "verify_error": self.verify_error,
            "certificate": {
                "subject": cert.subject.rfc4514_string(),
                "issuer": cert.issuer.rfc4514_string(),
                "serial": format(cert.serial_number, "x"),
                "not_before": cert.not_valid_before_utc.isoformat(),
                "not_after": cert.not_valid_after_utc.isoformat(),
                "days_left": round(self.days_left, 2),
                "subject_alt_names": names,
                "sha256_fingerprint": cert.fingerprint(hashes.SHA256()).hex(),
            },
        }


def _connect(
    host: str, port: int, server_name: str, context: ssl.SSLContext, timeout: float
) -> tuple[str, str, bytes]:
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:  # name the target: "[Errno 111] Connection refused" alone does not
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConnectionError(f"{host}:{port}: {reason}") from exc
    with raw, context.wrap_socket(raw, server_hostname=server_name) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        cipher = tls.cipher()
        return tls.version() or "", cipher[0] if cipher else "", der


def handshake(
    host: str, port: int, *, server_name: str | None, ca_file: Path | None, timeout: float
) -> Handshake:
    """Handshake strictly; if the chain or name is rejected, look again leniently to report why."""
    name = server_name or host
    strict = tls_context(ca_file)
    error: str | None = None
    try:
        protocol, cipher, der = _connect(host, port, name, strict, timeout)
    except ssl.SSLCertVerificationError as exc:
        error = exc.verify_message or str(exc)
        lenient = ssl.create_default_context()
        lenient.check_hostname = False
        lenient.verify_mode = ssl.CERT_NONE
        protocol, cipher, der = _connect(host, port, name, lenient, timeout)
    return Handshake(
        host=host,
        port=port,
        server_name=name,
        protocol=protocol,
        cipher=cipher,
        certificate=x509.load_der_x509_certificate(der),
        verified=error is None,
        verify_error=error,
    )
