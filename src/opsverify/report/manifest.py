"""manifest.json: the SHA-256 of every file of the run folder, so evidence can be proven intact."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsverify.run import Run

FILENAME = "manifest.json"
_CHUNK = 1 << 20


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def build(directory: Path) -> dict[str, Any]:
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != FILENAME)
    return {
        "algorithm": "sha256",
        "files": {
            p.relative_to(directory).as_posix(): {"sha256": sha256(p), "bytes": p.stat().st_size}
            for p in files
        },
    }


def write(run: Run) -> Path:
    path = run.directory / FILENAME
    path.write_text(json.dumps({"run": run.id, **build(run.directory)}, indent=2) + "\n")
    return path


class ManifestError(ValueError):
    """A manifest that is missing or unreadable: the run folder cannot be proven."""


def verify(directory: Path) -> list[str]:
    """Files whose content no longer matches the manifest (or that appeared or vanished)."""
    path = directory / FILENAME
    try:
        recorded = json.loads(path.read_text())["files"]
    except FileNotFoundError:
        raise ManifestError(f"{path}: missing, so the run folder cannot be proven") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"{path}: not a manifest ({exc!r})") from None
    if not isinstance(recorded, dict):
        raise ManifestError(f"{path}: 'files' must map names to hashes")
    actual = build(directory)["files"]
    changed = [name for name, entry in recorded.items() if actual.get(name) != entry]
    return sorted(changed + [name for name in actual if name not in recorded])
