"""Alerting, paging, incident levels and the daily alert review against a real sandbox.

One healthy run where MON-003/004/005, INC-001 and OPS-001 all pass; then, per check, the
sandbox is broken in exactly the way the check exists to catch, and exactly that check fails.
The sandbox uses its own ports (23xxx) and state folder; every fault is restored.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from opsverify import sandbox
from opsverify.drivers import alertmanager as am
from tests.helpers import (
    ROOT,
    config_rejected,
    opsverify,
    readiness,
    rules_served,
    running_sandbox,
    sandbox_ports,
    wait_until,
    write_profile,
)

PORTS = sandbox_ports(23000)
IDS = ("MON-002", "MON-003", "MON-004", "MON-005", "INC-001", "INC-002", "OPS-001")
RULES = ROOT / "tests" / "data" / "rules"
PROMETHEUS = f"http://127.0.0.1:{PORTS.prometheus}"
ALERTMANAGER = f"http://127.0.0.1:{PORTS.alertmanager}"


@pytest.fixture(scope="module")
def settings() -> Iterator[sandbox.Settings]:
    with running_sandbox(23000, "mon") as state:
        yield state


@pytest.fixture(scope="module")
def profile(settings: sandbox.Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """environments/local.yaml moved to this sandbox's ports and state folder."""
    return write_profile(settings, tmp_path_factory.mktemp("profile"))


def run_checks(
    profile: Path, folder: Path, ids: tuple[str, ...] = IDS
) -> dict[tuple[str, str | None], dict[str, Any]]:
    """Run this file's checks through the real CLI: (id, parameter) → check result."""
    outcome = opsverify(
        "run", "--env", str(profile), "--run-dir", str(folder), "-k", " or ".join(ids), cwd=ROOT
    )
    assert outcome.code in (0, 1), outcome.output
    return {(c["id"], c["parameter"]): c for c in readiness(folder)["checks"]}


def failed(results: dict[tuple[str, str | None], dict[str, Any]]) -> set[tuple[str, str | None]]:
    assert {c["status"] for c in results.values()} <= {"passed", "failed"}, results
    return {key for key, c in results.items() if c["status"] == "failed"}


def loaded_am_config() -> dict[str, Any]:
    status = httpx.get(f"{ALERTMANAGER}/api/v2/status", timeout=5).json()
    return yaml.safe_load(status["config"]["original"])


def sandbox_rules(settings: sandbox.Settings) -> dict[str, Any]:
    return yaml.safe_load((settings.layout().config_dir / "alert_rules.yml").read_text())


@contextmanager
def rules_changed(
    settings: sandbox.Settings, changes: dict[str, Callable[[dict], None]]
) -> Iterator[None]:
    """Edit alerting rules (by alert name) in the sandbox's rule file, reload Prometheus and
    wait until it serves them; undo after."""
    data = sandbox_rules(settings)
    for rule in (r for g in data["groups"] for r in g["rules"]):
        if rule.get("alert") in changes:
            changes[rule["alert"]](rule)
    with rules_served(settings, yaml.safe_dump(data)):
        yield


@contextmanager
def routes_changed(settings: sandbox.Settings, change: Callable[[dict], None]) -> Iterator[None]:
    """Edit the sandbox's Alertmanager route tree and reload it; undo after."""
    path = settings.layout().config_dir / "alertmanager.yml"
    original = path.read_text()
    data = yaml.safe_load(original)
    change(data["route"])
    before = loaded_am_config()["route"]
    try:
        path.write_text(yaml.safe_dump(data))
        sandbox.reload(settings, "alertmanager")
        wait_until(lambda: loaded_am_config()["route"] != before, "Alertmanager reloaded")
        yield
    finally:
        path.write_text(original)
        sandbox.reload(settings, "alertmanager")
        wait_until(lambda: loaded_am_config()["route"] == before, "Alertmanager restored")


def test_healthy_sandbox_passes_every_alerting_check(profile: Path, tmp_path: Path) -> None:
    results = run_checks(profile, tmp_path / "run")
    assert {key[0] for key in results} == set(IDS)
    assert {key[1] for key in results if key[0] == "INC-001"} == {"P1", "P2", "P3", "P4"}
    assert failed(results) == set(), {k: c["message"] for k, c in results.items()}
    # The evidence is what each check saw.
    folder = tmp_path / "run"
    rules = json.loads((folder / results["MON-003", "prometheus"]["evidence"][0]).read_text())
    assert {r["alert"] for r in rules["rules"]} >= {"CronosAIDown", "NodeExporterDown"}
    probe = json.loads((folder / results["MON-005", "alertmanager"]["evidence"][0]).read_text())
    assert 0 < probe["latency_seconds"] < 20
    assert probe["notification_received"]["path"] == "/pager"
    p1 = json.loads((folder / results["INC-001", "P1"]["evidence"][0]).read_text())
    assert [r["receiver"] for r in p1["routes_reached"]] == ["pager"]
    daily = json.loads((folder / results["OPS-001", "alertmanager"]["evidence"][0]).read_text())
    assert daily["fired_last_24h"] == [] and daily["prometheus_alerts"] == []


def expect_only(results: dict, **messages: str) -> None:
    """Exactly these checks failed (``MON_003`` or ``INC_001__P3``), each saying this."""
    expected = {}
    for name, says in messages.items():
        check_id, _, parameter = name.replace("_", "-", 1).partition("__")
        expected[check_id, parameter or SUBJECT[check_id]] = says
    assert failed(results) == set(expected), {k: c["message"] for k, c in results.items()}
    for key, says in expected.items():
        assert says in results[key]["message"], results[key]["message"]


SUBJECT = {"MON-003": "prometheus", "MON-004": "alertmanager", "MON-005": "alertmanager"}
SUBJECT |= {"OPS-001": "alertmanager", "MON-002": "prometheus", "INC-002": "prometheus"}


def test_rule_without_runbook_url_fails_mon_003(
    settings: sandbox.Settings, profile: Path, tmp_path: Path
) -> None:
    with rules_changed(settings, {"CronosAIDown": lambda r: r["annotations"].pop("runbook_url")}):
        results = run_checks(profile, tmp_path / "run")
    expect_only(results, MON_003="no annotation runbook_url: cronos-ai/CronosAIDown")


def test_runbook_url_leading_nowhere_fails_mon_003(
    settings: sandbox.Settings, profile: Path, tmp_path: Path
) -> None:
    webhook = f"http://127.0.0.1:{PORTS.webhook}"

    def runbook(url: str) -> Callable[[dict], None]:
        return lambda rule: rule["annotations"].update(runbook_url=url)

    changes = {
        "NodeExporterDown": runbook("runbooks/no-such-runbook.md#nodeexporterdown"),
        "CronosAIHighLatencyP95": runbook("runbooks/alerts.md#no-such-section"),
        "CronosAIHighErrorRatio": runbook(f"{webhook}/no-such-page"),  # answers 404
        "CronosAIDown": runbook(f"{webhook}/health"),  # answers 200: a valid runbook URL
    }
    with rules_changed(settings, changes):
        results = run_checks(profile, tmp_path / "run")
    expect_only(results, MON_003="no file runbooks/no-such-runbook.md")
    message = results["MON-003", "prometheus"]["message"]
    assert "runbooks/alerts.md has no section #no-such-section" in message
    assert f"{webhook}/no-such-page answered 404" in message
    assert "CronosAIDown" not in message


def _critical_route(route: dict) -> dict:
    return next(r for r in route["routes"] if r.get("matchers") == ['severity="critical"'])


def test_critical_route_to_a_non_paging_receiver_fails_mon_004(
    settings: sandbox.Settings, profile: Path, tmp_path: Path
) -> None:
    # P1 keeps a timely route that notifies someone (INC-001 passes), but nobody is paged.
    # The end-to-end probe (MON-005) cannot reach the pager either, and must say so.
    with routes_changed(settings, lambda route: _critical_route(route).update(receiver="default")):
        results = run_checks(profile, tmp_path / "run")
    expect_only(
        results,
        MON_004="routed to ['default'], not to the paging receiver 'pager'",
        MON_005="did not reach",
    )


def test_critical_route_dropped_fails_mon_004(
    settings: sandbox.Settings, profile: Path, tmp_path: Path
) -> None:
    # Critical alerts now fall through to the root route: not paged (MON-004, MON-005), and
    # P1, whose alerts are the critical ones, has no route of its own any more (INC-001/P1).
    with routes_changed(settings, lambda route: route["routes"].remove(_critical_route(route))):
        results = run_checks(profile, tmp_path / "run")
    expect_only(
        results,
        MON_004="not to the paging receiver 'pager'",
        MON_005="did not reach",
        INC_001__P1="no dedicated route",
    )


def test_webhook_receiver_down_fails_mon_005(
    settings: sandbox.Settings, profile: Path, tmp_path: Path
) -> None:
    sandbox.stop(settings, "webhook")
    try:
        results = run_checks(profile, tmp_path / "run")
    finally:
        sandbox.start(settings, "webhook")
    # The probe cannot be read back: the check fails, marked unreachable.
    expect_only(results, MON_005="")
    assert results["MON-005", "alertmanager"]["unreachable"] is True


def test_repeat_interval_beyond_the_response_time_fails_inc_001(
    settings: sandbox.Settings, profile: Path, tmp_path: Path
) -> None:
    def slow_p3(route: dict) -> None:
        warning = next(r for r in route["routes"] if r["matchers"] == ['severity="warning"'])
        warning["repeat_interval"] = "3h"  # P3 must be answered within 2 h

    with routes_changed(settings, slow_p3):
        results = run_checks(profile, tmp_path / "run")
    expect_only(results, INC_001__P3="repeat_interval 3:00:00 exceeds the 2:00:00 response time")


def test_critical_alert_firing_fails_ops_001(profile: Path, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    alert = {
        "labels": {"alertname": f"TestOutage{uuid.uuid4().hex[:8]}", "severity": "critical"},
        "annotations": {"summary": "seeded by tests/test_monitoring_checks.py"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=5)).isoformat(),
    }
    name = alert["labels"]["alertname"]

    def held() -> list[str]:
        alerts = httpx.get(f"{ALERTMANAGER}/api/v2/alerts", timeout=5).json()
        return [a["labels"]["alertname"] for a in alerts]

    httpx.post(f"{ALERTMANAGER}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()
    try:
        wait_until(lambda: name in held(), "alert held by Alertmanager")
        results = run_checks(profile, tmp_path / "run")
    finally:
        resolved = {**alert, "endsAt": datetime.now(UTC).isoformat()}
        httpx.post(f"{ALERTMANAGER}/api/v2/alerts", json=[resolved], timeout=5).raise_for_status()
        wait_until(lambda: name not in held(), "alert resolved")
    expect_only(results, OPS_001=f"critical alerts firing now: ['{name} (Alertmanager, active)']")


def test_route_walk_follows_alertmanager_matching_rules() -> None:
    # Pure: the same tree shapes Alertmanager documents (no sandbox needed).
    config = {
        "route": {
            "receiver": "default",
            "group_wait": "10s",
            "routes": [
                {"match_re": {"service": "db|cache"}, "receiver": "dba", "continue": True},
                {
                    "matchers": ['{severity="critical", team!="web"}'],
                    "receiver": "pager",
                    "repeat_interval": "1h30m",
                    "routes": [{"match": {"env": "dev"}, "receiver": "devnull"}],
                },
                {"matchers": ["severity=~warn.*"], "receiver": "tickets"},
            ],
        }
    }

    def walk(**labels: str) -> list[tuple[str, str, str]]:
        return [
            (m.receiver, str(m.group_wait), str(m.repeat_interval))
            for m in am.route_for(config, labels)
        ]

    # continue: true lets the next sibling match too; children inherit unset timings, and
    # the root falls back to Alertmanager's defaults (repeat_interval 4h).
    assert walk(service="db", severity="critical") == [
        ("dba", "0:00:10", "4:00:00"),
        ("pager", "0:00:10", "1:30:00"),
    ]
    assert walk(service="dbx", severity="critical", env="dev") == [
        ("devnull", "0:00:10", "1:30:00")
    ]
    # Regexes are anchored; a missing label is the empty string; unmatched stays at root.
    assert walk(severity="critical", team="web") == [("default", "0:00:10", "4:00:00")]
    assert walk(severity="warning") == [("tickets", "0:00:10", "4:00:00")]
    assert walk(severity="xwarning") == [("default", "0:00:10", "4:00:00")]
    assert am.route_for(config, {})[0].is_root
    assert am.parse_duration("1d2h") == timedelta(hours=26)
    with pytest.raises(ValueError):
        am.parse_duration("2 hours")


# --- issue 10: verdicts users can trust ------------------------------------------------------
# Some rule files below fire alerts (kube-prometheus's Watchdog): these tests stay after the
# healthy one, whose alert history of the last 24 h must be empty.


def with_groups(settings: sandbox.Settings, *files: str) -> str:
    """The sandbox's rule file with the groups of these rule files (tests/data/rules) added."""
    data = sandbox_rules(settings)
    for name in files:
        data["groups"] += yaml.safe_load((RULES / name).read_text())["groups"]
    return yaml.safe_dump(data)


def test_deleted_required_alert_fails_mon_003(
    settings: sandbox.Settings, profile: Path, tmp_path: Path
) -> None:
    # An operator deletes the service-down rule and reloads: every rule left is well formed.
    data = sandbox_rules(settings)
    for group in data["groups"]:
        group["rules"] = [r for r in group["rules"] if r.get("alert") != "CronosAIDown"]
    with rules_served(settings, yaml.safe_dump(data)):
        results = run_checks(profile, tmp_path / "run")
    expect_only(results, MON_003="1 required alert: not loaded in Prometheus: CronosAIDown")
    assert "(service down)" in results["MON-003", "prometheus"]["message"]
    # Kept, but no longer paging: the severity the profile requires is gone.
    with rules_changed(settings, {"CronosAIDown": lambda r: r["labels"].update(severity="info")}):
        results = run_checks(profile, tmp_path / "run-2")
    expect_only(
        results,
        MON_003="CronosAIDown (service down): label severity is 'info', expected 'critical'",
    )


def reload_time(url: str, component: str) -> str:
    """When ``component`` last loaded its configuration, as the checks must report it."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    name = f"{component}_config_last_reload_success_timestamp_seconds"
    [value] = [line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")]
    return datetime.fromtimestamp(float(value), UTC).isoformat(timespec="seconds")


def test_rejected_rule_reload_fails_the_checks_that_read_prometheus(
    settings: sandbox.Settings, profile: Path, tmp_path: Path
) -> None:
    # An edit that does not parse: Prometheus keeps the old rules and says so only in its
    # reload metric. The rules it serves are not the ones on disk.
    path = settings.layout().config_dir / "alert_rules.yml"
    broken = path.read_text().replace('up{job="cronos-ai"} == 0', 'up{job="cronos-ai"} ==')
    assert broken != path.read_text()
    with config_rejected(settings, "prometheus", "alert_rules.yml", broken):
        loaded_at = reload_time(PROMETHEUS, "prometheus")
        results = run_checks(profile, tmp_path / "run")
    says = f"rejected its last configuration reload; it still runs the one loaded at {loaded_at}"
    expect_only(results, MON_002=says, MON_003=says, INC_002=says)


def test_rejected_alertmanager_reload_fails_the_checks_that_read_its_routes(
    settings: sandbox.Settings, profile: Path, tmp_path: Path
) -> None:
    # The critical route now names a receiver that does not exist: Alertmanager refuses the
    # file and routes with the old tree, which still pages (MON-005 passes, rightly).
    path = settings.layout().config_dir / "alertmanager.yml"
    data = yaml.safe_load(path.read_text())
    _critical_route(data["route"])["receiver"] = "pagerduty-critical"
    with config_rejected(settings, "alertmanager", "alertmanager.yml", yaml.safe_dump(data)):
        loaded_at = reload_time(ALERTMANAGER, "alertmanager")
        results = run_checks(profile, tmp_path / "run")
    says = f"rejected its last configuration reload; it still runs the one loaded at {loaded_at}"
    levels = {f"INC_001__{level}": says for level in ("P1", "P2", "P3", "P4")}
    expect_only(results, MON_004=says, **levels)


def test_sloth_page_and_ticket_alerts_are_told_apart(
    settings: sandbox.Settings, profile: Path, tmp_path: Path
) -> None:
    # Sloth's output: one alert name twice, page and ticket. Only the ticket's runbook is
    # broken, and only the ticket may be named.
    data = yaml.safe_load(with_groups(settings, "sloth-cronos-ai.yaml"))
    [alerts] = [g for g in data["groups"] if g["name"].startswith("sloth-slo-alerts-")]
    ticket = alerts["rules"][1]
    assert ticket["labels"]["sloth_severity"] == "ticket"
    ticket["annotations"]["runbook_url"] = "runbooks/slo.md#ticket-alerts"
    with rules_served(settings, yaml.safe_dump(data)):
        results = run_checks(profile, tmp_path / "run", ("MON-003",))
    check = results["MON-003", "prometheus"]
    assert check["status"] == "failed" and not check["unreachable"], check
    name = "sloth-slo-alerts-cronos-ai-requests-availability/CronosAIAvailabilityBudgetBurn"
    assert f'{name}{{severity="slack",sloth_severity="ticket"}}' in check["message"], check
    assert "has no section #ticket-alerts" in check["message"]
    assert 'sloth_severity="page"' not in check["message"]
    seen = json.loads((tmp_path / "run" / check["evidence"][0]).read_text())
    sloth = [r for r in seen["rules"] if r["alert"] == "CronosAIAvailabilityBudgetBurn"]
    assert sorted(r["rule"] for r in sloth) == [
        f'{name}{{severity="pageteam",sloth_severity="page"}}',
        f'{name}{{severity="slack",sloth_severity="ticket"}}',
    ]
    assert [bool(r["problems"]) for r in sloth] == [False, True]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_runbooks_this_runner_cannot_reach_are_unverifiable_not_missing(
    settings: sandbox.Settings, profile: Path, tmp_path: Path
) -> None:
    # kube-prometheus's rules link the runbooks site, whose name this runner cannot resolve;
    # one more link points at a loopback port where nothing listens.
    data = yaml.safe_load(with_groups(settings, "kube-prometheus.yaml"))
    rules = {r["alert"]: r for g in data["groups"] for r in g["rules"] if "alert" in r}
    refused = f"http://127.0.0.1:{closed_port()}"
    rules["Watchdog"]["annotations"]["runbook_url"] = f"{refused}/runbooks/general/watchdog"
    with rules_served(settings, yaml.safe_dump(data)):
        results = run_checks(profile, tmp_path / "run", ("MON-003",))
    check = results["MON-003", "prometheus"]
    assert check["status"] == "failed" and check["unreachable"] is True, check
    message = check["message"]
    host = "runbooks.prometheus-operator.invalid"
    assert f"12 alerts: runbook host {host} not reachable from this runner" in message, message
    assert "first 10: general.rules/TargetDown; general.rules/InfoInhibitor;" in message
    assert "all 12 in the evidence" in message
    assert f"1 alert: runbook host {refused.removeprefix('http://')} not reachable" in message
    assert "general.rules/Watchdog" in message
    seen = json.loads((tmp_path / "run" / check["evidence"][0]).read_text())
    assert sum(bool(r["problems"]) for r in seen["rules"]) == 13

    # A runbook that is really missing beside them is a finding: the check fails as such,
    # and says the rest could not be verified.
    rules["TargetDown"]["annotations"]["runbook_url"] = "runbooks/targetdown.md"
    with rules_served(settings, yaml.safe_dump(data)):
        results = run_checks(profile, tmp_path / "run-2", ("MON-003",))
    check = results["MON-003", "prometheus"]
    assert check["status"] == "failed" and check["unreachable"] is False, check
    assert check["message"].startswith("1 alert: runbook not found: general.rules/TargetDown")
    assert f"11 alerts: runbook host {host} not reachable" in check["message"]


def test_alert_severities_outside_the_incident_table_fail_inc_002(
    settings: sandbox.Settings, profile: Path, tmp_path: Path
) -> None:
    text = with_groups(
        settings, "kube-prometheus.yaml", "awesome-prometheus-alerts.yaml", "sloth-cronos-ai.yaml"
    )
    with rules_served(settings, text):
        results = run_checks(profile, tmp_path / "run", ("INC-002",))
        check = results["INC-002", "prometheus"]
        assert check["status"] == "failed", check
        message = check["message"]
        assert "2 alerts: severity 'none' maps to no incident level" in message, message
        assert "general.rules/Watchdog; general.rules/InfoInhibitor" in message
        sloth = "sloth-slo-alerts-cronos-ai-requests-availability/CronosAIAvailabilityBudgetBurn"
        assert f"severity 'pageteam' maps to no incident level: {sloth}" in message
        assert f"severity 'slack' maps to no incident level: {sloth}" in message
        # critical, warning and info (awesome-prometheus-alerts, kube-prometheus) all map.
        assert "HostOutOfDiskSpace" not in message and "TargetDown" not in message

        # The table the team really works with: Sloth's page and ticket severities join
        # P2 and P3, and the two pipeline alerts are declared as such.
        severities = yaml.safe_load(profile.read_text())["incident"]["severities"]
        severities[1]["matchers"]["severity"] = ["high", "pageteam"]
        severities[2]["matchers"]["severity"] = ["warning", "slack"]
        declared = write_profile(
            settings,
            tmp_path,
            incident__severities=severities,
            incident__pipeline_alerts=["Watchdog", "InfoInhibitor"],
        )
        results = run_checks(declared, tmp_path / "run-2", ("INC-002",))
    check = results["INC-002", "prometheus"]
    assert check["status"] == "passed", check
    seen = json.loads((tmp_path / "run-2" / check["evidence"][0]).read_text())
    levels = {r["rule"]: r["levels"] for r in seen["alerts"]}
    assert levels[f'{sloth}{{severity="pageteam",sloth_severity="page"}}'] == ["P2"]
    assert levels["general.rules/Watchdog"] == []
    assert levels["HostAndPrometheus/HostOutOfDiskSpace"] == ["P1"]
