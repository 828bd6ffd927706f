"""Documentation checks (DOC-001..DOC-005) through the real CLI.

A sandbox on its own ports serves the live OpenAPI document (through nginx) and the alert
rules (Prometheus). Each test copies the shipped docs/ and runbooks/ to a temporary
repository, points a small profile at them, and breaks one thing: the check that exists to
catch it must fail, and no other.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from opsverify import sandbox
from opsverify.drivers import docs
from tests.helpers import (
    ROOT,
    config_rejected,
    restamp_reviews,
    rules_served,
    run_selected,
    running_sandbox,
    sandbox_ports,
)

PORTS = sandbox_ports(25000)
IDS = {"DOC-001", "DOC-002", "DOC-003", "DOC-004", "DOC-005"}
SELECT = " or ".join(sorted(IDS))


# --- the driver ---------------------------------------------------------------------------


def test_review_dates_and_dr_objectives_in_their_usual_dresses(tmp_path: Path) -> None:
    assert docs.last_reviewed("# X\n\n**Last reviewed:** 2026-11-27\n")[0] == date(2026, 11, 27)
    assert docs.last_reviewed("---\nlast_reviewed: 2026-01-02\n---\n")[0] == date(2026, 1, 2)
    assert docs.last_reviewed("- Last Reviewed: '2025-12-31'")[0] == date(2025, 12, 31)
    assert docs.last_reviewed("Next review: 2027-02-27\n") is None
    md = tmp_path / "dr.md"
    md.write_text("- **RTO (Recovery Time Objective):** 4 hours\n- **RPO:** 15 minutes\n")
    stated = docs.dr_objectives(md)
    assert stated["rto"][0] == timedelta(hours=4) and stated["rpo"][0] == timedelta(minutes=15)
    shipped = docs.dr_objectives(ROOT / "docs" / "disaster-recovery.yaml")
    assert {k: v for k, (v, _) in shipped.items()} == {
        "rto": timedelta(hours=4),
        "rpo": timedelta(minutes=15),
    }
    assert docs.headings("# A\n```bash\n# not a heading\n```\n## B c\n") == ["A", "B c"]


# --- the shipped checks, through the CLI -----------------------------------------------------


@pytest.fixture(scope="module")
def settings() -> Iterator[sandbox.Settings]:
    with running_sandbox(25000, "doc") as state:
        yield state


def healthy_set(repo: Path, settings: sandbox.Settings) -> Path:
    """A repository with the shipped documentation set, and the profile that points at it."""
    shutil.copytree(ROOT / "docs", repo / "docs")
    restamp_reviews(repo / "docs")  # the shipped dates age; this test's healthy copy must not
    shutil.copytree(ROOT / "runbooks", repo / "runbooks")
    https = f"https://127.0.0.1:{settings.ports.https}"
    profile = {
        "name": "docchecks",
        "tier": "staging",
        "monitoring": {"prometheus": {"url": f"http://127.0.0.1:{settings.ports.prometheus}"}},
        "dr": {"rto": "4h", "rpo": "15m"},
        "documentation": {
            "architecture_doc": "docs/architecture.md",
            "api_doc": "docs/api.md",
            "openapi_doc": "docs/openapi.json",
            "runbooks_dir": "runbooks",
            "oncall_playbook": "docs/on-call-playbook.md",
            "dr_procedures": "docs/disaster-recovery.yaml",
            "repository_root": ".",
            "live_openapi": {
                "url": f"{https}/openapi.json",
                "ca_file": str(settings.state_dir / "pki" / "ca.pem"),
            },
        },
    }
    path = repo / "docchecks.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


def run_checks(profile: Path, run_dir: Path) -> dict[str, list[dict]]:
    results = run_selected(profile, run_dir, SELECT)
    assert results.keys() == IDS, results
    return results


def failed(results: dict[str, list[dict]]) -> set[str]:
    return {i for i, checks in results.items() if any(c["status"] == "failed" for c in checks)}


def test_shipped_documentation_passes_every_check(
    settings: sandbox.Settings, tmp_path: Path
) -> None:
    results = run_checks(healthy_set(tmp_path / "repo", settings), tmp_path / "run")
    statuses = {(i, c["parameter"]): c["status"] for i, cs in results.items() for c in cs}
    assert set(statuses.values()) == {"passed"}, results
    assert len(results["DOC-004"]) == 2  # the playbook and the DR procedures
    assert all(c["evidence"] for checks in results.values() for c in checks)
    [diff] = [p for p in results["DOC-002"][0]["evidence"] if "openapi-diff" in p]
    seen = json.loads((tmp_path / "run" / diff).read_text())
    assert seen["operations_live"] == seen["operations_repo"] >= 10
    assert seen["only_live"] == seen["only_repo"] == []
    assert seen["differences"] == seen["notes"] == []  # schemas compared, none differs


def _remove_playbook(repo: Path) -> None:
    (repo / "docs" / "on-call-playbook.md").unlink()


def _openapi_edited(repo: Path, edit: Callable[[dict], None]) -> None:
    path = repo / "docs" / "openapi.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2))


def _undocumented_path(repo: Path) -> None:
    _openapi_edited(repo, lambda data: data["paths"].pop("/api/v1/faults"))


def _name_max_length_100(repo: Path) -> None:
    """The repository copy says names may be 100 characters; the service takes 200."""
    path = repo / "docs" / "openapi.json"
    path.write_text(path.read_text().replace('"maxLength": 200', '"maxLength": 100'))


def _item_id_a_string(repo: Path) -> None:
    """The repository copy says an item's id is a string; the service answers an integer."""

    def edit(data: dict) -> None:
        answer = data["paths"]["/api/v1/items/{item_id}"]["get"]["responses"]["200"]
        answer["content"]["application/json"]["schema"]["properties"]["id"]["type"] = "string"

    _openapi_edited(repo, edit)


def _runbook_missing(repo: Path) -> None:
    (repo / "runbooks" / "alerts.md").unlink()


def _stale_review(repo: Path) -> None:
    path = repo / "docs" / "on-call-playbook.md"
    old = (docs.today() - timedelta(days=100)).isoformat()
    path.write_text(re.sub(r"Last reviewed: \S+", f"Last reviewed: {old}", path.read_text()))


def _rpo_30_minutes(repo: Path) -> None:
    path = repo / "docs" / "disaster-recovery.yaml"
    path.write_text(path.read_text().replace("rpo: 15 minutes", "rpo: 30 minutes"))


@pytest.mark.parametrize(
    ("breaker", "check_id", "expected"),
    [
        (_remove_playbook, "DOC-001", "on-call playbook"),
        (_undocumented_path, "DOC-002", "undocumented in openapi.json: DELETE /api/v1/faults"),
        (
            _name_max_length_100,
            "DOC-002",
            "POST /api/v1/items › requestBody application/json › properties.name.maxLength: "
            "repository 100, live 200",
        ),
        (
            _item_id_a_string,
            "DOC-002",
            "GET /api/v1/items/{item_id} › response 200 application/json › properties.id.type: "
            'repository "string", live "integer"',
        ),
        (_runbook_missing, "DOC-003", "no file runbooks/alerts.md"),
        (_stale_review, "DOC-004", "100 days ago; the limit is 92 days"),
        (_rpo_30_minutes, "DOC-005", "states RPO 30 min"),
    ],
    ids=[
        "playbook-missing",
        "api-undocumented",
        "api-max-length",
        "api-field-type",
        "runbook-missing",
        "review-stale",
        "rpo-30m",
    ],
)
def test_each_fault_fails_exactly_its_check(
    breaker: Callable[[Path], None],
    check_id: str,
    expected: str,
    settings: sandbox.Settings,
    tmp_path: Path,
) -> None:
    profile = healthy_set(tmp_path / "repo", settings)
    breaker(tmp_path / "repo")
    results = run_checks(profile, tmp_path / "run")
    assert failed(results) == {check_id}, results
    [check] = [c for c in results[check_id] if c["status"] == "failed"]
    assert expected in check["message"], check["message"]


# --- DOC-003 against rule files as real projects ship them (issue 10) ------------------------


def _stale_rules(settings: sandbox.Settings) -> contextlib.AbstractContextManager:
    # An edit that does not parse: Prometheus keeps serving the old rules.
    text = (settings.layout().config_dir / "alert_rules.yml").read_text()
    return config_rejected(settings, "prometheus", "alert_rules.yml", text + "  - name: [\n")


def _rules_with(
    settings: sandbox.Settings, name: str, change: Callable[[list[dict]], None]
) -> contextlib.AbstractContextManager:
    """The sandbox's rules and the groups of tests/data/rules/``name``, changed by ``change``."""
    data = yaml.safe_load((settings.layout().config_dir / "alert_rules.yml").read_text())
    added = yaml.safe_load((ROOT / "tests" / "data" / "rules" / name).read_text())["groups"]
    change(added)
    return rules_served(settings, yaml.safe_dump({"groups": data["groups"] + added}))


def _ticket_runbook_missing(groups: list[dict]) -> None:
    [ticket] = [r for r in groups[-1]["rules"] if r["labels"]["sloth_severity"] == "ticket"]
    ticket["annotations"]["runbook_url"] = "runbooks/slo.md#ticket-alerts"


SLOTH_TICKET = (
    "sloth-slo-alerts-cronos-ai-requests-availability/CronosAIAvailabilityBudgetBurn"
    '{severity="slack",sloth_severity="ticket"}'
)


@pytest.mark.parametrize(
    ("fault", "unreachable", "expected"),
    [
        (lambda s: contextlib.nullcontext(), None, ""),
        (_stale_rules, False, "rejected its last configuration reload"),
        (
            lambda s: _rules_with(s, "kube-prometheus.yaml", list),
            True,
            "13 alerts: runbook host runbooks.prometheus-operator.invalid not reachable from "
            "this runner",
        ),
        (
            lambda s: _rules_with(s, "sloth-cronos-ai.yaml", _ticket_runbook_missing),
            False,
            f"1 alert: runbook not found: {SLOTH_TICKET}",
        ),
    ],
    ids=["DOC-003-healthy", "DOC-003-stale-rules", "DOC-003-unreachable-host", "DOC-003-sloth"],
)
def test_doc_003_verdicts(
    fault: Callable, unreachable: bool | None, expected: str, settings, tmp_path: Path
) -> None:
    profile = healthy_set(tmp_path / "repo", settings)
    with fault(settings):
        [check] = run_selected(profile, tmp_path / "run", "DOC-003")["DOC-003"]
    if unreachable is None:
        assert check["status"] == "passed", check
        return
    assert check["status"] == "failed" and check["unreachable"] is unreachable, check
    assert expected in check["message"], check["message"]
    assert 'sloth_severity="page"' not in check["message"]
