"""Allure 3 driver end to end: allure-pytest results -> single-file HTML -> headless chromium.

Run with: .venv/bin/pytest tests/test_allure_driver.py -p no:opsverify
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from opsverify.drivers.allure import ENV_VAR, AllureError, find_cli, generate_html
from tests.browser import chromium, is_blank, render

REPO = Path(__file__).resolve().parents[1]
ENV_VALUE = "sandbox-eu-7f3a"
EXECUTOR = "opsverify-ci"
CATEGORY = "Stale backups"

# Labels the way opsverify's plugin adds them: markers in pytest_collection_modifyitems.
SAMPLE_CONFTEST = """
import pytest

def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.allure_label("Backups", label_type="epic"))
        item.add_marker(pytest.mark.allure_label("Restore drill", label_type="feature"))
        item.add_marker(pytest.mark.allure_label("critical", label_type="severity"))
        item.add_marker(pytest.mark.allure_label("restic", "nightly", label_type="tag"))
        item.add_marker(
            pytest.mark.allure_link(
                "https://runbooks.invalid/restore", link_type="link", name="runbook"
            )
        )
        item.add_marker(pytest.mark.smoke)  # a marker without arguments becomes a tag
"""
SAMPLE_TESTS = """
def test_restore_roundtrip():
    assert True

def test_backup_is_fresh():
    assert False, "newest snapshot is older than 24h"
"""
SAMPLE_INI = """
[pytest]
markers =
    smoke: a bare marker, reported by allure-pytest as a tag
"""


@pytest.fixture(scope="module")
def cli() -> Path:
    found = find_cli(REPO)
    if found is None:
        pytest.skip("Allure 3 CLI not installed: run `npm ci --no-audit --no-fund`")
    return found


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    suite = tmp_path_factory.mktemp("suite")
    (suite / "pytest.ini").write_text(SAMPLE_INI)  # keeps the repo's config out
    (suite / "conftest.py").write_text(textwrap.dedent(SAMPLE_CONFTEST))
    (suite / "test_sample.py").write_text(textwrap.dedent(SAMPLE_TESTS))
    out = suite / "allure-results"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:opsverify", "-p", "no:cacheprovider"]
        + ["-q", f"--alluredir={out}", str(suite)],
        cwd=suite,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stdout + run.stderr  # one test fails on purpose
    (out / "environment.properties").write_text(
        f"# opsverify run\nopsverify.target={ENV_VALUE}\nopsverify.profile=smoke\n"
    )
    categories = [
        {"name": CATEGORY, "messageRegex": ".*older than.*", "matchedStatuses": ["failed"]}
    ]
    (out / "categories.json").write_text(json.dumps(categories))
    executor = {"name": EXECUTOR, "type": "opsverify", "buildName": "run 42", "buildOrder": 42}
    (out / "executor.json").write_text(json.dumps(executor))
    return out


@pytest.fixture(scope="module")
def report(cli: Path, results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_html(
        results, tmp_path_factory.mktemp("report"), report_name="Driver check", cli=cli
    )


def test_markers_become_labels_and_links(results: Path) -> None:
    docs = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    assert sorted(doc["name"] for doc in docs) == ["test_backup_is_fresh", "test_restore_roundtrip"]
    for doc in docs:
        labels = {(label["name"], label["value"]) for label in doc["labels"]}
        assert {
            ("epic", "Backups"),
            ("feature", "Restore drill"),
            ("severity", "critical"),
            ("tag", "restic"),
            ("tag", "nightly"),
            ("tag", "smoke"),
        } <= labels
        assert doc["links"] == [
            {"type": "link", "url": "https://runbooks.invalid/restore", "name": "runbook"}
        ]


def test_report_is_one_offline_file(report: Path) -> None:
    assert report.name == "index.html"
    assert [p.name for p in report.parent.iterdir()] == ["index.html"]
    html = report.read_text(encoding="utf-8")
    assert "googletagmanager" not in html
    assert 'http-equiv="Content-Security-Policy"' in html
    assert 'src="http' not in html and 'href="http' not in html


@pytest.mark.skipif(chromium() is None, reason="Debian chromium not installed")
def test_report_renders_from_file_url(report: Path, tmp_path: Path) -> None:
    text = render(report, png=tmp_path / "overview.png")
    assert not is_blank(tmp_path / "overview.png")
    for expected in (
        "Driver check",
        "test_restore_roundtrip",
        "test_backup_is_fresh",
        "Backups",  # epic: first tree level
        "Restore drill",  # feature: second tree level
        ENV_VALUE,  # environment.properties -> Metadata widget
        EXECUTOR,  # executor.json -> Metadata widget
    ):
        assert expected in text

    # categories.json reaches Allure 3 only through the config the driver writes.
    text = render(f"{report.as_uri()}#categories", png=tmp_path / "categories.png")
    assert CATEGORY in text


@pytest.mark.skipif(chromium() is None, reason="Debian chromium not installed")
def test_empty_page_screenshot_is_blank(tmp_path: Path) -> None:
    page = tmp_path / "empty.html"
    page.write_text("<!DOCTYPE html><html><body></body></html>")
    assert render(page, png=tmp_path / "empty.png") == ""
    assert is_blank(tmp_path / "empty.png")


def test_missing_results_dir(tmp_path: Path, cli: Path) -> None:
    with pytest.raises(AllureError, match="results directory not found"):
        generate_html(tmp_path / "nope", tmp_path / "out", report_name="x", cli=cli)


def _fake_cli(directory: Path, body: str) -> Path:
    script = directory / "allure"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return script


def test_cli_failure_reports_stderr(tmp_path: Path) -> None:
    fake = _fake_cli(tmp_path, 'echo "boom: cannot parse results" >&2; exit 3')
    with pytest.raises(AllureError, match=r"exited with 3:\nboom: cannot parse results"):
        generate_html(tmp_path, tmp_path / "out", report_name="x", cli=fake)
    assert not (tmp_path / "out" / "index.html").exists()


def test_cli_timeout_kills_process_group(tmp_path: Path) -> None:
    # `sleep` is the shell's child: were only the shell killed, it would hold the stderr
    # pipe open and the driver would wait the full 30 s.
    fake = _fake_cli(tmp_path, "sleep 30")
    started = time.monotonic()
    with pytest.raises(AllureError, match="timed out after 1s"):
        generate_html(tmp_path, tmp_path / "out", report_name="x", cli=fake, timeout=1)
    assert time.monotonic() - started < 10


def test_find_cli_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    project = tmp_path / "project"
    project.mkdir()

    _fake_cli(bin_dir, "echo 2.32.0")  # Allure 2 on PATH is not good enough
    assert find_cli(project) is None
    on_path = _fake_cli(bin_dir, "echo 3.18.0")
    assert find_cli(project) == on_path

    local = project / "node_modules" / ".bin"
    local.mkdir(parents=True)
    installed = _fake_cli(local, "exit 0")
    assert find_cli(project) == installed

    monkeypatch.setenv(ENV_VAR, str(on_path))
    assert find_cli(project) == on_path
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(AllureError, match=ENV_VAR):
        find_cli(project)


@pytest.mark.usefixtures("cli")
def test_find_cli_defaults_to_current_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(REPO)
    assert find_cli() == REPO / "node_modules" / ".bin" / "allure"
