"""Reports: everything a run leaves behind, written once the score and the gate are known."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from opsverify import interrupt
from opsverify.evidence import REDACTOR
from opsverify.report import allure_results, manifest, readiness, summary

if TYPE_CHECKING:
    from opsverify.run import Run


def write_all(run: Run) -> None:
    """Order matters: HTML first (its outcome is noted in the others), the manifest last."""
    allure_results.write_extras(run)
    sweep(run)
    if not interrupt.received():
        allure_results.write_html(run)
    if interrupt.received() and not run.interrupted:  # Ctrl-C while the HTML was made
        run.conclude(interrupt.REASON)
        allure_results.write_extras(run)
    if interrupt.received():
        shutil.rmtree(run.directory / "html", ignore_errors=True)
        run.html_report = None
        run.notes.append("HTML report not generated: interrupted (Ctrl-C)")
    readiness.write(run)
    summary.write(run)
    manifest.write(run)


def sweep(run: Run) -> None:
    """Last line of defence: mask a known secret that some other writer let through, and say so.

    Evidence, exceptions and captured output are redacted before they are written; finding
    a secret here means a writer we do not control (a plugin, a check writing files itself).
    """
    for path in sorted(run.directory.rglob("*")):
        if path.is_file() and REDACTOR.leaks(content := path.read_bytes()):
            path.write_bytes(REDACTOR.bytes(content))
            where = Path(path).relative_to(run.directory)
            run.notes.append(f"a secret value was found and masked in {where}")
