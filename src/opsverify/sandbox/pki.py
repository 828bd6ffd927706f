"""The sandbox's private PKI: one CA and the server certificate nginx serves.

Clients (the engine's TLS checks, httpx) trust ``<state>/pki/ca.pem`` only, so a certificate
problem seeded here (short lifetime) is seen exactly as a real client would see it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .settings import Layout, Settings

CA_DAYS = 3650
SERVER_DAYS = 90
# Backdating absorbs small clock differences between issuing and verifying.
_BACKDATE = dt.timedelta(minutes=5)


def ensure_pki(layout: Layout, days: int = SERVER_DAYS) -> None:
    """Create the CA and a server certificate when missing; keep existing ones."""
    layout.pki_dir.mkdir(parents=True, exist_ok=True)
    if not (layout.ca_cert.exists() and layout.ca_key.exists()):
        _create_ca(layout)
    if not (layout.server_cert.exists() and layout.server_key.exists()):
        issue_server_certificate(layout.root, days)


def issue_server_certificate(target: Settings | Path, days: int = SERVER_DAYS) -> x509.Certificate:
    """(Re-)issue the server certificate from the existing CA, valid ``days`` from now.

    ``target`` is the sandbox settings or its state directory. nginx keeps serving the old
    certificate until it is reloaded (``manager.reload(settings, "nginx")``).
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    layout = target.layout() if isinstance(target, Settings) else Layout(Path(target).resolve())
    if not (layout.ca_cert.exists() and layout.ca_key.exists()):
        raise FileNotFoundError(f"no sandbox CA in {layout.pki_dir}; run `sandbox up` first")
    ca_cert = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(layout.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"unexpected CA key type in {layout.ca_key}")

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            # The IP SAN matters: clients connect to https://127.0.0.1 and verify against it.
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    # Key first: nginx must never pair a new certificate with the previous key.
    write_atomic(layout.server_key, _private_pem(key), 0o600)
    write_atomic(layout.server_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert


def _create_ca(layout: Layout) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opsverify sandbox CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_atomic(layout.ca_key, _private_pem(key), 0o600)
    write_atomic(layout.ca_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with the final mode from the start (a key is never world-readable)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
