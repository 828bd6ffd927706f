"""Handbook › Pre-Production Checklist › Application › "All tests passing (unit, integration,
e2e)" and "Security scans completed with no critical issues"."""

from datetime import UTC, datetime

from opsverify import family, message, not_applicable
from opsverify.drivers import junit, scans

release_check = family(
    category="application",
    controls=["SOC2:CC8.1", "ISO27001:A.8.29"],
    runbook="runbooks/release-verification.md",
    cadences=["predeploy"],
)


def _age(moment: datetime) -> str:
    hours = (datetime.now(UTC) - moment).total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"


@release_check("APP-010", "All tests passing in the release's test report", severity="critical")
def test_all_tests_passing(junit_artifact, evidence):
    try:
        report = junit.parse(junit_artifact.file)
    except junit.JunitError as exc:
        raise AssertionError(str(exc)) from None
    ran_at, source = junit.produced_at(report)
    evidence.json(
        "test-report",
        {
            **report.evidence(),
            "ran_at": ran_at.isoformat(),
            "age_from": source,
            "max_age_seconds": junit_artifact.max_age.total_seconds(),
        },
    )
    assert report.tests > 0, f"{junit_artifact.file}: the report holds no test"
    assert report.failures == 0 and report.errors == 0, (
        f"{report.failures} failed, {report.errors} errors of {report.tests} tests: "
        + "; ".join(report.failing[:10])
        + (f"; and {len(report.failing) - 10} more" if len(report.failing) > 10 else "")
    )
    assert datetime.now(UTC) - ran_at <= junit_artifact.max_age, (
        f"tests ran {ran_at:%Y-%m-%d %H:%M} UTC ({source}), {_age(ran_at)} ago; "
        f"the limit is {junit_artifact.max_age}: run the tests again for this release"
    )


@release_check(
    "APP-011",
    "Security scans completed with no critical issues",
    severity="critical",
    controls=["SOC2:CC7.1", "ISO27001:A.8.8"],
)
def test_security_scan_clean(scan_report, profile, evidence):
    try:
        report = scans.parse(scan_report.file, scan_report.format)
    except scans.ScanError as exc:
        raise AssertionError(f"unreadable scan report: {exc}") from None
    fail_on = list(profile.security.fail_on)
    blocking = scans.blocking(report, fail_on)
    scanned_at, source = scans.scanned_at(report, scan_report.file)
    evidence.json(
        "scan",
        {
            "file": str(scan_report.file),
            "format": report.format,
            "tool": report.tool,
            "scanned_at": scanned_at.isoformat(),
            "age_from": source,
            "max_age_seconds": scan_report.max_age.total_seconds(),
            "fail_on": fail_on + ["UNKNOWN (unrated)"],
            "counts": report.counts(),
            "blocking": [f.evidence() for f in blocking],
            "coverage": report.coverage() or "complete",
            "not_covered": report.not_covered,
            "incomplete_because": scan_report.incomplete_because,
        },
    )
    evidence.json("findings", [f.evidence() for f in report.findings])
    assert datetime.now(UTC) - scanned_at <= scan_report.max_age, (
        f"scan ran {scanned_at:%Y-%m-%d %H:%M} UTC ({source}), {_age(scanned_at)} ago; "
        f"the limit is {scan_report.max_age}: scan this release again"
    )
    assert not blocking, message.listing(
        [f.describe() for f in blocking], "finding(s)", f"at {'/'.join(fail_on)} or unrated"
    )
    if (incomplete := report.coverage()) and scan_report.incomplete_because:
        not_applicable(f"incomplete scan, {incomplete}: {scan_report.incomplete_because}")
    assert incomplete is None, (
        f"incomplete scan, {incomplete}: an incomplete scan is no clean scan; "
        + message.listing(report.not_covered, "not covered")
    )
