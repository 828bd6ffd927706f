"""The sandbox release's own reports: what its CI produced, deployed with it.

``sandbox up`` writes them to ``STATE_DIR/release/`` on every start, as a deployment ships
the reports of the build it deploys; the profile's ``tests:`` and ``security.scans:`` point
there. They are real reports kept in the package (``templates/release-*``):

- ``junit.xml``: a pytest JUnit report of opsverify's own unit tests. Its suite timestamp is
  left out, so its age counts from this deployment (the file's mtime).
- ``pip-audit.json``: ``pip-audit 2.10.1 -r`` over the sandbox service's pinned
  dependencies, exactly as written. PyPI's per-version JSON API (which pip-audit queries)
  did not answer for these versions from the build machine, so the report lists them as
  not audited: the scan is incomplete, and environments/local.yaml says why
  (``incomplete_because``), so APP-011 is not applicable there rather than clean.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from opsverify.sandbox import pki
from opsverify.sandbox.settings import Layout

REPORTS = {"junit.xml": "release-junit.xml", "pip-audit.json": "release-pip-audit.json"}


def folder(layout: Layout) -> Path:
    return layout.root / "release"


def deploy(layout: Layout) -> None:
    templates = resources.files("opsverify.sandbox") / "templates"
    target = folder(layout)
    target.mkdir(mode=0o755, exist_ok=True)
    for name, source in REPORTS.items():
        pki.write_atomic(target / name, (templates / source).read_bytes(), 0o644)
