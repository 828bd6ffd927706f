"""Release, configuration and secrets checks (APP-010, APP-011, CFG-001, SEC-001, SEC-002).

Parsers first, on realistic reports of each format (tests/data/scans, tests/data/junit).
Then the shipped checks through the real CLI on a small profile of real files: a healthy set
where every check passes, and for each check a copy broken in exactly the way that check
exists to catch, which must fail that check id and no other.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
import string
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from opsverify.drivers import commands, junit, scans, secrets
from opsverify.profile import Command
from tests.helpers import readiness, run_selected

DATA = Path(__file__).parent / "data"
SCANS = DATA / "scans"
JUNIT = DATA / "junit"
SELECT = "APP-010 or APP-011 or SEC-001 or SEC-002 or CFG-001"
IDS = {"APP-010", "APP-011", "SEC-001", "SEC-002", "CFG-001"}
# Generated per run, in the shape of an AWS access key id: detect-secrets must find it by
# its form, and no real or published key sits in this repository.
_KEY_CHARS = string.ascii_uppercase + string.digits
FAKE_AWS_KEY = "AKIA" + "".join(random.SystemRandom().choice(_KEY_CHARS) for _ in range(16))


# --- parsers ------------------------------------------------------------------------------


def test_trivy_report_vulnerabilities_and_failed_misconfigurations() -> None:
    report = scans.parse(SCANS / "trivy.json", "trivy")
    assert [(f.id, f.severity) for f in report.findings] == [
        ("CVE-2024-37371", "MEDIUM"),
        ("CVE-2011-3374", "LOW"),
        ("AVD-DS-0002", "HIGH"),  # the PASS misconfiguration is not a finding
    ]
    assert report.findings[0].package == "libkrb5-3@1.20.1-2+deb12u1"
    assert report.findings[0].title == "krb5: GSS message token handling"
    assert report.scanned_at == datetime(2026, 11, 20, 9, 14, 3, 581926, tzinfo=UTC)
    assert scans.blocking(report, ["CRITICAL"]) == []
    assert [f.id for f in scans.blocking(report, ["CRITICAL", "HIGH"])] == ["AVD-DS-0002"]


def test_grype_report_matches_with_negligible_as_low() -> None:
    report = scans.parse(SCANS / "grype.json", "grype")
    assert [(f.id, f.package, f.severity) for f in report.findings] == [
        ("GHSA-9wx4-h78v-vm56", "requests@2.31.0", "MEDIUM"),
        ("CVE-2005-2541", "tar@1.34+dfsg-1.2+deb12u1", "LOW"),
    ]
    assert "(fixed in 2.32.0)" in report.findings[0].title
    assert report.tool == "grype 0.84.0"
    assert report.scanned_at == datetime(2026, 11, 20, 9, 16, 55, 219873, tzinfo=UTC)


def test_sarif_severity_from_security_severity_then_level_and_suppressions_skipped() -> None:
    report = scans.parse(SCANS / "sarif.json", "sarif")
    assert [(f.id, f.package, f.severity) for f in report.findings] == [
        ("py/clear-text-logging-sensitive-data", "src/cronos/db.py:42", "HIGH"),  # 7.5
        ("py/unused-import", "src/cronos/app.py:3", "LOW"),  # level note
    ]
    assert report.findings[0].title == "Clear-text logging of sensitive information"
    assert report.scanned_at == datetime(2026, 11, 20, 9, 10, 47, 512000, tzinfo=UTC)


def test_pip_audit_vulns_are_unrated_hence_blocking_and_skips_are_noted() -> None:
    report = scans.parse(SCANS / "pip-audit.json", "pip-audit")
    [finding] = report.findings
    assert finding.id == "PYSEC-2023-62 (CVE-2023-30861, GHSA-m2qf-hxjv-5gpq)"
    assert finding.package == "flask@2.2.2" and finding.severity == "UNKNOWN"
    assert "(fixed in 2.2.5, 2.3.2)" in finding.title
    assert scans.blocking(report, ["CRITICAL"]) == [finding]
    assert report.scanned_at is None
    assert report.not_covered == [
        "cronos-internal: Dependency not found on PyPI and could not be "
        "audited: cronos-internal (0.9.0)"
    ]
    assert report.coverage() == "2 of 3 dependencies audited"
    # pip-audit before 2.0 wrote the dependency list alone.
    old = scans.pip_audit(json.loads((SCANS / "pip-audit.json").read_text())["dependencies"])
    assert old.findings == report.findings


def test_unreadable_or_mismatched_reports_raise_scan_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"SchemaVersion": 2, "Results": [')
    with pytest.raises(scans.ScanError, match="not valid JSON"):
        scans.parse(broken, "trivy")
    with pytest.raises(scans.ScanError, match="not a Grype JSON report"):
        scans.parse(SCANS / "trivy.json", "grype")
    with pytest.raises(scans.ScanError, match="not a SARIF 2.1.0 log"):
        scans.parse(SCANS / "grype.json", "sarif")
    with pytest.raises(scans.ScanError, match="scan report not found"):
        scans.parse(tmp_path / "missing.json", "pip-audit")


def test_junit_testsuites_counted_across_suites_with_failing_names() -> None:
    report = junit.parse(JUNIT / "testsuites.xml")
    assert (report.suites, report.tests, report.failures, report.errors, report.skipped) == (
        2,
        6,
        1,
        1,
        1,
    )
    assert report.failing == [
        "tests.unit.test_items::test_list_paginates: AssertionError: assert 51 == 50",
        'tests.integration.test_db::test_rollback: failed on setup with "psycopg.'
        'OperationalError: connection refused"',
    ]
    assert report.ran_at == datetime(2026, 11, 20, 9, 1, 2, 118530, tzinfo=UTC)  # the oldest
    assert report.ran_at_source == "suite timestamp"


def test_junit_bare_testsuite_and_zone_less_timestamp_read_as_utc(tmp_path: Path) -> None:
    report = junit.parse(JUNIT / "bare-testsuite.xml")
    assert (report.suites, report.tests, report.failures, report.errors) == (1, 3, 0, 0)
    assert report.ran_at == datetime(2026, 11, 20, 9, 5, 33, tzinfo=UTC)
    assert "read as UTC" in report.ran_at_source
    # Without any timestamp the file's mtime tells the age, and the evidence says so.
    plain = tmp_path / "plain.xml"
    plain.write_text(re.sub(r' timestamp="[^"]*"', "", (JUNIT / "bare-testsuite.xml").read_text()))
    when, source = junit.produced_at(junit.parse(plain))
    assert source == "file mtime" and abs((datetime.now(UTC) - when).total_seconds()) < 60
    html = tmp_path / "report.html"
    html.write_text("<html><body>CI artifact expired</body></html>")
    with pytest.raises(junit.JunitError, match="expected <testsuites> or <testsuite>"):
        junit.parse(html)


def test_command_timeout_kills_the_process_group_in_time() -> None:
    started = time.monotonic()
    outcome = commands.run(
        Command(name="hang", argv=["sh", "-c", "echo started; sleep 30 & wait"], timeout="1s")
    )
    assert time.monotonic() - started < 5
    assert outcome.timed_out and outcome.exit_code is None and "started" in outcome.output


def test_secret_scan_reports_where_and_what_never_the_value(tmp_path: Path) -> None:
    (tmp_path / "app.env").write_text(f"REGION=eu-west-1\nAWS_ACCESS_KEY_ID={FAKE_AWS_KEY}\n")
    (tmp_path / "clean.yaml").write_text("replicas: 3\n")
    scan = secrets.scan(tmp_path)
    assert scan.files == 2
    assert [f.evidence() for f in scan.findings] == [
        {"file": str(tmp_path / "app.env"), "line": 2, "type": "AWS Access Key"}
    ]


def test_an_existing_path_with_a_random_folder_name_is_no_secret(tmp_path: Path) -> None:
    """supervisord's environment line, as the sandbox renders it below a temporary folder
    whose random name the entropy plugin flags (detect-secrets keeps a backslash after the
    quoted path); a high-entropy value that is no path still is one."""
    # The very folder a CI run flagged: a short path keeps the random name's entropy high.
    sandbox = Path("/tmp/opsverify-e2e-8fznlqxu")
    (sandbox / "secrets").mkdir(parents=True, exist_ok=True)
    try:
        (sandbox / "secrets" / "db_password").touch()
        config = tmp_path / "config"
        config.mkdir()
        (config / "supervisord.conf").write_text(  # read as INI: it needs its section
            f'[program:cronos-ai]\nenvironment=CRONOS_DB_NAME="cronos_ai",'
            f'CRONOS_DB_PASSWORD_FILE="{sandbox}/secrets/db_password",CRONOS_PORT="21432"\n'
        )
        assert secrets.scan(config).findings == []
        token = base64.b64encode(os.urandom(60)).decode()  # generated, 80 characters: high entropy
        (config / "app.ini").write_text(f'token = "{token}"\n')
        assert {(f.file, f.type) for f in secrets.scan(config).findings} == {
            (str(config / "app.ini"), "Base64 High Entropy String")
        }
    finally:
        shutil.rmtree(sandbox)


# --- the shipped checks, through the CLI -----------------------------------------------------

RULES_OK = """\
groups:
  - name: cronos-ai
    rules:
      - alert: CronosDown
        expr: up{job="cronos-ai"} == 0
        for: 1m
        labels: {severity: critical}
        annotations: {summary: cronos-ai is down}
"""


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _fresh_scan(fmt: str) -> dict:
    """The sample report of ``fmt``, clean at CRITICAL (pip-audit: no vulnerability at all),
    stamped as scanned now."""
    data = json.loads((SCANS / f"{fmt}.json").read_text())
    if fmt == "trivy":
        data["CreatedAt"] = _now()
    elif fmt == "grype":
        data["descriptor"]["timestamp"] = _now()
    elif fmt == "sarif":
        data["runs"][0]["invocations"][0]["endTimeUtc"] = _now()
    else:  # and every dependency audited: a skipped one makes the scan incomplete
        data["dependencies"][0]["vulns"] = []
        data["dependencies"] = [d for d in data["dependencies"] if "skip_reason" not in d]
    return data


def _critical(fmt: str, data: dict) -> None:
    """Plant one CRITICAL finding the way ``fmt`` rates it."""
    if fmt == "trivy":
        data["Results"][0]["Vulnerabilities"][0]["Severity"] = "CRITICAL"
    elif fmt == "grype":
        data["matches"][0]["vulnerability"]["severity"] = "Critical"
    elif fmt == "sarif":
        data["runs"][0]["tool"]["driver"]["rules"][0]["properties"]["security-severity"] = "9.8"
    else:  # pip-audit rates nothing: a known vulnerability is unrated, hence blocking
        data["dependencies"][0]["vulns"] = [
            {"id": "PYSEC-2023-62", "fix_versions": ["2.3.2"], "aliases": [], "description": "x"}
        ]


def healthy_set(folder: Path, *, rules: str = RULES_OK, timeout: str = "20s") -> Path:
    """Real artifacts every check passes on, and the profile that points at them."""
    folder.mkdir(parents=True, exist_ok=True)
    suite = junit.parse(JUNIT / "bare-testsuite.xml")
    assert suite.failures == 0
    text = (JUNIT / "bare-testsuite.xml").read_text()
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    (folder / "junit.xml").write_text(re.sub(r'timestamp="[^"]*"', f'timestamp="{stamp}"', text))
    for fmt in scans.PARSERS:
        (folder / f"{fmt}.json").write_text(json.dumps(_fresh_scan(fmt)))
    (folder / "config").mkdir(exist_ok=True)
    (folder / "config" / "rules.yml").write_text(rules)
    (folder / "config" / "app.yaml").write_text("listen: 127.0.0.1:8080\nworkers: 4\n")
    secret = folder / "secrets" / "api_token"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text("token-value-kept-out-of-scan-paths\n")
    secret.chmod(0o600)
    profile = {
        "name": "appchecks",
        "tier": "staging",
        "tests": [{"name": "unit", "file": "junit.xml", "max_age": "1d"}],
        "security": {
            "fail_on": ["CRITICAL"],
            "scans": [
                {"name": fmt, "file": f"{fmt}.json", "format": fmt, "max_age": "1d"}
                for fmt in scans.PARSERS
            ],
            "scan_paths": ["config"],
        },
        "config_validation": [
            {
                "name": "rules",
                "argv": ["promtool", "check", "rules", "config/rules.yml"],
                "cwd": ".",
                "timeout": timeout,
            }
        ],
        "hosts": [{"name": "self", "url": "local://", "secret_files": ["secrets/api_token"]}],
    }
    path = folder / "appchecks.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


def run_checks(profile: Path, run_dir: Path) -> dict[str, list[dict]]:
    results = run_selected(profile, run_dir, SELECT)
    assert results.keys() == IDS, results
    return results


def failed(results: dict[str, list[dict]]) -> set[str]:
    return {i for i, checks in results.items() if any(c["status"] != "passed" for c in checks)}


def evidence_of(run_dir: Path, check: dict, name: str) -> dict | list:
    [path] = [p for p in check["evidence"] if Path(p).stem.split("-", 1)[1] == name]
    return json.loads((run_dir / path).read_text())


def test_healthy_set_passes_every_check_with_evidence(tmp_path: Path) -> None:
    results = run_checks(healthy_set(tmp_path / "set"), tmp_path / "run")
    assert failed(results) == set(), results
    assert len(results["APP-011"]) == 4  # one per report
    assert all(c["evidence"] for checks in results.values() for c in checks)
    report = evidence_of(tmp_path / "run", results["APP-010"][0], "test-report")
    assert report["tests"] == 3 and report["age_from"].startswith("suite timestamp")
    file = evidence_of(tmp_path / "run", results["SEC-002"][0], "file")
    assert file["mode"] == "0o600" and file["owner"] == "root"


Breaker = Callable[[Path], None]


def _failing_test(folder: Path) -> None:
    shutil.copy(JUNIT / "testsuites.xml", folder / "junit.xml")
    text = (folder / "junit.xml").read_text()
    (folder / "junit.xml").write_text(text.replace("2026-11-20T09:01", _now()[:16]))


def _expired_junit(folder: Path) -> None:
    old = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S")
    text = (folder / "junit.xml").read_text()
    (folder / "junit.xml").write_text(re.sub(r'timestamp="[^"]*"', f'timestamp="{old}"', text))


def _plant_aws_key(folder: Path) -> None:
    (folder / "config" / "deploy.env").write_text(f"AWS_ACCESS_KEY_ID={FAKE_AWS_KEY}\n")


def _loose_secret(folder: Path) -> None:
    (folder / "secrets" / "api_token").chmod(0o644)


@pytest.mark.parametrize(
    ("breaker", "check_id", "expected"),
    [
        (_failing_test, "APP-010", "test_list_paginates"),
        (_expired_junit, "APP-010", "the limit is 1 day"),
        (_plant_aws_key, "SEC-001", "AWS Access Key at"),
        (_loose_secret, "SEC-002", "has mode 0o644"),
    ],
    ids=["junit-failure", "junit-expired", "aws-key", "secret-0644"],
)
def test_each_fault_fails_exactly_its_check(
    breaker: Breaker, check_id: str, expected: str, tmp_path: Path
) -> None:
    folder = tmp_path / "set"
    profile = healthy_set(folder)
    breaker(folder)
    results = run_checks(profile, tmp_path / "run")
    assert failed(results) == {check_id}
    [check] = [c for c in results[check_id] if c["status"] == "failed"]
    assert expected in check["message"], check["message"]
    if check_id == "SEC-001":  # where and what, never the key itself
        assert FAKE_AWS_KEY not in json.dumps(readiness(tmp_path / "run"))
        assert not any(FAKE_AWS_KEY in p.read_text() for p in (tmp_path / "run").rglob("*.json"))


@pytest.mark.parametrize("fmt", list(scans.PARSERS))
def test_a_critical_finding_in_each_format_fails_the_scan_check(fmt: str, tmp_path: Path) -> None:
    folder = tmp_path / "set"
    profile = healthy_set(folder)
    data = json.loads((folder / f"{fmt}.json").read_text())
    _critical(fmt, data)
    (folder / f"{fmt}.json").write_text(json.dumps(data))
    results = run_checks(profile, tmp_path / "run")
    assert failed(results) == {"APP-011"}
    bad = [c for c in results["APP-011"] if c["status"] != "passed"]
    assert [c["parameter"] for c in bad] == [fmt]
    assert "1 finding(s)" in bad[0]["message"]


def _unaudited(data: dict) -> dict:
    """pip-audit as it writes a run without a route to its vulnerability service: every
    dependency skipped, no vulnerability found."""
    data["dependencies"] = [
        {"name": d["name"], "skip_reason": f"Dependency not found on PyPI: {d['name']}"}
        for d in data["dependencies"]
    ]
    return data


def test_a_scan_that_audited_nothing_is_no_clean_scan(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    profile = healthy_set(folder)
    report = folder / "pip-audit.json"
    report.write_text(json.dumps(_unaudited(json.loads(report.read_text()))))
    results = run_checks(profile, tmp_path / "run")
    assert failed(results) == {"APP-011"}
    [bad] = [c for c in results["APP-011"] if c["status"] != "passed"]
    assert bad["status"] == "failed" and bad["parameter"] == "pip-audit"
    assert bad["message"].startswith("incomplete scan, 0 of 2 dependencies audited")
    assert "flask: Dependency not found on PyPI" in bad["message"]


def test_an_incomplete_scan_where_the_profile_says_why_is_not_applicable(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    profile = healthy_set(folder)
    report = folder / "pip-audit.json"
    report.write_text(json.dumps(_unaudited(json.loads(report.read_text()))))
    data = yaml.safe_load(profile.read_text())
    reason = "built offline: no route to PyPI's vulnerability API"
    data["security"]["scans"][3]["incomplete_because"] = reason
    profile.write_text(yaml.safe_dump(data))
    results = run_checks(profile, tmp_path / "run")
    [pip_audit] = [c for c in results["APP-011"] if c["parameter"] == "pip-audit"]
    assert pip_audit["status"] == "not_applicable"
    assert pip_audit["message"] == f"incomplete scan, 0 of 2 dependencies audited: {reason}"


def test_a_sarif_run_that_did_not_complete_is_no_clean_scan() -> None:
    data = json.loads((SCANS / "sarif.json").read_text())
    data["runs"][0]["invocations"][0]["executionSuccessful"] = False
    data["runs"][0]["invocations"][0]["toolExecutionNotifications"] = [
        {"level": "error", "message": {"text": "Out of memory while extracting the database"}}
    ]
    report = scans.sarif(data)
    assert report.coverage() == "0 of 1 runs completed"
    assert "Out of memory while extracting the database" in report.not_covered[0]


def test_an_unparseable_report_fails_with_a_clear_message(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    profile = healthy_set(folder)
    (folder / "grype.json").write_text("<html>502 Bad Gateway</html>")
    results = run_checks(profile, tmp_path / "run")
    assert failed(results) == {"APP-011"}
    [bad] = [c for c in results["APP-011"] if c["status"] != "passed"]
    assert "unreadable scan report" in bad["message"] and "not valid JSON" in bad["message"]


def test_a_broken_rules_file_fails_config_validation_with_promtool_output(tmp_path: Path) -> None:
    broken = RULES_OK.replace('up{job="cronos-ai"} == 0', 'up{job="cronos-ai" == 0')
    results = run_checks(healthy_set(tmp_path / "set", rules=broken), tmp_path / "run")
    assert failed(results) == {"CFG-001"}
    [check] = results["CFG-001"]
    assert "promtool check rules config/rules.yml exited 1" in check["message"]
    seen = evidence_of(tmp_path / "run", check, "command")
    assert seen["exit_code"] == 1 and "FAILED" in seen["output"]


def test_a_hanging_validator_fails_within_its_timeout(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    profile = healthy_set(folder)
    data = yaml.safe_load(profile.read_text())
    data["config_validation"][0] |= {"argv": ["sleep", "60"], "timeout": "2s"}
    profile.write_text(yaml.safe_dump(data))
    results = run_checks(profile, tmp_path / "run")
    assert failed(results) == {"CFG-001"}
    [check] = results["CFG-001"]
    assert "no answer within 0:00:02, killed" in check["message"]
    assert check["duration"] < 10


def test_junit_summary_with_an_unreadable_count_is_an_error_not_zero(tmp_path: Path) -> None:
    report = tmp_path / "summary.xml"
    report.write_text('<testsuite name="unit" tests="12" failures="many" errors="0"/>')
    with pytest.raises(junit.JunitError, match="failures='many' is not a count"):
        junit.parse(report)
