"""Files users give opsverify (profiles, waivers, backup policy files, SLO specs, documents),
read within bounds and refusing what would silently change their meaning.

- Size: at most ``max_bytes`` (a profile is kilobytes; a 50 MB one took 35 s and 760 MB of
  memory before it was refused).
- Encoding: UTF-8; other bytes are named, never a traceback.
- YAML: a key repeated in one mapping is an error naming both lines (the last one would
  win: ``gate: {min_score: 0}`` appended to a profile passed its gate, a second ``expires``
  extended a waiver); aliases may not expand into more than ``MAX_NODES`` values (an 11 KB
  alias bomb expands into billions); nesting deeper than ``MAX_DEPTH`` is refused; an
  impossible date (2026-02-30) is an error at its line.

Every problem is a ``UserFileError`` naming the file, and never quoting the offending text:
it may hold a secret.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1 << 20  # profiles, waivers, policy files, SLO specs
MAX_DOCUMENT_BYTES = 16 << 20  # documents (OpenAPI, DR procedures): they grow larger
MAX_NODES = 200_000  # values a document may hold once its aliases are expanded
MAX_DEPTH = 64  # levels of nesting


class UserFileError(ValueError):
    """A file that cannot be used as what it was given as; the message names the file."""


def read_text(path: Path, what: str, max_bytes: int = MAX_BYTES) -> str:
    """The file's text; UserFileError for a folder, a missing file, too many bytes, not UTF-8."""
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise UserFileError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise UserFileError(f"{path}: is a folder, expected a {what} file") from None
    except OSError as exc:
        raise UserFileError(f"{path}: {what} cannot be read: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise UserFileError(
            f"{path}: larger than {max_bytes // 1024} KiB: too large for a {what} file"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserFileError(
            f"{path}: not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line}"
        ) from None


def load_yaml(path: Path, what: str, max_bytes: int = MAX_BYTES) -> Any:
    """One YAML document (None when the file is empty)."""
    documents = load_yaml_documents(path, what, max_bytes)
    if len(documents) > 1:
        raise UserFileError(f"{path}: {len(documents)} YAML documents, expected one {what}")
    return documents[0] if documents else None


def load_yaml_documents(path: Path, what: str, max_bytes: int = MAX_BYTES) -> list[Any]:
    """Every YAML document of the file, empty ones left out."""
    return parse_yaml(read_text(path, what, max_bytes), str(path))


def parse_yaml(text: str, where: str) -> list[Any]:
    """Every YAML document of ``text`` (JSON is YAML too), empty ones left out; problems are
    UserFileErrors starting with ``where`` (a file's path, a URL)."""
    try:
        documents = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError as exc:
        raise UserFileError(f"{where}: {problem(exc)}") from None
    except RecursionError:
        raise UserFileError(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
    for document in documents:
        _bounded(where, document)
    return documents


def problem(exc: yaml.YAMLError) -> str:
    """Where and what, without the offending line: it may hold an inline secret."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"not valid YAML{where}: {getattr(exc, 'problem', None) or type(exc).__name__}"


def _bounded(where: str, document: Any) -> None:
    """Count the values the document holds with its aliases expanded, as every later walk
    will see them; stop at the first bound passed, long before an alias bomb goes off."""
    seen = 0
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise UserFileError(
                f"{where}: more than {MAX_NODES} values once its aliases are expanded"
            )
        if depth > MAX_DEPTH:
            raise UserFileError(f"{where}: nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in _children(node))


def _children(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield value
    elif isinstance(node, list):
        yield from node


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, refusing repeated keys and naming impossible dates' lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *defaults`: its keys may be overridden, by design
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    earlier = first.setdefault(key, line)
                except TypeError:  # an unhashable key: the base class says so
                    continue
                if earlier != line:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key {key!r} repeated: lines {earlier} and {line} (the last would win)",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except (ValueError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"not a date: {exc}", node.start_mark
            ) from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)
