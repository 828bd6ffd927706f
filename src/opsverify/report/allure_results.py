"""Allure side of a run: the environment, categories and executor files, then the HTML."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from opsverify.drivers import allure

if TYPE_CHECKING:
    from opsverify.run import Run

# Allure sorts failures into these buckets: a product that fails its check is a different
# problem from a target the run could not reach at all.
CATEGORIES = [
    {
        "name": "Unreachable targets",
        "matchedStatuses": ["failed", "broken"],
        # JavaScript regex (Allure 3 is Node): no inline flags, [\s\S] spans lines.
        "messageRegex": r"[\s\S]*(unreachable|ConnectError|ConnectTimeout|ReadTimeout|"
        r"TimeoutError|Connection refused|timed out)[\s\S]*",
    },
    {"name": "Product failures", "matchedStatuses": ["failed"]},
    {"name": "Check errors", "matchedStatuses": ["broken"]},
]


def write_extras(run: Run) -> None:
    assert run.score is not None and run.verdict is not None
    results = run.allure_results
    results.mkdir(parents=True, exist_ok=True)
    properties = {
        "environment": run.profile.name,
        "tier": str(run.profile.tier),
        "cadence": run.cadence or "all",
        "score": "n/a" if run.score.value is None else f"{run.score.value:g}",
        "gate": "passed" if run.verdict.passed else "failed",
        "min_score": f"{run.verdict.min_score:g}",
        "run": run.id,
    }
    (results / "environment.properties").write_text(
        "".join(f"{key}={value}\n" for key, value in properties.items())
    )
    (results / "categories.json").write_text(json.dumps(CATEGORIES, indent=2))
    executor = {
        "name": "opsverify",
        "type": "opsverify",
        "buildName": f"{run.profile.name} {run.id}",
        "reportName": _title(run),
    }
    (results / "executor.json").write_text(json.dumps(executor, indent=2))


def _title(run: Run) -> str:
    assert run.score is not None and run.verdict is not None
    verdict = "passed" if run.verdict.passed else "failed"
    score = "n/a" if run.score.value is None else f"{run.score.value:g}"
    return f"opsverify {run.profile.name}: score {score}, gate {verdict}"


def write_html(run: Run) -> None:
    try:
        cli = allure.find_cli()
        if cli is None:
            run.notes.append("HTML report not generated: Allure 3 CLI not found (npm ci)")
            return
        run.html_report = allure.generate_html(
            run.allure_results, run.directory / "html", report_name=_title(run), cli=cli
        )
    except allure.AllureError as exc:
        run.notes.append(f"HTML report not generated: {exc}")
