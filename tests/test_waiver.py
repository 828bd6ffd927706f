"""Waivers: active ones leave the score and show as waived; expired ones fail; bad files stop."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import Suite, readiness

PROFILE = """\
    name: t
    tier: staging
    gate: {min_score: 90}
"""

CHECKS = """\
    import pytest
    from opsverify import family

    area = family(category="security", controls=["SOC2:CC6.1", "ISO27001:A.8.9"],
                  runbook="", cadences=["predeploy"])

    @area("WVR-001", "always passes", severity="medium")
    def test_passes():
        pass

    @area("WVR-002", "critical that fails", severity="critical")
    def test_critical_fails():
        assert False, "the thing is broken"

    @area("WVR-003", "fails on one host", severity="high")
    @pytest.mark.parametrize("host", ["a", "b"])
    def test_per_host(host):
        assert host != "b", f"host {host} is off"
"""

TODAY = datetime.now(UTC).date()


def waiver_file(suite: Suite, body: str) -> None:
    (suite.root / "environments" / "t.waivers.yaml").write_text(body)


@pytest.fixture
def waivable(suite: Suite) -> Suite:
    suite.profile(PROFILE)
    suite.checks("test_w.py", CHECKS)
    return suite


def statuses(folder) -> dict[str, str]:
    return {c["nodeid"].split("::")[-1]: c["status"] for c in readiness(folder)["checks"]}


def test_without_waivers_the_critical_failure_fails_the_gate(waivable: Suite) -> None:
    assert waivable.run().code == 1


def test_active_waivers_leave_the_score_and_show_everywhere(waivable: Suite) -> None:
    future = (TODAY + timedelta(days=30)).isoformat()
    waiver_file(
        waivable,
        f"""\
waivers:
  - check: WVR-002
    justification: Vendor fix lands next sprint, ticket SEC-42
    approver: jane.doe
    expires: {future}
  - check: WVR-003
    parameter: b
    justification: Host b is being decommissioned
    approver: ops-lead
    expires: {future}
""",
    )
    outcome = waivable.run()
    assert outcome.code == 0, outcome.output
    folder = waivable.latest()
    assert statuses(folder) == {
        "test_passes": "passed",
        "test_critical_fails": "waived",
        "test_per_host[a]": "passed",
        "test_per_host[b]": "waived",
    }
    data = readiness(folder)
    assert data["score"]["score"] == 100  # 3 + 5 earned of 3 + 5 applicable
    assert data["score"]["counts"]["waived"] == 2
    critical = next(c for c in data["checks"] if c["id"] == "WVR-002")
    assert critical["waiver"]["approver"] == "jane.doe" and critical["waiver"]["active"]
    assert "SEC-42" in critical["message"] and "the thing is broken" in critical["message"]
    assert "WAIVED WVR-002 critical" in outcome.stdout
    assert "🛡️" in (folder / "summary.md").read_text()
    junit = (folder / "junit.xml").read_text()
    assert "waived until" in junit
    allure = [json.loads(p.read_text()) for p in (folder / "allure-results").glob("*-result.json")]
    waived = next(r for r in allure if r["name"] == "test_critical_fails")
    assert waived["status"] == "skipped"


def test_expired_waiver_counts_as_a_failure_and_says_so(waivable: Suite) -> None:
    past = (TODAY - timedelta(days=1)).isoformat()
    waiver_file(
        waivable,
        f"""\
waivers:
  - check: WVR-002
    justification: was fine for a while
    expires: {past}
""",
    )
    outcome = waivable.run()
    assert outcome.code == 1
    critical = next(c for c in readiness(waivable.latest())["checks"] if c["id"] == "WVR-002")
    assert critical["status"] == "failed"
    assert critical["message"].startswith(f"waiver expired on {past}; ")
    assert critical["waiver"]["active"] is False


def test_waiver_for_a_parameter_does_not_cover_other_parameters(waivable: Suite) -> None:
    waiver_file(
        waivable,
        f"""\
waivers:
  - check: WVR-003
    parameter: a
    justification: only a
    expires: {(TODAY + timedelta(days=3)).isoformat()}
""",
    )
    waivable.run()
    assert statuses(waivable.latest())["test_per_host[b]"] == "failed"


def test_waiver_naming_no_check_of_the_run_is_noted(waivable: Suite) -> None:
    waiver_file(
        waivable,
        f"""\
waivers:
  - check: ZZZ-999
    justification: left over
    expires: {(TODAY + timedelta(days=3)).isoformat()}
""",
    )
    waivable.run()
    notes = readiness(waivable.latest())["notes"]
    assert any("waiver for ZZZ-999" in note for note in notes)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("waivers:\n  - check: WVR-002\n    expires: 2030-01-01\n", "justification: required key"),
        ("waivers:\n  - check: WVR-002\n    justification: x\n", "expires: required key"),
        (
            "waivers:\n  - check: WVR-002\n    justification: x\n    expires: someday\n",
            "waivers[0].expires: Input should be a valid date",
        ),
        (
            "waivers:\n  - check: WVR-002\n    justification: '  '\n    expires: 2030-01-01\n",
            "waivers[0].justification: String should have at least 1 character",
        ),
        (
            "waivers:\n  - chek: WVR-002\n    justification: x\n    expires: 2030-01-01\n",
            "waivers[0].chek: unknown key",
        ),
        ("waivers: [", "not valid YAML"),
    ],
)
def test_malformed_waiver_file_stops_before_any_check(
    waivable: Suite, body: str, expected: str
) -> None:
    waiver_file(waivable, body)
    outcome = waivable.run()
    assert outcome.code == 4, outcome.output
    assert "t.waivers.yaml" in outcome.stderr and expected in outcome.stderr
    assert "Traceback" not in outcome.output
    assert not (waivable.root / "reports").exists()  # nothing ran, nothing half-written


def test_explicit_waiver_file_must_exist(waivable: Suite) -> None:
    outcome = waivable.run("--waivers", "nope.yaml")
    assert outcome.code == 4 and "nope.yaml: waiver not found" in outcome.stderr
