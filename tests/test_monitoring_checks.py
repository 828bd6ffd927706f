"""Alerting, paging, incident levels and the daily alert review against a real sandbox.

One healthy run where MON-003/004/005, INC-001 and OPS-001 all pass; then, per check, the
sandbox is broken in exactly the way the check exists to catch, and exactly that check fails.
The sandbox uses its own ports (23xxx) and state folder; every fault is restored.
"""

from __future__ import annotations

import json
import time
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
from tests.helpers import ROOT, opsverify, readiness, running_sandbox, sandbox_ports, write_profile

PORTS = sandbox_ports(23000)
IDS = ("MON-003", "MON-004", "MON-005", "INC-001", "OPS-001")
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


def run_checks(profile: Path, folder: Path) -> dict[tuple[str, str | None], dict[str, Any]]:
    """Run this file's checks through the real CLI: (id, parameter) → check result."""
    outcome = opsverify(
        "run", "--env", str(profile), "--run-dir", str(folder), "-k", " or ".join(IDS), cwd=ROOT
    )
    assert outcome.code in (0, 1), outcome.output
    return {(c["id"], c["parameter"]): c for c in readiness(folder)["checks"]}


def failed(results: dict[tuple[str, str | None], dict[str, Any]]) -> set[tuple[str, str | None]]:
    assert {c["status"] for c in results.values()} <= {"passed", "failed"}, results
    return {key for key, c in results.items() if c["status"] == "failed"}


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.1)
    return value


def loaded_rules() -> dict[str, dict[str, Any]]:
    groups = httpx.get(f"{PROMETHEUS}/api/v1/rules", timeout=5).json()["data"]["groups"]
    return {r["name"]: r for g in groups for r in g["rules"]}


def loaded_am_config() -> dict[str, Any]:
    status = httpx.get(f"{ALERTMANAGER}/api/v2/status", timeout=5).json()
    return yaml.safe_load(status["config"]["original"])


@contextmanager
def rules_changed(
    settings: sandbox.Settings, changes: dict[str, Callable[[dict], None]]
) -> Iterator[None]:
    """Edit alerting rules (by alert name) in the sandbox's rule file, reload Prometheus and
    wait until it serves them; undo after."""
    path = settings.layout().config_dir / "alert_rules.yml"
    original = path.read_text()

    def annotations(text: str) -> dict[str, dict]:
        rules = [r for g in yaml.safe_load(text)["groups"] for r in g["rules"]]
        return {r["alert"]: r.get("annotations", {}) for r in rules if "alert" in r}

    def serving(expected: dict[str, dict]) -> bool:
        return {name: r["annotations"] for name, r in loaded_rules().items()} == expected

    data = yaml.safe_load(original)
    for rule in (r for g in data["groups"] for r in g["rules"]):
        if rule.get("alert") in changes:
            changes[rule["alert"]](rule)
    changed = yaml.safe_dump(data)
    try:
        path.write_text(changed)
        sandbox.reload(settings, "prometheus")
        wait_until(lambda: serving(annotations(changed)), "rules reloaded")
        yield
    finally:
        path.write_text(original)
        sandbox.reload(settings, "prometheus")
        wait_until(lambda: serving(annotations(original)), "rules restored")


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
SUBJECT["OPS-001"] = "alertmanager"


def test_rule_without_runbook_url_fails_mon_003(
    settings: sandbox.Settings, profile: Path, tmp_path: Path
) -> None:
    with rules_changed(settings, {"CronosAIDown": lambda r: r["annotations"].pop("runbook_url")}):
        results = run_checks(profile, tmp_path / "run")
    expect_only(results, MON_003="cronos-ai/CronosAIDown: no annotation runbook_url")


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
