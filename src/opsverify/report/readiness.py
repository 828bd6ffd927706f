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
