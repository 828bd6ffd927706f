"""manifest.json: the SHA-256 of every file of the run folder, so evidence can be proven intact."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsverify.run import Run

FILENAME = "manifest.json"
ALGORITHM = "sha256"
_CHUNK = 1 << 20


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def build(directory: Path) -> dict[str, Any]:
    links = sorted(
        p.relative_to(directory).as_posix() for p in _entries(directory) if p.is_symlink()
    )
    if links:  # a link proves nothing about what it points to, and may point anywhere
        raise ManifestError(f"{directory}: links are refused in a run folder: {', '.join(links)}")
    files = sorted(p for p in _entries(directory) if p.is_file() and p.name != FILENAME)
    return {
        "algorithm": ALGORITHM,
        "files": {
            p.relative_to(directory).as_posix(): {"sha256": sha256(p), "bytes": p.stat().st_size}
            for p in files
        },
    }


def _entries(directory: Path) -> list[Path]:
    return list(directory.rglob("*"))


def _seal(fields: dict[str, Any]) -> str:
    """The digest of the manifest's own fields, so that none of them changes unseen."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def write(run: Run) -> Path:
    path = run.directory / FILENAME
    fields = {"run": run.id, **build(run.directory)}
    path.write_text(json.dumps({**fields, "seal": _seal(fields)}, indent=2) + "\n")
    return path


class ManifestError(ValueError):
    """A manifest that is missing, unreadable or altered: the run folder cannot be proven."""


def run_of(directory: Path) -> str:
    """The run the (verified) manifest was written for."""
    return json.loads((directory / FILENAME).read_text())["run"]


def verify(directory: Path) -> list[str]:
    """Files whose content no longer matches the manifest (or that appeared or vanished).
    ManifestError when the manifest itself is missing or altered, or the folder holds links."""
    path = directory / FILENAME
    try:
        recorded = json.loads(path.read_text())
        fields = {k: recorded[k] for k in ("run", "algorithm", "files")}
        seal = recorded["seal"]
    except FileNotFoundError:
        raise ManifestError(f"{path}: missing, so the run folder cannot be proven") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"{path}: not a manifest ({exc!r})") from None
    if set(recorded) != {*fields, "seal"} or seal != _seal(fields):
        raise ManifestError(f"{path}: altered: its fields do not match its seal")
    if fields["algorithm"] != ALGORITHM:
        raise ManifestError(f"{path}: algorithm {fields['algorithm']!r}, expected {ALGORITHM}")
    if not isinstance(fields["files"], dict):
        raise ManifestError(f"{path}: 'files' must map names to hashes")
    actual = build(directory)["files"]
    recorded_files = fields["files"]
    changed = [name for name, entry in recorded_files.items() if actual.get(name) != entry]
    return sorted(changed + [name for name in actual if name not in recorded_files])
