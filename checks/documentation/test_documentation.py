"""Handbook › Pre-Production Checklist › Documentation: "Architecture documentation",
"API documentation", "Runbooks created", "On-call playbook reviewed", "DR procedures
documented"; Appendix › "Review Frequency: Quarterly"; Disaster Recovery › DR Objectives."""

from datetime import timedelta
from pathlib import Path

import yaml

from opsverify import family, message, not_applicable, userfile
from opsverify.drivers import docs, http, openapi
from opsverify.drivers import prometheus as prom

doc_check = family(
    category="documentation",
    controls=["SOC2:CC2.2", "ISO27001:A.5.37"],
    runbook="runbooks/documentation.md",
    cadences=["predeploy", "weekly"],
)

RUNBOOK_SUFFIXES = (".md", ".markdown", ".rst", ".txt", ".adoc")


def _file_problem(path: Path) -> str | None:
    if not path.exists():
        return "missing"
    if not path.is_file():
        return "not a file"
    if not path.read_text(errors="replace").strip():
        return "empty"
    return None


def _load(path: Path):  # noqa: ANN202 - JSON or YAML, whatever the document holds
    return openapi.parse(userfile.read_text(path, "OpenAPI", userfile.MAX_DOCUMENT_BYTES))


@doc_check(
    "DOC-001",
    "The documentation set exists: architecture, API, on-call playbook, DR procedures, runbooks",
    severity="high",
)
def test_documentation_set_exists(documentation, evidence):
    files = {
        "architecture": documentation.architecture_doc,
        "api": documentation.api_doc,
        "on-call playbook": documentation.oncall_playbook,
        "DR procedures": documentation.dr_procedures,
    }
    if documentation.openapi_doc is not None:
        files["OpenAPI document"] = documentation.openapi_doc
    seen, problems = [], []
    for role, path in files.items():
        problem = _file_problem(path)
        if problem is None and role == "OpenAPI document":
            try:
                openapi.operations(_load(path))
            except (ValueError, yaml.YAMLError, docs.DocError) as exc:
                problem = f"unreadable: {exc}"
        seen.append(
            {
                "role": role,
                "path": str(path),
                "bytes": path.stat().st_size if path.is_file() else None,
                "problem": problem,
            }
        )
        if problem:
            problems.append(f"{role} {path}: {problem}")
    folder = documentation.runbooks_dir
    runbooks = (
        sorted(
            p
            for p in folder.rglob("*")
            if p.is_file() and p.suffix in RUNBOOK_SUFFIXES and p.read_text().strip()
        )
        if folder.is_dir()
        else []
    )
    if not folder.is_dir():
        problems.append(f"runbooks folder {folder}: missing")
    elif not runbooks:
        problems.append(f"runbooks folder {folder}: no runbook in it")
    evidence.json(
        "documentation-set",
        {
            "documents": seen,
            "runbooks_dir": str(folder),
            "runbooks": [str(p.relative_to(folder)) for p in runbooks],
        },
    )
    assert not problems, "; ".join(problems)


@doc_check(
    "DOC-002",
    "The API documentation is current: the live OpenAPI document matches the repository's",
    severity="medium",
    controls=["SOC2:CC2.2", "ISO27001:A.5.37", "ISO27001:A.8.32"],
)
def test_api_documentation_current(documentation, evidence):
    live_source = documentation.live_openapi
    if documentation.openapi_doc is None or live_source is None:
        not_applicable(
            "no OpenAPI document and live source configured "
            "(documentation.openapi_doc, documentation.live_openapi)"
        )
    repo_doc = documentation.openapi_doc
    assert repo_doc.is_file(), f"the repository's OpenAPI document {repo_doc} is missing"
    response = http.get(
        str(live_source.url),
        timeout=live_source.timeout.total_seconds(),
        ca_file=live_source.ca_file,
    )
    assert response.status_code == 200, f"{live_source.url} answered {response.status_code}"
    try:
        live = openapi.parse(response.text)
        diff = openapi.compare(_load(repo_doc), live)
    except (ValueError, yaml.YAMLError, docs.DocError) as exc:
        raise AssertionError(f"{repo_doc.name} against {live_source.url}: {exc}") from None
    evidence.json(
        "openapi-diff",
        {"repository_document": str(repo_doc), "live_document": str(live_source.url)}
        | diff.evidence(),
    )
    evidence.json("openapi-live", live)
    problems = diff.problems(repo_doc.name)
    assert not problems, "; ".join(problems)


@doc_check(
    "DOC-003",
    "Every alert has a runbook: each alerting rule's runbook_url leads to an existing runbook",
    severity="high",
    controls=["SOC2:CC2.2", "SOC2:CC7.4", "ISO27001:A.5.37", "ISO27001:A.5.26"],
)
def test_every_alert_has_a_runbook(documentation, prometheus, evidence, pytestconfig):
    # Relative runbook_urls are paths from the repository root (as for MON-003); they must
    # lead into the documentation set's runbooks folder.
    root = documentation.repository_root or pytestconfig.rootpath
    reload = prom.config_reload(prometheus)
    rules = prom.alerting_rules(prom.rule_groups(prometheus))
    reviews = docs.review_alert_rules(
        rules, root, prometheus.timeout.total_seconds(), within=documentation.runbooks_dir
    )
    evidence.json(
        "alert-runbooks",
        {
            "config_reload": reload.describe(),
            "repository_root": str(root),
            "runbooks_dir": str(documentation.runbooks_dir),
            "alerts": [review.describe() for review in reviews],
        },
    )
    assert reload.successful, reload.problem
    assert rules, "Prometheus has no alerting rule loaded"
    message.conclude(docs.findings(reviews))


@doc_check(
    "DOC-004",
    "The on-call playbook and the DR procedures were reviewed within the review frequency",
    severity="medium",
    controls=["SOC2:CC2.2", "ISO27001:A.5.37", "ISO27001:A.5.30"],
)
def test_reviewed_within_frequency(reviewed_document, profile, evidence):
    limit = profile.documentation.review_every
    path = reviewed_document
    if not path.is_file():
        not_applicable(f"{path} does not exist: DOC-001 fails on that")
    found = docs.last_reviewed(path.read_text())
    today = docs.today()
    age = (today - found[0]).days if found else None
    evidence.json(
        "review",
        {
            "document": str(path),
            "review_line": found[1] if found else None,
            "last_reviewed": found[0].isoformat() if found else None,
            "today": today.isoformat(),
            "age_days": age,
            "limit_days": limit / timedelta(days=1),
        },
    )
    assert found, f"{path} states no review date (expected a line 'Last reviewed: YYYY-MM-DD')"
    assert age >= -1, f"{path} was 'last reviewed' on {found[0]}, in the future"
    assert timedelta(days=age) <= limit, (
        f"{path} was last reviewed on {found[0]}, {age} days ago; the limit is "
        f"{limit / timedelta(days=1):g} days"
    )


def _human(value: timedelta) -> str:
    minutes = value / timedelta(minutes=1)
    return f"{minutes / 60:g} h" if minutes >= 60 else f"{minutes:g} min"


@doc_check(
    "DOC-005",
    "The DR procedures state the profile's RTO and RPO",
    severity="high",
    controls=["SOC2:CC2.2", "SOC2:A1.3", "ISO27001:A.5.29", "ISO27001:A.5.30"],
)
def test_dr_objectives_match(documentation, profile, evidence):
    if profile.dr is None:
        not_applicable("no DR objectives configured (dr)")
    path = documentation.dr_procedures
    if not path.is_file():
        not_applicable(f"{path} does not exist: DOC-001 fails on that")
    stated = docs.dr_objectives(path)
    expected = {"rto": profile.dr.rto, "rpo": profile.dr.rpo}
    evidence.json(
        "dr-objectives",
        {
            "document": str(path),
            "profile": {k: _human(v) for k, v in expected.items()},
            "document_states": {
                k: {"value": _human(v), "where": where} for k, (v, where) in stated.items()
            },
        },
    )
    problems = []
    for name, want in expected.items():
        if name not in stated:
            problems.append(f"{path.name} states no {name.upper()}")
        elif stated[name][0] != want:
            problems.append(
                f"{path.name} states {name.upper()} {_human(stated[name][0])} "
                f"({stated[name][1]!r}), the profile {_human(want)}"
            )
    assert not problems, "; ".join(problems)
