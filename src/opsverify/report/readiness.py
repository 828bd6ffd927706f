"""readiness.json: the machine-readable verdict of a run, versioned and schema-checked."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema

if TYPE_CHECKING:
    from opsverify.run import Run

SCHEMA_VERSION = "1.1"  # 1.1: gate.policy, the policy the verdict applied
FILENAME = "readiness.json"


def schema() -> dict[str, Any]:
    text = resources.files("opsverify").joinpath("schemas/readiness.schema.json").read_text()
    return json.loads(text)


def document(run: Run) -> dict[str, Any]:
    assert run.score is not None and run.verdict is not None
    return {
        "schema_version": SCHEMA_VERSION,
        "run": run.context(),
        "score": run.score.to_dict(),
        "gate": run.verdict.to_dict(),
        "checks": [result.to_dict() for result in run.ordered_results()],
        "notes": run.notes,
    }


def write(run: Run) -> Path:
    data = document(run)
    # Our own output must honour the schema we ship; a mismatch is a bug worth failing on.
    jsonschema.validate(data, schema())
    path = run.directory / FILENAME
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


class ReadinessError(ValueError):
    """A readiness.json that cannot be used: names the file and the problem."""


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReadinessError(f"{path}: not found") from None
    except IsADirectoryError:
        raise ReadinessError(f"{path}: is a folder, expected a readiness.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReadinessError(f"{path}: not valid JSON: {exc}") from None
    try:
        jsonschema.validate(data, schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(map(str, exc.absolute_path)) or "(top level)"
        raise ReadinessError(f"{path}: {where}: {exc.message}") from None
    return data


def load_verified(path: Path) -> tuple[Path, dict[str, Any]]:
    """A stored run (its folder or its readiness.json), proven intact by its manifest before
    anything of it is believed: every reader of a stored run starts here."""
    from opsverify.report import manifest

    folder = path if path.is_dir() else path.parent
    data = load(folder / FILENAME)  # what it claims to be first: a message about the right file
    try:
        changed = manifest.verify(folder)
    except manifest.ManifestError as exc:
        raise ReadinessError(str(exc)) from None
    if changed:
        raise ReadinessError(
            f"{folder}: files differ from manifest.json: {', '.join(changed[:10])}"
            + (f" and {len(changed) - 10} more" if len(changed) > 10 else "")
        )
    if manifest.run_of(folder) != data["run"]["id"]:
        raise ReadinessError(
            f"{folder}: manifest.json was written for run {manifest.run_of(folder)!r}, "
            f"readiness.json is run {data['run']['id']!r}"
        )
    return folder, data
