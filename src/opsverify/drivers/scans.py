"""Security scan reports: Trivy JSON, Grype JSON, SARIF 2.1.0 and pip-audit JSON, read into one
list of findings (id, package, severity, title) with the time the scan ran, when it says.

Severities are normalised to CRITICAL, HIGH, MEDIUM, LOW, or UNKNOWN where the report rates
none (pip-audit never does; Trivy and Grype sometimes say so themselves).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsverify import message as text

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")


class ScanError(Exception):
    """A report that cannot be read as the format it is declared to be."""


@dataclass(frozen=True)
class Finding:
    id: str
    package: str
    severity: str
    title: str

    def evidence(self) -> dict[str, str]:
        return {
            "id": self.id,
            "package": self.package,
            "severity": self.severity,
            "title": self.title,
        }

    def describe(self) -> str:
        return f"{self.id} {self.severity} in {self.package}: {self.title}"


@dataclass(frozen=True)
class Report:
    format: str
    tool: str
    findings: list[Finding]
    scanned_at: datetime | None = None  # as the report states it; None: it does not
    # What the scan did not cover, as the report states it: dependencies it could not audit
    # (pip-audit's skip_reason), a run that did not complete (SARIF executionSuccessful).
    # A scan that left something out is no clean scan.
    not_covered: list[str] = field(default_factory=list)
    scanned: int | None = None  # units the report lists (dependencies, runs); None: unknown

    def counts(self) -> dict[str, int]:
        return {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}

    def coverage(self) -> str | None:
        """Why the scan is incomplete, with its count, or None when it covered everything it
        lists: "0 of 4 dependencies audited"."""
        if not self.not_covered:
            return None
        unit = "dependencies audited" if self.format == "pip-audit" else "runs completed"
        done = (self.scanned or len(self.not_covered)) - len(self.not_covered)
        return f"{done} of {self.scanned or len(self.not_covered)} {unit}"


def _severity(value: Any) -> str:
    text = str(value or "").strip().upper()
    if text == "NEGLIGIBLE":  # Grype's lowest rating
        return "LOW"
    return text if text in SEVERITIES else "UNKNOWN"


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    # Go writes nanoseconds; Python takes at most microseconds.
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        text = f"{head}.{digits[:6]}{tail[len(digits) :]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ScanError(f"expected {what} to be a JSON object, got {type(data).__name__}")
    return data


def trivy(data: Any) -> Report:
    """``trivy image|fs --format json`` (SchemaVersion 2): Results[] of Vulnerabilities,
    Misconfigurations (only status FAIL counts) and Secrets."""
    doc = _object(data, "a Trivy report")
    if "Results" not in doc and "SchemaVersion" not in doc:
        raise ScanError("not a Trivy JSON report (no SchemaVersion, no Results)")
    findings = []
    for result in doc.get("Results") or []:
        target = result.get("Target", "")
        for vuln in result.get("Vulnerabilities") or []:
            package = vuln.get("PkgName", "?")
            if vuln.get("InstalledVersion"):
                package += f"@{vuln['InstalledVersion']}"
            findings.append(
                Finding(
                    id=vuln.get("VulnerabilityID", "?"),
                    package=package,
                    severity=_severity(vuln.get("Severity")),
                    title=vuln.get("Title") or vuln.get("PrimaryURL") or "",
                )
            )
        for misconf in result.get("Misconfigurations") or []:
            if misconf.get("Status", "FAIL") != "FAIL":
                continue
            findings.append(
                Finding(
                    id=misconf.get("AVDID") or misconf.get("ID", "?"),
                    package=target,
                    severity=_severity(misconf.get("Severity")),
                    title=misconf.get("Title", ""),
                )
            )
        for secret in result.get("Secrets") or []:
            findings.append(
                Finding(
                    id=secret.get("RuleID", "?"),
                    package=f"{target}:{secret.get('StartLine', '?')}",
                    severity=_severity(secret.get("Severity")),
                    title=secret.get("Title", ""),
                )
            )
    return Report("trivy", "trivy", findings, _when(doc.get("CreatedAt")))


def grype(data: Any) -> Report:
    """``grype -o json``: matches[] of {vulnerability, artifact}; descriptor.timestamp."""
    doc = _object(data, "a Grype report")
    if "matches" not in doc:
        raise ScanError("not a Grype JSON report (no matches)")
    findings = []
    for match in doc.get("matches") or []:
        vuln = match.get("vulnerability") or {}
        artifact = match.get("artifact") or {}
        package = artifact.get("name", "?")
        if artifact.get("version"):
            package += f"@{artifact['version']}"
        fixed = ((vuln.get("fix") or {}).get("versions")) or []
        title = (vuln.get("description") or vuln.get("dataSource") or "").splitlines()
        findings.append(
            Finding(
                id=vuln.get("id", "?"),
                package=package,
                severity=_severity(vuln.get("severity")),
                title=(text.head(title[0], 200) if title else "")
                + (f" (fixed in {', '.join(fixed)})" if fixed else ""),
            )
        )
    descriptor = doc.get("descriptor") or {}
    tool = f"grype {descriptor.get('version', '')}".strip()
    return Report("grype", tool, findings, _when(descriptor.get("timestamp")))


def _sarif_severity(result: dict[str, Any], rule: dict[str, Any]) -> str:
    """GitHub's convention: a numeric ``security-severity`` (result, else rule property)
    over 9.0 is critical, 7.0+ high, 4.0+ medium, above 0 low; without one, the SARIF level
    (error high, warning medium, note low)."""
    for props in (result.get("properties") or {}, rule.get("properties") or {}):
        score = props.get("security-severity")
        if score is not None:
            try:
                value = float(score)
            except (TypeError, ValueError):
                continue
            if value >= 9.0:
                return "CRITICAL"
            if value >= 7.0:
                return "HIGH"
            if value >= 4.0:
                return "MEDIUM"
            return "LOW" if value > 0 else "UNKNOWN"
    level = result.get("level") or (rule.get("defaultConfiguration") or {}).get("level")
    return {"error": "HIGH", "warning": "MEDIUM", "note": "LOW"}.get(level or "warning", "LOW")


def sarif(data: Any) -> Report:
    """SARIF 2.1.0: runs[] of tool.driver.rules and results; suppressed results and results
    whose kind is not ``fail`` (pass, notApplicable, informational…) are not findings."""
    doc = _object(data, "a SARIF log")
    if not str(doc.get("version", "")).startswith("2.1") or not isinstance(doc.get("runs"), list):
        raise ScanError("not a SARIF 2.1.0 log (version must be 2.1.0, with runs[])")
    findings, tools, times, failed = [], [], [], []
    for run in doc["runs"]:
        driver = (run.get("tool") or {}).get("driver") or {}
        tools.append(f"{driver.get('name', '?')} {driver.get('version', '')}".strip())
        rules = driver.get("rules") or []
        by_id = {r.get("id"): r for r in rules}
        for invocation in run.get("invocations") or []:
            moment = _when(invocation.get("endTimeUtc") or invocation.get("startTimeUtc"))
            if moment:
                times.append(moment)
            if invocation.get("executionSuccessful") is False:
                errors = [
                    (n.get("message") or {}).get("text", "")
                    for n in invocation.get("toolExecutionNotifications") or []
                    if n.get("level", "warning") == "error"
                ]
                failed.append(f"{tools[-1]} did not complete: {'; '.join(errors) or 'no reason'}")
        for result in run.get("results") or []:
            if result.get("kind", "fail") != "fail" or result.get("suppressions"):
                continue
            index = result.get("ruleIndex", (result.get("rule") or {}).get("index"))
            rule_id = result.get("ruleId") or (result.get("rule") or {}).get("id")
            rule = by_id.get(rule_id) or {}
            if not rule and isinstance(index, int) and 0 <= index < len(rules):
                rule = rules[index]
                rule_id = rule_id or rule.get("id")
            where = "?"
            for location in result.get("locations") or []:
                physical = location.get("physicalLocation") or {}
                uri = (physical.get("artifactLocation") or {}).get("uri")
                line = (physical.get("region") or {}).get("startLine")
                if uri:
                    where = f"{uri}:{line}" if line else uri
                    break
            message = ((result.get("message") or {}).get("text") or "").splitlines()
            short = (rule.get("shortDescription") or {}).get("text")
            findings.append(
                Finding(
                    id=rule_id or "?",
                    package=where,
                    severity=_sarif_severity(result, rule),
                    title=short or (text.head(message[0], 200) if message else ""),
                )
            )
    return Report(
        "sarif",
        ", ".join(tools),
        findings,
        max(times) if times else None,
        not_covered=failed,
        scanned=len(doc["runs"]),
    )


def pip_audit(data: Any) -> Report:
    """``pip-audit -f json``: dependencies[] with vulns[] (id, aliases, fix_versions,
    description) or a skip_reason; pip-audit before 2.0 wrote the list alone. It rates no
    severity: every finding is UNKNOWN, and the scan check treats unrated as blocking."""
    if isinstance(data, list):
        dependencies = data
    elif isinstance(data, dict) and isinstance(data.get("dependencies"), list):
        dependencies = data["dependencies"]
    else:
        raise ScanError("not a pip-audit JSON report (no dependencies[])")
    findings, skipped = [], []
    for dep in dependencies:
        if not isinstance(dep, dict) or "name" not in dep:
            raise ScanError("not a pip-audit JSON report (a dependency without a name)")
        if dep.get("skip_reason"):
            skipped.append(f"{dep['name']}: {dep['skip_reason']}")
            continue
        for vuln in dep.get("vulns") or []:
            aliases = [a for a in vuln.get("aliases") or [] if a != vuln.get("id")]
            fixed = vuln.get("fix_versions") or []
            title = (vuln.get("description") or "").strip().splitlines()
            findings.append(
                Finding(
                    id=vuln.get("id", "?") + (f" ({', '.join(aliases)})" if aliases else ""),
                    package=f"{dep['name']}@{dep.get('version', '?')}",
                    severity="UNKNOWN",
                    title=(text.head(title[0], 200) if title else "")
                    + (f" (fixed in {', '.join(fixed)})" if fixed else ""),
                )
            )
    return Report(
        "pip-audit", "pip-audit", findings, None, not_covered=skipped, scanned=len(dependencies)
    )


PARSERS: dict[str, Callable[[Any], Report]] = {
    "trivy": trivy,
    "grype": grype,
    "sarif": sarif,
    "pip-audit": pip_audit,
}


def parse(path: Path, format: str) -> Report:
    """Read ``path`` as ``format``; ScanError names the file and what is wrong with it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScanError(f"{path}: scan report not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScanError(f"{path}: cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ScanError(f"{path}: not valid JSON ({exc}), expected a {format} report") from None
    try:
        return PARSERS[format](data)
    except ScanError as exc:
        raise ScanError(f"{path}: {exc}") from None
    except (AttributeError, TypeError, KeyError) as exc:
        raise ScanError(f"{path}: unexpected structure for a {format} report: {exc!r}") from None


def scanned_at(report: Report, path: Path) -> tuple[datetime, str]:
    """When the scan ran: the time the report states, else the file's modification time."""
    if report.scanned_at is not None:
        return report.scanned_at, "report timestamp"
    return datetime.fromtimestamp(path.stat().st_mtime, UTC), "file mtime"


def blocking(report: Report, fail_on: list[str]) -> list[Finding]:
    """Findings rated in ``fail_on``, and unrated ones (fail closed: an unknown severity may
    be critical)."""
    return [f for f in report.findings if f.severity in fail_on or f.severity == "UNKNOWN"]
