"""Reports: everything a run leaves behind, written once the score and the gate are known."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsverify.report import allure_results, manifest, readiness, summary

if TYPE_CHECKING:
    from opsverify.run import Run


def write_all(run: Run) -> None:
    """Order matters: HTML first (its outcome is noted in the others), the manifest last."""
    allure_results.write_extras(run)
    allure_results.write_html(run)
    readiness.write(run)
    summary.write(run)
    manifest.write(run)
