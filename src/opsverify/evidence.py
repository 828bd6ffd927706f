"""Evidence: what a check saw, redacted, written to the run's evidence folder and to Allure.

Redaction happens here, before a single byte is written: known secret values (every secret
the profile resolves), credential headers and passwords embedded in URLs.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MASK = "[REDACTED]"
_MIN_SECRET_LENGTH = 3  # shorter "secrets" would mangle ordinary text and protect nothing

_HEADER_LINE = re.compile(
    r"(?im)^(\s*(?:proxy-)?(?:authorization|cookie|set-cookie|x-api-key|x-auth-token)\s*[:=]\s*)\S.*$"
)
_HEADER_JSON = re.compile(
    r'(?i)("(?:proxy-)?(?:authorization|cookie|set-cookie|x-api-key|x-auth-token)"\s*:\s*")'
    r'(?:[^"\\]|\\.)*(")'
)
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/@\"']+:)[^\s@/\"']+(@)")


class Redactor:
    """Removes secrets from text and bytes. One per process, fed as secrets are resolved."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, value: str) -> None:
        if len(value) >= _MIN_SECRET_LENGTH:
            self._secrets.add(value)
            # As JSON writes it (quotes, backslashes, non-ASCII escaped): a sweep must see it.
            self._secrets.add(json.dumps(value)[1:-1])

    def data(self, value: Any) -> Any:
        """Mask secrets inside a structure before it is serialised."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value

    def text(self, content: str) -> str:
        # Longest first, so a secret containing another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            content = content.replace(secret, MASK)
        content = _HEADER_LINE.sub(lambda m: m[1] + MASK, content)
        content = _HEADER_JSON.sub(lambda m: m[1] + MASK + m[2], content)
        return _URL_PASSWORD.sub(lambda m: m[1] + MASK + m[2], content)

    def bytes(self, content: bytes) -> bytes:
        for secret in sorted(self._secrets, key=len, reverse=True):
            content = content.replace(secret.encode(), MASK.encode())
        return content

    def leaks(self, content: bytes) -> bool:
        return any(secret.encode() in content for secret in self._secrets)


REDACTOR = Redactor()

_UNSAFE = re.compile(r"[^A-Za-z0-9._\-]+")


def safe_name(name: str) -> str:
    """A file name for ``name``; when characters had to go, a short hash keeps it unique."""
    cleaned = _UNSAFE.sub("_", name).strip("_")[:80] or "_"
    if cleaned == name:
        return cleaned
    return f"{cleaned}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


@dataclass
class Evidence:
    """Attaches what a check saw. Obtained through the ``evidence`` fixture."""

    directory: Path
    root: Path  # the run folder; paths are recorded relative to it
    redactor: Redactor = REDACTOR
    files: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def measure(self, **values: float | str | None) -> None:
        """Figures the check measured (p95_ms, rto_seconds…): shown in readiness.json and
        kept in the history record of an activity, so trends need no evidence parsing."""
        self.figures.update(self.redactor.data(values))

    def remember(self, **values: Any) -> None:
        """Structured detail for the history record of an activity only (a drill's step
        log): what a later reader of the history needs beyond the figures."""
        self.details.update(self.redactor.data(json.loads(json.dumps(values, default=str))))

    def text(self, name: str, content: str) -> Path:
        return self._write(name, "txt", self.redactor.text(content).encode(), "text/plain")

    def json(self, name: str, data: Any) -> Path:
        masked = self.redactor.data(json.loads(json.dumps(data, default=str)))
        body = self.redactor.text(json.dumps(masked, indent=2, sort_keys=True))
        return self._write(name, "json", body.encode(), "application/json")

    def binary(self, name: str, data: bytes, *, extension: str, mime: str) -> Path:
        return self._write(name, extension, self.redactor.bytes(data), mime)

    def _write(self, name: str, extension: str, body: bytes, mime: str) -> Path:
        import allure  # only where evidence is written; allure is inert without --alluredir

        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{len(self.files) + 1:02d}-{safe_name(name)}.{extension}"
        path.write_bytes(body)
        self.files.append(path.relative_to(self.root).as_posix())
        allure.attach(body, name=name, attachment_type=mime, extension=extension)
        return path
