"""Alerting rules as the checks judge them (MON-003, DOC-003, INC-002), without a sandbox:
rules named so that Sloth's page and ticket alerts stay apart, required alerts, incident
levels, runbook links on loopback servers, and messages that count what they list."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from opsverify import Unreachable, message
from opsverify.drivers import docs
from opsverify.drivers import prometheus as prom
from opsverify.profile import IncidentSeverity, RequiredAlert

RULES = Path(__file__).parent / "data" / "rules"


def api_groups(*files: str) -> list[dict]:
    """Rule files as Prometheus' /api/v1/rules answers them (name, query, type, …)."""
    groups = []
    for name in files:
        for group in yaml.safe_load((RULES / name).read_text())["groups"]:
            rules = [
                {
                    "name": r.get("alert") or r["record"],
                    "query": r["expr"].strip(),
                    "labels": r.get("labels") or {},
                    "annotations": r.get("annotations") or {},
                    "type": "alerting" if "alert" in r else "recording",
                }
                for r in group["rules"]
            ]
            groups.append({"name": group["name"], "file": name, "rules": rules})
    return groups


def test_rules_of_one_name_are_told_apart_by_their_labels() -> None:
    rules = prom.alerting_rules(api_groups("sloth-cronos-ai.yaml", "kube-prometheus.yaml"))
    names = [r.rule for r in rules]
    sloth = "sloth-slo-alerts-cronos-ai-requests-availability/CronosAIAvailabilityBudgetBurn"
    assert names[:2] == [
        f'{sloth}{{severity="pageteam",sloth_severity="page"}}',
        f'{sloth}{{severity="slack",sloth_severity="ticket"}}',
    ]
    assert "general.rules/Watchdog" in names  # alone of its name: no labels needed
    assert 'node-exporter/NodeFilesystemAlmostOutOfSpace{severity="critical"}' in names
    assert len(set(names)) == len(names) == 15  # recording rules are left out

    # The same labels twice (a copy-paste): their order tells them apart.
    twice = {"name": "g", "rules": [api_groups("kube-prometheus.yaml")[0]["rules"][1]] * 2}
    assert [r.rule for r in prom.alerting_rules([twice])] == ["g/Watchdog #1", "g/Watchdog #2"]


def test_required_alerts_by_name_labels_and_expression() -> None:
    rules = prom.alerting_rules(api_groups("sloth-cronos-ai.yaml", "kube-prometheus.yaml"))
    page = RequiredAlert(
        alert="CronosAIAvailabilityBudgetBurn",
        purpose="availability budget burning fast",
        labels={"sloth_severity": "page"},
        # whitespace aside, as Prometheus prints it or as the rule file writes it
        expr_contains=["slo:sli_error:ratio_rate5m{sloth_id=", "> (14.4 *"],
    )
    watchdog = RequiredAlert(alert="Watchdog", expr_contains=["vector( 1 )"])
    assert prom.unmet_requirements(rules, [page, watchdog]) == []

    # Sloth's page alert deleted: the ticket alert of the same name does not stand in for it.
    without_page = [r for r in rules if r.labels.get("sloth_severity") != "page"]
    [unmet] = prom.unmet_requirements(without_page, [page])
    assert unmet.cause == "loaded, not as required"
    assert unmet.item == (
        "CronosAIAvailabilityBudgetBurn (availability budget burning fast): label "
        "sloth_severity is 'ticket', expected 'page', its expression lacks "
        "'slo:sli_error:ratio_rate5m{sloth_id=', its expression lacks '> (14.4 *'"
    )
    [gone] = prom.unmet_requirements(rules, [RequiredAlert(alert="CronosAIDown")])
    assert (gone.noun, gone.cause, gone.item) == (
        "required alert",
        "not loaded in Prometheus",
        "CronosAIDown",
    )


HANDBOOK = [
    IncidentSeverity(level="P1", matchers={"severity": "critical"}, respond_within="15m"),
    IncidentSeverity(level="P2", matchers={"severity": ["high", "pageteam"]}, respond_within="30m"),
    IncidentSeverity(level="P3", matchers={"severity": "warning"}, respond_within="2h"),
    IncidentSeverity(level="P4", matchers={"severity": "info"}, respond_within="8h"),
]


def test_every_alert_maps_to_an_incident_level_or_is_a_declared_pipeline_alert() -> None:
    files = ("kube-prometheus.yaml", "awesome-prometheus-alerts.yaml", "sloth-cronos-ai.yaml")
    rules = prom.alerting_rules(api_groups(*files))
    rows, unmapped = prom.incident_levels(rules, HANDBOOK, ["Watchdog"])
    sloth = "sloth-slo-alerts-cronos-ai-requests-availability/CronosAIAvailabilityBudgetBurn"
    assert [(f.cause, f.item) for f in unmapped] == [
        ("severity 'none' maps to no incident level", "general.rules/InfoInhibitor"),
        (
            "severity 'slack' maps to no incident level",
            f'{sloth}{{severity="slack",sloth_severity="ticket"}}',
        ),
    ]
    levels = {row["rule"]: row["levels"] for row in rows}
    assert levels[f'{sloth}{{severity="pageteam",sloth_severity="page"}}'] == ["P2"]
    assert levels["HostAndPrometheus/HostRequiresReboot"] == ["P4"]
    assert levels["general.rules/Watchdog"] == []

    unlabelled = [prom.AlertingRule("g/A", "g", None, "A", "vector(1)", {}, {})]
    [finding] = prom.incident_levels(unlabelled, HANDBOOK, [])[1]
    assert finding.cause == "no label severity maps to no incident level"


def test_a_level_with_lists_routes_every_combination() -> None:
    level = IncidentSeverity(
        level="P1", matchers={"severity": ["critical", "page"], "team": "sre"}, respond_within="15m"
    )
    assert level.label_sets() == [
        {"severity": "critical", "team": "sre"},
        {"severity": "page", "team": "sre"},
    ]
    assert level.matches({"severity": "page", "team": "sre", "x": "y"})
    assert not level.matches({"severity": "page"})


def test_findings_are_grouped_by_cause_and_counted() -> None:
    unreachable = [
        message.Finding(
            "alert", "runbook host h not reachable from this runner", f"g/Alert{i}", True
        )
        for i in range(39)
    ]
    with pytest.raises(Unreachable) as caught:
        message.conclude(unreachable)
    text = str(caught.value)
    assert text.startswith("39 alerts: runbook host h not reachable from this runner; first 10:")
    assert text.endswith("g/Alert9; all 39 in the evidence") and len(text) < 2000

    missing = message.Finding("alert", "runbook not found", "g/Other: x.md: no file x.md")
    with pytest.raises(AssertionError) as caught:
        message.conclude([*unreachable, missing])
    assert not isinstance(caught.value, Unreachable)  # a real finding makes it a finding
    assert str(caught.value).startswith(
        "1 alert: runbook not found: g/Other: x.md: no file x.md | 39 alerts:"
    )
    message.conclude([])  # nothing found: nothing raised


# --- runbook links, over loopback ------------------------------------------------------------


class _Runbooks(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        status = {"/ok": 200, "/gone": 404, "/sso": 401, "/broken": 500}.get(self.path, 404)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def wiki() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Runbooks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def rule(name: str, url: str) -> prom.AlertingRule:
    labels, annotations = {"severity": "warning"}, {"summary": "s", "runbook_url": url}
    return prom.AlertingRule(f"g/{name}", "g", None, name, "vector(1)", labels, annotations)


def test_runbook_links_missing_refused_or_out_of_reach(wiki: str, tmp_path: Path) -> None:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "a.md").write_text("# A\n\n## Disk full\n")
    rules = [
        rule("Ok", f"{wiki}/ok"),
        rule("Section", "runbooks/a.md#disk-full"),
        rule("Gone", f"{wiki}/gone"),
        rule("Sso", f"{wiki}/sso"),
        rule("Broken", f"{wiki}/broken"),
        rule("NoSection", "runbooks/a.md#disk-empty"),
        rule("Outside", "README.md"),
    ]
    reviews = docs.review_alert_rules(rules, tmp_path, 5, within=tmp_path / "runbooks")
    found = {r.rule.alert: [(f.cause, f.unreachable) for f in r.findings] for r in reviews}
    host = wiki.removeprefix("http://")
    assert found == {
        "Ok": [],
        "Section": [],
        "Gone": [("runbook not found", False)],
        "Sso": [(f"runbook host {host} refuses this runner (401)", True)],
        "Broken": [("runbook URL answers an error", False)],
        "NoSection": [("runbook not found", False)],
        "Outside": [("runbook_url not usable", False)],
    }


def test_a_host_out_of_reach_is_tried_once(tmp_path: Path) -> None:
    # A listener that accepts and never answers: each try would wait for the timeout.
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    rules = [rule(f"A{i}", f"http://127.0.0.1:{port}/runbooks/a{i}") for i in range(12)]
    try:
        reviews = docs.review_alert_rules(rules, tmp_path, 0.5)
        accepted = 0
        silent.settimeout(0.2)
        while True:
            try:
                silent.accept()[0].close()
                accepted += 1
            except TimeoutError:
                break
    finally:
        silent.close()
    assert accepted == 1
    causes = {f.cause for r in reviews for f in r.findings}
    assert causes == {
        f"runbook host 127.0.0.1:{port} not reachable from this runner (no answer in time)"
    }
    assert all(f.unreachable for r in reviews for f in r.findings)


def test_the_profile_keys_for_alerts_say_what_is_wrong(tmp_path: Path) -> None:
    from opsverify import profile as profiles

    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\ntier: staging\n"
        "monitoring:\n  prometheus:\n    url: http://127.0.0.1:9090\n"
        "    required_alerts:\n      - {alert: Cronos AI Down, lables: {severity: critical}}\n"
        "incident:\n  severities:\n"
        "    - {level: P1, matchers: {severity: []}, respond_within: 15m}\n"
        "  pipeline_alert: [Watchdog]\n"
    )
    with pytest.raises(profiles.ProfileError) as caught:
        profiles.load(path)
    lines = str(caught.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "monitoring.prometheus.required_alerts[0].alert",
        "monitoring.prometheus.required_alerts[0].lables",
        "incident.severities[0].matchers.severity",
        "incident.pipeline_alert",
    ]
    assert all(line.startswith(f"{path}: ") for line in lines)
