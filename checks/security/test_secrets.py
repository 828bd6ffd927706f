"""Handbook › Pre-Production Checklist › Application › "Secrets properly managed";
Security Operations › secrets: none in plaintext, secret files readable by their owner only."""

from opsverify import family
from opsverify.drivers import hosts, secrets

secret_check = family(
    category="security",
    controls=["SOC2:CC6.1", "ISO27001:A.5.17", "ISO27001:A.8.24"],
    runbook="runbooks/secrets.md",
    cadences=["predeploy", "daily"],
)


@secret_check(
    "SEC-001", "No plaintext secrets in configuration and code folders", severity="critical"
)
def test_no_plaintext_secrets(secret_scan_path, evidence):
    try:
        scan = secrets.scan(secret_scan_path)
    except FileNotFoundError as exc:
        raise AssertionError(f"folder to scan is missing: {exc}") from None
    # Where and what kind, never the value (nor its hash: short secrets can be brute-forced).
    evidence.json(
        "secret-scan",
        {
            "path": str(secret_scan_path),
            "scanner": "detect-secrets (default plugins and filters)",
            "files_scanned": scan.files,
            "findings": [f.evidence() for f in scan.findings],
        },
    )
    assert scan.files > 0, f"{secret_scan_path}: no file to scan"
    assert not scan.findings, f"{len(scan.findings)} plaintext secret(s): " + "; ".join(
        f"{f.type} at {f.file}:{f.line}" for f in scan.findings[:10]
    )


# A secret others can read is a secret exposed: release-blocking.
@secret_check("SEC-002", "Secret files exist and are not readable by others", severity="critical")
def test_secret_file_not_world_readable(secret_file, evidence):
    host, path = secret_file
    remote = hosts.connect(host).file(str(path))
    exists = remote.exists
    seen = {"host": host.name, "url": host.url, "path": str(path), "exists": exists}
    if exists:
        seen |= {"mode": oct(remote.mode), "owner": remote.user, "group": remote.group}
    evidence.json("file", seen)
    assert exists, f"{host.name}:{path} does not exist"
    assert remote.mode & 0o007 == 0, (
        f"{host.name}:{path} has mode {oct(remote.mode)} (owner {remote.user}): others may "
        "access it; chmod o-rwx"
    )
