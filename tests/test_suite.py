"""The shipped check suite itself: ids unique and well formed, runbooks exist, controls named."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from opsverify.check import CheckMeta, meta_of
from tests.helpers import ROOT, opsverify

SUITES = ("checks", "drills", "load", "chaos")


def shipped_checks() -> list[tuple[Path, CheckMeta]]:
    found = []
    for suite in SUITES:
        for path in sorted((ROOT / suite).rglob("test_*.py")):
            spec = importlib.util.spec_from_file_location(f"shipped_{path.stem}", path)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            found += [(path, m) for obj in vars(module).values() if (m := meta_of(obj))]
    return found


def test_every_check_has_a_unique_id_controls_and_an_existing_runbook() -> None:
    checks = shipped_checks()
    assert len(checks) >= 8
    ids = [meta.id for _, meta in checks]
    assert len(ids) == len(set(ids)), f"duplicate ids: {sorted(ids)}"
    for path, meta in checks:
        assert meta.controls, f"{meta.id} in {path} maps to no compliance control"
        assert any(c.startswith("SOC2:") for c in meta.controls), meta.id
        assert any(c.startswith("ISO27001:") for c in meta.controls), meta.id
        assert (ROOT / meta.runbook).is_file(), f"{meta.id}: runbook {meta.runbook} missing"
        assert meta.id in (ROOT / meta.runbook).read_text(), f"{meta.runbook} omits {meta.id}"


def test_list_shows_the_predeploy_selection_for_local() -> None:
    outcome = opsverify("list", "--env", "local", "--cadence", "predeploy", timeout=60)
    assert outcome.code == 0, outcome.output
    for check_id in ("APP-001", "APP-002", "TLS-001", "TLS-002", "TLS-003", "MON-001", "MON-002"):
        assert check_id in outcome.stdout


def test_family_shares_metadata_and_lets_a_check_override_it() -> None:
    from opsverify import family

    area = family(
        category="backup",
        controls=["SOC2:A1.2", "ISO27001:A.8.13"],
        runbook="runbooks/backup.md",
        cadences=["daily"],
    )

    @area("BKP-900", "daily one", severity="high")
    def daily() -> None: ...

    @area("BKP-901", "monthly one", severity="critical", cadences=["monthly"])
    def monthly() -> None: ...

    first, second = meta_of(daily), meta_of(monthly)
    assert first and second
    assert (first.category, first.controls, first.runbook) == (
        "backup",
        ("SOC2:A1.2", "ISO27001:A.8.13"),
        "runbooks/backup.md",
    )
    assert first.cadences == ("daily",) and second.cadences == ("monthly",)
    assert second.severity == "critical" and second.controls == first.controls
