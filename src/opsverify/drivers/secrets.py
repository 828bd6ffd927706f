"""Secrets driver: scan a folder for plaintext secrets with detect-secrets (library API, its
default plugins and filters). Findings say where and what kind; never the value."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", ".tox"}
MAX_FILE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Finding:
    file: str
    line: int | None
    type: str

    def evidence(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "type": self.type}


@dataclass(frozen=True)
class Scan:
    root: Path
    files: int
    findings: list[Finding]


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(names):
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink() and path.stat().st_size <= MAX_FILE_BYTES:
                found.append(path)
    return found


def _existing_path(value: str | None) -> bool:
    """An absolute path that exists is no secret, however random a folder name in it makes
    it look to the entropy plugins (temporary folders: /tmp/app-x7k2q9zb/backup-staging).
    detect-secrets may keep a backslash or quote after the path (from ``KEY="/path",…``
    lines): it is no part of the path."""
    path = (value or "").rstrip("\\\"'")
    return path.startswith("/") and Path(path).exists()


def scan(root: Path) -> Scan:
    """Every file below ``root`` through detect-secrets; raises FileNotFoundError if missing."""
    from detect_secrets import SecretsCollection
    from detect_secrets.settings import default_settings

    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    files = _files(root)
    collection = SecretsCollection()
    with default_settings():
        for path in files:
            collection.scan_file(str(path))
    findings = [
        Finding(file=filename, line=secret.line_number, type=secret.type)
        for filename, secret in collection
        if not _existing_path(secret.secret_value)
    ]
    findings.sort(key=lambda f: (f.file, f.line or 0, f.type))
    return Scan(root=root, files=len(files), findings=findings)
