"""The engine end to end through the real CLI, on small suites written by each test."""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from opsverify.report import manifest
from opsverify.report.readiness import schema
from tests.helpers import Suite, opsverify, readiness

PROFILE = """\
    name: t
    tier: staging
    monitoring:
      prometheus: {url: "http://127.0.0.1:9"}
    gate: {min_score: 60}
"""

CHECKS = """\
    from opsverify import check, not_applicable

    def meta(id, severity, cadences=("predeploy",)):
        return check(id, f"check {id}", category="application", severity=severity,
                     cadences=cadences, controls=["SOC2:CC7.1"], runbook="runbooks/x.md")

    @meta("TST-001", "critical")
    def test_critical_passes(evidence):
        evidence.text("note", "all good")

    @meta("TST-002", "high")
    def test_high_passes():
        pass

    @meta("TST-003", "medium", cadences=("predeploy", "daily"))
    def test_medium_fails():
        assert 1 + 1 == 3, "arithmetic broke"

    @meta("TST-004", "low", cadences=("daily",))
    def test_low_not_applicable():
        not_applicable("nothing to look at here")

    @meta("TST-005", "high")
    def test_tls_endpoint_not_configured(tls_endpoint):
        raise AssertionError("never runs: the profile configures no TLS endpoint")
"""


@pytest.fixture
def basic(suite: Suite) -> Suite:
    suite.profile(PROFILE)
    suite.checks("test_basic.py", CHECKS)
    return suite


def statuses(run: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in run["checks"]}


def test_run_scores_gates_and_writes_the_run_folder(basic: Suite) -> None:
    outcome = basic.run()
    # Critical passed, score 15/18 = 83.33 >= 60: the gate passes although TST-003 failed.
    assert outcome.code == 0, outcome.output
    folder = basic.latest()
    run = readiness(folder)
    jsonschema.validate(run, schema())
    assert statuses(run) == {
        "TST-001": "passed",
        "TST-002": "passed",
        "TST-003": "failed",
        "TST-004": "not_applicable",
        "TST-005": "not_applicable",
    }
    assert run["score"]["score"] == pytest.approx(83.33)
    assert run["gate"] == {
        "passed": True,
        "min_score": 60,
        "reasons": [],
        "policy": {
            "min_score": 60,
            "block": {"severities": ["critical"], "categories": [], "checks": []},
            "min_category_scores": {},
        },
    }
    by_id = {c["id"]: c for c in run["checks"]}
    assert "arithmetic broke" in by_id["TST-003"]["message"]
    assert by_id["TST-005"]["message"] == "no TLS endpoint configured (tls.endpoints)"
    assert by_id["TST-001"]["evidence"] == ["evidence/TST-001/01-note.txt"]
    assert (folder / "evidence/TST-001/01-note.txt").read_text() == "all good"
    # Terminal: the table, the score, the verdict and where the report is.
    assert "Readiness score: 83.3 (minimum 60) · gate PASSED" in outcome.stdout
    assert "FAIL TST-003 medium" in outcome.stdout
    assert f"Report: {folder}" in outcome.stdout
    # JUnit parses and agrees; the manifest proves every file.
    suites = ET.parse(folder / "junit.xml").getroot()
    assert int(suites.find("testsuite").get("failures")) == 1
    assert manifest.verify(folder) == []
    recorded = json.loads((folder / "manifest.json").read_text())["files"]
    assert {"readiness.json", "junit.xml", "summary.md"} <= recorded.keys()
    assert any(name.startswith("allure-results/") for name in recorded)
    assert "| TST-003 check TST-003 | medium |" in (folder / "summary.md").read_text()
    history = (basic.root / "reports/t/history/runs.jsonl").read_text().splitlines()
    assert json.loads(history[-1])["score"] == pytest.approx(83.33)


def test_allure_results_carry_labels_environment_and_categories(basic: Suite) -> None:
    basic.run()
    results = basic.latest() / "allure-results"
    tests = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    first = next(t for t in tests if t["name"].startswith("test_critical_passes"))
    labels = {(label["name"], label["value"]) for label in first["labels"]}
    assert {("epic", "application"), ("feature", "TST-001 check TST-001")} <= labels
    assert {("severity", "blocker"), ("as_id", "TST-001")} <= labels
    assert {("tag", "SOC2:CC7.1"), ("tag", "cadence:predeploy")} <= labels
    assert first["links"][0]["url"].endswith("runbooks/x.md")
    environment = (results / "environment.properties").read_text()
    assert "score=83.33" in environment and "gate=passed" in environment
    names = [c["name"] for c in json.loads((results / "categories.json").read_text())]
    assert names[0] == "Unreachable targets" and "Product failures" in names


def test_same_score_with_and_without_xdist(basic: Suite) -> None:
    assert basic.run("-n", "0").code == 0
    serial = readiness(basic.latest())
    assert basic.run("-n", "2").code == 0
    parallel = readiness(basic.latest())
    assert serial["run"]["id"] != parallel["run"]["id"]
    assert serial["score"] == parallel["score"]
    assert statuses(serial) == statuses(parallel)
    assert [c["evidence"] for c in serial["checks"]] == [c["evidence"] for c in parallel["checks"]]
    assert (basic.latest() / "evidence/TST-001/01-note.txt").exists()


def test_critical_failure_fails_the_gate_with_exit_1(suite: Suite) -> None:
    suite.profile(PROFILE)
    suite.checks(
        "test_c.py",
        """\
        from opsverify import check

        @check("TST-010", "must hold", category="security", severity="critical",
               cadences=["predeploy"], controls=[], runbook="")
        def test_breaks():
            assert False, "the critical thing is broken"
        """,
    )
    outcome = suite.run()
    assert outcome.code == 1, outcome.output
    run = readiness(suite.latest())
    assert run["gate"]["passed"] is False
    assert "critical check TST-010 failed: must hold" in run["gate"]["reasons"]


def test_cadence_selects_checks(basic: Suite) -> None:
    outcome = basic.run("--cadence", "daily")
    assert outcome.code == 1, outcome.output  # only TST-003 (fails) and TST-004 (n/a) remain
    assert set(statuses(readiness(basic.latest()))) == {"TST-003", "TST-004"}
    listing = opsverify("list", "--env", "t", "--cadence", "daily", cwd=basic.root)
    assert listing.code == 0 and "2 checks selected" in listing.stdout
    assert "TST-001" not in listing.stdout


def test_list_shows_parameters_and_not_applicable_reasons(basic: Suite) -> None:
    listing = opsverify("list", "--env", "t", cwd=basic.root)
    assert listing.code == 0, listing.output
    assert "5 checks selected" in listing.stdout
    assert "n/a: no TLS endpoint configured" in listing.stdout
    assert not (basic.root / "reports").exists()  # listing leaves no run folder


def test_check_id_selects_with_k(basic: Suite) -> None:
    assert basic.run("-k", "TST-002").code == 0
    assert set(statuses(readiness(basic.latest()))) == {"TST-002"}


def test_duplicate_check_id_is_a_collection_error(suite: Suite) -> None:
    suite.profile(PROFILE)
    body = """\
        from opsverify import check

        @check("DUP-001", "{title}", category="application", severity="low",
               cadences=["daily"], controls=[], runbook="")
        def test_{name}():
            pass
        """
    suite.checks("test_a.py", body.format(title="one", name="one"))
    suite.checks("test_b.py", body.format(title="two", name="two"))
    outcome = suite.run()
    assert outcome.code == 2, outcome.output
    assert "duplicate check id DUP-001" in outcome.output


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_checks_without_an_environment_are_a_usage_error(basic: Suite, workers: list[str]) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "checks", "-p", "no:cacheprovider", *workers],
        cwd=basic.root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 4, done.stdout + done.stderr
    assert "pass --env NAME" in done.stderr


def test_gate_replays_a_stored_run(basic: Suite) -> None:
    basic.run()
    stored = basic.latest() / "readiness.json"
    replay = opsverify("gate", str(stored))
    assert replay.code == 0, replay.output
    assert "manifest verified" in replay.stdout and "gate PASSED" in replay.stdout
    stricter = opsverify("gate", str(stored), "--min-score", "90")
    assert stricter.code == 1 and "below the minimum 90" in stricter.stdout
    evidence = basic.latest() / "evidence/TST-001/01-note.txt"
    evidence.write_text("tampered")
    tampered = opsverify("gate", str(stored))
    assert tampered.code == 4
    assert "evidence/TST-001/01-note.txt" in tampered.stderr


def test_gate_rejects_a_file_that_is_not_a_readiness_report(tmp_path) -> None:
    bogus = tmp_path / "readiness.json"
    bogus.write_text(json.dumps({"schema_version": "1.0"}))
    outcome = opsverify("gate", str(bogus))
    assert outcome.code == 4 and "readiness.json" in outcome.stderr


@pytest.mark.parametrize(("minimum", "code"), [("0", 0), ("100", 1)])
def test_min_score_override_applies_even_at_zero(basic: Suite, minimum: str, code: int) -> None:
    outcome = basic.run("--min-score", minimum)
    assert outcome.code == code, outcome.output
    assert readiness(basic.latest())["gate"]["min_score"] == float(minimum)


def test_controls_lists_each_control_with_checks_status_and_evidence(basic: Suite) -> None:
    basic.run()
    folder = basic.latest()
    outcome = opsverify("controls", "--run", str(folder))
    assert outcome.code == 0, outcome.output
    # All five checks map to SOC2:CC7.1; TST-003 failed, so the control is failing.
    line = next(ln for ln in outcome.stdout.splitlines() if "SOC2:CC7.1" in ln)
    assert "failing" in line
    for check_id in ("TST-001", "TST-002", "TST-003", "TST-004"):
        assert check_id in outcome.stdout
    assert str(folder / "evidence/TST-001/01-note.txt") in outcome.stdout
    assert opsverify("controls", "--run", str(folder / "readiness.json")).code == 0
    missing = opsverify("controls", "--run", str(basic.root / "nowhere"))
    assert missing.code == 4 and "not found" in missing.stderr


ORDERED = """\
    import os
    import pytest
    from opsverify import check

    def meta(id, severity):
        return check(id, f"check {id}", category="application", severity=severity,
                     cadences=["predeploy"], controls=["SOC2:CC7.1"], runbook="")

    @meta("ORD-001", "high")
    def test_1_high_passes():
        pass

    @meta("ORD-002", "low")
    def test_2_low_fails():
        assert False

    @meta("ORD-003", "critical")
    def test_3_critical_fails():
        assert False
"""


def test_a_run_stopped_by_maxfail_never_passes_the_gate(suite: Suite) -> None:
    suite.profile(PROFILE.replace("min_score: 60", "min_score: 50"))
    suite.checks("test_ordered.py", ORDERED)
    outcome = suite.run("--maxfail", "1")
    assert outcome.code == 1, outcome.output
    run = readiness(suite.latest())
    assert run["run"]["interrupted"] is True
    assert any("stopped early" in reason for reason in run["gate"]["reasons"])
    replay = opsverify("gate", str(suite.latest()))
    assert replay.code == 1 and "did not complete" in replay.stdout


def test_a_check_that_kills_its_worker_is_an_error_not_a_pass(suite: Suite) -> None:
    suite.profile(PROFILE)
    suite.checks(
        "test_crash.py",
        """\
        import os
        from opsverify import check

        @check("CRS-001", "dies", category="application", severity="critical",
               cadences=["predeploy"], controls=[], runbook="")
        def test_dies():
            os._exit(1)

        @check("CRS-002", "fine", category="application", severity="low",
               cadences=["predeploy"], controls=[], runbook="")
        def test_fine():
            pass
        """,
    )
    outcome = suite.run("-n", "2")
    assert outcome.code == 1, outcome.output
    run = readiness(suite.latest())
    crashed = next(c for c in run["checks"] if c["id"] == "CRS-001")
    assert crashed["status"] == "error" and "crashed" in crashed["message"]
    assert run["gate"]["passed"] is False


def test_xfail_is_a_failure_not_a_free_pass(suite: Suite) -> None:
    suite.profile(PROFILE)
    suite.checks(
        "test_xfail.py",
        """\
        import pytest
        from opsverify import check

        @check("XFL-001", "known broken", category="application", severity="critical",
               cadences=["predeploy"], controls=[], runbook="")
        @pytest.mark.xfail(reason="known bug")
        def test_known_broken():
            assert False
        """,
    )
    assert suite.run().code == 1
    check = readiness(suite.latest())["checks"][0]
    assert check["status"] == "failed" and "known bug" in check["message"]


def test_gate_refuses_a_run_without_its_manifest(basic: Suite) -> None:
    basic.run()
    (basic.latest() / "manifest.json").unlink()
    outcome = opsverify("gate", str(basic.latest()))
    assert outcome.code == 4 and "manifest.json: missing" in outcome.stderr


@pytest.mark.parametrize("bad", ["150", "-5", "nan"])
def test_min_score_out_of_range_is_a_usage_error(basic: Suite, bad: str) -> None:
    assert basic.run(f"--min-score={bad}").code == 4
    assert not (basic.root / "reports").exists()


def test_run_dir_must_be_new_or_empty(basic: Suite) -> None:
    (basic.root / "occupied" / "precious.txt").parent.mkdir()
    (basic.root / "occupied" / "precious.txt").write_text("keep me")
    outcome = basic.run("--run-dir", str(basic.root / "occupied"))
    assert outcome.code == 4 and "must not exist yet or be an empty folder" in outcome.stderr
    assert (basic.root / "occupied" / "precious.txt").read_text() == "keep me"


def test_reports_stay_under_the_current_folder_whatever_paths_are_passed(
    basic: Suite, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "t.yaml"
    elsewhere.write_text((basic.root / "environments" / "t.yaml").read_text())
    assert opsverify("run", "--env", str(elsewhere), cwd=basic.root).code == 0
    assert basic.latest().parent == basic.root / "reports" / "t"


DESTRUCTIVE = """\
    from pathlib import Path
    from opsverify import check

    @check("DST-001", "changes things", category="dr", severity="high", cadences=["monthly"],
           controls=[], runbook="", destructive=True)
    def test_changes_things():
        Path("touched").write_text("the check ran")
"""


@pytest.mark.parametrize(
    ("tier", "allowed", "flag", "runs"),
    [
        ("staging", False, False, True),
        ("production", False, False, False),
        ("production", True, False, False),
        ("production", False, True, False),
        ("production", True, True, True),
    ],
)
def test_destructive_checks_against_production_need_profile_and_flag(
    suite: Suite, tier: str, allowed: bool, flag: bool, runs: bool
) -> None:
    suite.profile(f"name: t\ntier: {tier}\nallow_destructive: {str(allowed).lower()}\n")
    suite.checks("test_d.py", DESTRUCTIVE)
    suite.run(*(["--allow-destructive"] if flag else []))
    assert (suite.root / "touched").exists() is runs
    check = readiness(suite.latest())["checks"][0]
    assert check["status"] == ("passed" if runs else "not_applicable")
    if not runs:
        assert check["message"].startswith("refused: a destructive check against production")


def traffic_suite(suite: Suite, log: Path) -> None:
    suite.profile(PROFILE)
    suite.checks(
        "test_traffic.py",
        f"""\
        import os, time
        import pytest
        from opsverify import check

        def busy(name):
            start = time.time()
            time.sleep(1.5)
            with open({str(log)!r}, "a") as handle:
                handle.write(f"{{name}} {{start}} {{time.time()}} {{os.getpid()}}\\n")

        @pytest.mark.parametrize("n", range(3))
        @check("TRF-001", "probe", category="slo", severity="low",
               cadences=["predeploy"], controls=[], runbook="")
        @pytest.mark.traffic
        def test_probe(n):
            busy(f"probe{{n}}")

        @check("TRF-002", "load", category="load", severity="low",
               cadences=["predeploy"], controls=[], runbook="")
        @pytest.mark.traffic
        def test_load():
            busy("load")

        @pytest.mark.parametrize("n", range(4))
        @check("TRF-003", "quiet", category="application", severity="low",
               cadences=["predeploy"], controls=[], runbook="")
        def test_quiet(n):
            busy(f"quiet{{n}}")
        """,
    )


def test_traffic_checks_never_overlap_under_xdist(suite: Suite, tmp_path: Path) -> None:
    """Load tests and latency probes are marked ``traffic``: with two workers they still run
    one after another, while other checks spread over both workers."""
    log = tmp_path / "intervals"
    traffic_suite(suite, log)
    assert suite.run("-n", "2").code == 0
    rows = [line.split() for line in log.read_text().splitlines()]
    traffic = sorted((float(a), float(b)) for name, a, b, _ in rows if not name.startswith("q"))
    assert len(traffic) == 4
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(traffic))
    assert len({pid for *_, pid in rows}) == 2  # the rest still ran on both workers


def test_traffic_runs_after_the_checks_that_measure_the_environment(
    suite: Suite, tmp_path: Path
) -> None:
    # Collected first (probe, load, quiet), but the quiet checks must not see the load.
    log = tmp_path / "intervals"
    traffic_suite(suite, log)
    assert suite.run().code == 0
    order = [line.split()[0] for line in log.read_text().splitlines()]
    assert order == [f"quiet{n}" for n in range(4)] + ["probe0", "probe1", "probe2", "load"]


REASONS = """\
    import socket
    import ssl
    import threading

    import httpx

    from opsverify import check, unreachable
    from opsverify.sandbox.pki import ensure_pki
    from opsverify.sandbox.settings import Layout

    def meta(id):
        return check(id, f"check {id}", category="monitoring", severity="high",
                     cadences=["predeploy"], controls=["SOC2:CC7.2"], runbook="runbooks/x.md")

    @meta("RSN-001")
    def test_a_tool_output_with_blank_lines():
        output = "Checking config/alert_rules.yml\\n  FAILED:\\n\\nfield spec not found"
        assert False, f"promtool exited 1: {output}"

    @meta("RSN-002")
    def test_a_refused_connection():
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        httpx.get(f"http://127.0.0.1:{port}/api/v2/status", timeout=2)

    @meta("RSN-003")
    def test_an_untrusted_certificate(tmp_path):
        layout = Layout(tmp_path)
        ensure_pki(layout)  # a CA the system store does not know
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(layout.server_cert, layout.server_key)
        server = socket.create_server(("127.0.0.1", 0))
        port = server.getsockname()[1]

        def answer():
            connection, _ = server.accept()
            try:
                context.wrap_socket(connection, server_side=True).close()
            except ssl.SSLError:
                connection.close()

        threading.Thread(target=answer, daemon=True).start()
        with server:
            httpx.get(f"https://127.0.0.1:{port}/health", timeout=5)

    @meta("RSN-004")
    def test_a_host_this_runner_cannot_resolve():
        unreachable("runbook host wiki.internal.example cannot be resolved from this runner")

    @meta("RSN-005")
    def test_a_long_list():
        assert False, "; ".join(f"https://runbooks.example.com/alerts/Alert{i}" for i in range(200))
"""


def test_failure_messages_keep_the_reason_and_name_the_target(suite: Suite) -> None:
    suite.profile(PROFILE)
    suite.checks("test_reasons.py", REASONS)
    suite.run()
    checks = {c["id"]: c for c in readiness(suite.latest())["checks"]}
    # The whole message, blank lines and all, on one line; not only pytest's last E-block.
    assert checks["RSN-001"]["message"] == (
        "promtool exited 1: Checking config/alert_rules.yml FAILED: field spec not found"
    )
    assert checks["RSN-001"]["unreachable"] is False
    refused = checks["RSN-002"]
    assert refused["unreachable"] is True
    assert "Connection refused" in refused["message"] and "/api/v2/status" in refused["message"]
    # The target answered: its certificate is the finding, not a network outage.
    untrusted = checks["RSN-003"]
    assert untrusted["status"] == "failed" and untrusted["unreachable"] is False
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted["message"]
    assert checks["RSN-004"]["unreachable"] is True
    assert "cannot be resolved from this runner" in checks["RSN-004"]["message"]
    long = checks["RSN-005"]["message"]
    assert len(long) < 2100 and long.endswith(" more characters]")
    assert long.split(" … [")[0].endswith(tuple(f"Alert{i}" for i in range(200)))


HEALTH_AND_TRAFFIC = """\
    import os
    import time
    from pathlib import Path

    import pytest

    from opsverify import check

    def meta(id, severity="high"):
        return check(id, f"check {id}", category="application", severity=severity,
                     cadences=["predeploy"], controls=["SOC2:CC7.1"], runbook="runbooks/x.md")

    @meta("HLT-001", "critical")
    @pytest.mark.health
    def test_health():
        time.sleep(1)  # still running on the other worker when the traffic check starts
        assert os.environ.get("HEALTHY") == "1", "ready answered 503: database unreachable"

    @meta("HLT-002")
    @pytest.mark.traffic
    def test_load():
        Path(os.environ["SENT"]).write_text("requests sent")
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_traffic_does_not_start_against_a_target_that_failed_its_health_checks(
    suite: Suite, tmp_path: Path, workers: list[str]
) -> None:
    suite.profile(PROFILE)
    suite.checks("test_health_traffic.py", HEALTH_AND_TRAFFIC)
    sent = tmp_path / "sent"
    suite.run(*workers, env={"HEALTHY": "0", "SENT": str(sent)})
    checks = {c["id"]: c for c in readiness(suite.latest())["checks"]}
    assert checks["HLT-001"]["status"] == "failed"
    assert checks["HLT-002"]["status"] == "not_applicable" and not sent.exists()
    assert checks["HLT-002"]["message"] == (
        "not started: the target failed its health checks in this run, and no traffic is "
        "sent into an outage: 1 failed: HLT-001: ready answered 503: database unreachable"
    )
    assert not (suite.latest() / ".health").exists()  # the workers' notes are not kept
    suite.run(*workers, env={"HEALTHY": "1", "SENT": str(sent)})
    assert {c["id"]: c["status"] for c in readiness(suite.latest())["checks"]} == {
        "HLT-001": "passed",
        "HLT-002": "passed",
    }
    assert sent.read_text() == "requests sent"


def _flip_manifest_field(folder: Path, field: str) -> None:
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    value = data[field]
    data[field] = value[:-1] + ("0" if value[-1] != "0" else "1")  # one byte
    path.write_text(json.dumps(data, indent=2) + "\n")


@pytest.mark.parametrize("field", ["run", "algorithm"])
def test_gate_and_controls_refuse_a_manifest_whose_own_fields_changed(
    basic: Suite, field: str
) -> None:
    basic.run()
    _flip_manifest_field(basic.latest(), field)
    for command in (["gate", str(basic.latest())], ["controls", "--run", str(basic.latest())]):
        outcome = opsverify(*command)
        assert outcome.code == 4, outcome.output
        assert "manifest.json: altered" in outcome.stderr


def test_gate_and_controls_refuse_a_link_in_the_run_folder(basic: Suite) -> None:
    basic.run()
    (basic.latest() / "evidence" / "etc-link").symlink_to("/etc")
    for command in (["gate", str(basic.latest())], ["controls", "--run", str(basic.latest())]):
        outcome = opsverify(*command)
        assert outcome.code == 4, outcome.output
        assert "links are refused in a run folder: evidence/etc-link" in outcome.stderr


def test_controls_refuses_a_result_flipped_in_readiness_or_a_missing_manifest(
    basic: Suite,
) -> None:
    basic.run()
    path = basic.latest() / "readiness.json"
    data = json.loads(path.read_text())
    failed = next(c for c in data["checks"] if c["status"] == "failed")
    failed["status"] = "passed"
    path.write_text(json.dumps(data, indent=2) + "\n")
    outcome = opsverify("controls", "--run", str(basic.latest()))
    assert outcome.code == 4 and "files differ from manifest.json: readiness.json" in outcome.stderr
    (basic.latest() / "manifest.json").unlink()
    outcome = opsverify("controls", "--run", str(basic.latest()))
    assert outcome.code == 4 and "manifest.json: missing" in outcome.stderr
