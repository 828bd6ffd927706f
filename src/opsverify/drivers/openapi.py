"""OpenAPI driver: how a live service's OpenAPI document differs from the repository's copy.

Not text against text: the contract. Operation by operation, the parameters (by location and
name; path-level ones merged in), the request body and the responses (by status), each media
type's schema: `$ref`s followed (3.1: with their sibling keywords), recursive schemas compared
once per pair, written defaults equal to omitted ones, 3.0 ``nullable`` and boolean
``exclusiveMaximum`` read as their 3.1 spellings, ``type``/``required``/``enum`` as sets.
Descriptive keys (description, summary, title, examples, x-…) are kept apart as notes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from opsverify import message, userfile
from opsverify.drivers.docs import DocError

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class _Absent:
    def __repr__(self) -> str:
        return "absent"


ABSENT: Any = _Absent()  # a key one document has and the other has not

# Keys that describe and do not constrain: a difference is a note, never a failure. Servers
# say where a deployment runs (staging's live document names staging), not what the API is.
DESCRIPTIVE = frozenset(
    {"description", "summary", "title", "example", "examples", "externalDocs", "$comment"}
    | {"operationId", "tags", "servers"}
)
# Top-level keys about the document, not about the API's contract.
_ABOUT = ("openapi", "info")

# JSON Schema keywords whose values are schemas: one, a name → schema map, a list.
_SCHEMA = frozenset(
    {"items", "additionalProperties", "additionalItems", "unevaluatedItems"}
    | {"unevaluatedProperties", "propertyNames", "not", "contains", "if", "then", "else"}
    | {"contentSchema"}
)
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas", "$defs"})
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_UNORDERED = frozenset({"type", "required", "enum"})
# What an omitted keyword means: a document that writes it out says the same thing.
_SCHEMA_DEFAULTS: dict[str, Any] = {
    **dict.fromkeys(_SCHEMA - {"not", "contains", "if", "contentSchema"}, True),
    **dict.fromkeys(("readOnly", "writeOnly", "deprecated", "uniqueItems"), False),
    **dict.fromkeys(("minLength", "minItems", "minProperties"), 0),
    "required": [],
}


# --- values ---------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON-equal values made equal in Python too: 100.0 is 100; True stays apart from 1."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _canon(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True, default=str)


def _same(a: Any, b: Any) -> bool:
    if a is ABSENT or b is ABSENT:
        return a is b
    return _canon(a) == _canon(b)


def _as_set(value: Any) -> Any:
    if value is ABSENT:
        return ABSENT
    return frozenset(map(_canon, value if isinstance(value, list) else [value]))


def _shown(value: Any, limit: int = 60) -> str:
    if value is ABSENT:
        return "absent"
    text = json.dumps(_plain(value), ensure_ascii=False, default=str, separators=(",", ":"))
    if len(text) <= limit:
        return text
    return "present" if isinstance(value, dict) else text[: limit - 1] + "…"


def _dotted(keys: Iterable[str | int]) -> str:
    text = ""
    for key in keys:
        if isinstance(key, int):
            text += f"[{key}]"
        elif re.fullmatch(r"[A-Za-z_$@][\w$@-]*", key):
            text += f".{key}" if text else key
        else:
            text += f"[{json.dumps(key, ensure_ascii=False)}]"
    return text


def _descriptive(key: Any) -> bool:
    return isinstance(key, str) and (key in DESCRIPTIVE or key.startswith("x-"))


def _keys(a: Any, b: Any) -> list[Any]:
    """The keys of two mappings, the first one's order first; ABSENT counts as empty."""
    first = list(a) if isinstance(a, dict) else []
    return first + [k for k in (b if isinstance(b, dict) else []) if k not in first]


# A difference below some point: (keys from there, repository value, live value, descriptive).
Item = tuple[tuple[str | int, ...], Any, Any, bool]


def _under(prefix: tuple[str | int, ...], items: Iterable[Item]) -> list[Item]:
    return [((*prefix, *keys), a, b, note) for keys, a, b, note in items]


def _values(a: Any, b: Any, keys: tuple = (), note: bool = False) -> list[Item]:
    """Two plain JSON values, key by key where both are objects."""
    if isinstance(a, dict) and isinstance(b, dict):
        items: list[Item] = []
        for key in _keys(a, b):
            x, y = a.get(key, ABSENT), b.get(key, ABSENT)
            items += _values(x, y, (*keys, str(key)), note or _descriptive(key))
        return items
    return [] if _same(a, b) else [(keys, a, b, note)]


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _fields(
    a: dict,
    b: dict,
    special: dict[str, Callable[[Any, Any], None]],
    add: Callable[[list[Item]], None],
) -> None:
    """An OpenAPI object's keys: ``special`` ones by their handler, the rest as values."""
    for key in _keys(a, b):
        x, y = a.get(key, ABSENT), b.get(key, ABSENT)
        if key in special:
            special[key](x, y)
        else:
            add(_values(x, y, (str(key),), _descriptive(key)))


# --- differences ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """One place where the documents disagree: ``where`` names it, e.g.
    ``POST /items › requestBody application/json › properties.name.maxLength``."""

    where: str
    repository: Any
    live: Any

    def __str__(self) -> str:
        return f"{self.where}: repository {_shown(self.repository)}, live {_shown(self.live)}"

    def as_json(self) -> dict[str, Any]:
        found = {"where": self.where}
        for side, value in (("repository", self.repository), ("live", self.live)):
            if value is not ABSENT:  # an omitted side is not null: `const: null` exists
                found[side] = json.loads(_canon(value))
        return found


@dataclass(frozen=True)
class Comparison:
    operations_repository: list[str]
    operations_live: list[str]
    differences: list[Difference]  # the contract differs: the check fails
    notes: list[Difference]  # descriptive keys differ: listed, not failed

    @property
    def only_repository(self) -> list[str]:
        return sorted(set(self.operations_repository) - set(self.operations_live))

    @property
    def only_live(self) -> list[str]:
        return sorted(set(self.operations_live) - set(self.operations_repository))

    def problems(self, repository_name: str) -> list[str]:
        """What fails, one counted listing per kind, for a check's message."""
        kinds = [
            (self.only_live, "operation", f"undocumented in {repository_name}"),
            (self.only_repository, "operation", "documented but not served"),
            ([str(d) for d in self.differences], "contract difference", ""),
        ]
        return [
            message.listing(items, noun + "s" * (len(items) > 1), cause)
            for items, noun, cause in kinds
            if items
        ]

    def evidence(self) -> dict[str, Any]:
        return {
            "operations_repo": len(self.operations_repository),
            "operations_live": len(self.operations_live),
            "only_repo": self.only_repository,
            "only_live": self.only_live,
            "differences": [d.as_json() for d in self.differences],
            "notes": [d.as_json() for d in self.notes],
        }


# --- documents ------------------------------------------------------------------------------


def parse(text: str) -> Any:
    """An OpenAPI document as served: JSON, or YAML."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        documents = userfile.parse_yaml(text, "the document")
    except userfile.UserFileError as exc:
        raise DocError(f"neither JSON nor YAML: {exc}") from None
    return documents[0] if len(documents) == 1 else documents


class _Document:
    def __init__(self, document: Any, role: str) -> None:
        if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
            raise DocError(f"the {role} document is not an OpenAPI document: no paths object")
        self.document, self.role = document, role
        # 3.0 (and Swagger 2.0): keywords beside a $ref are ignored; 3.1 applies them.
        self.v30 = "swagger" in document or str(document.get("openapi")).startswith("3.0")

    def _target(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise DocError(
                f"the {self.role} document's $ref {ref!r} leads outside it: only references "
                "within the document are followed (bundle it into one file)"
            )
        node = self.document
        for token in unquote(ref[1:]).split("/")[1:]:
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise DocError(f"the {self.role} document's $ref {ref!r} points at nothing")
        return node

    def resolve(self, node: Any) -> tuple[Any, tuple]:
        """``node`` with its $ref chain followed, and a key that names what it resolved to
        (the first $ref and the sibling keywords kept; an inline node by identity)."""
        if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
            return node, ("inline", id(node))
        chain: list[str] = []
        siblings: dict[str, Any] = {}
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in chain:
                raise DocError(
                    f"the {self.role} document's $ref {' → '.join([*chain, ref])} is a cycle"
                )
            chain.append(ref)
            if not self.v30:  # a nearer $ref's siblings win over a farther one's
                siblings = {**{k: v for k, v in node.items() if k != "$ref"}, **siblings}
            node = self._target(ref)
        if siblings and isinstance(node, dict):
            node = {**node, **siblings}
        return node, ("ref", chain[0], _canon(siblings))

    def operations(self, follow: bool = True) -> dict[str, tuple[dict, dict]]:
        """``{"GET /items": (path item, operation), …}``, webhooks as ``POST webhook NAME``;
        path items given by $ref are followed unless ``follow`` is false."""
        found = {}
        for section, prefix in (("paths", ""), ("webhooks", "webhook ")):
            items = self.document.get(section)
            for path, raw in items.items() if isinstance(items, dict) else ():
                item = self.resolve(raw)[0] if follow else raw
                for method in METHODS if isinstance(item, dict) else ():
                    if isinstance(item.get(method), dict):
                        found[f"{method.upper()} {prefix}{path}"] = (item, item[method])
        return found

    def parameters(self, label: str, item: dict, operation: dict) -> dict[tuple, dict]:
        """An operation's parameters by (location, name): its own override its path's."""
        found = {}
        for source in (item.get("parameters"), operation.get("parameters")):
            for raw in source if isinstance(source, list) else ():
                param, _ = self.resolve(raw)
                if not (isinstance(param, dict) and "name" in param and "in" in param):
                    raise DocError(
                        f"the {self.role} document's {label} has a parameter "
                        f"without name or in: {_shown(param)}"
                    )
                name = str(param["name"])
                found[(param["in"], name.lower() if param["in"] == "header" else name)] = param
        return found

    def security(self, operation: dict) -> Any:
        """The security an operation requires: its own, else the document's."""
        return operation.get("security", self.document.get("security", []))


def operations(document: Any) -> list[str]:
    """The operations an OpenAPI document writes out (``GET /items``, …; path items given by
    $ref not followed); DocError if it is no OpenAPI document."""
    return list(_Document(document, "given").operations(follow=False))


# --- the comparison -------------------------------------------------------------------------


def _parameter_defaults(parameter: dict, location: str) -> dict[str, Any]:
    """What a parameter (or header) that omits these keys means."""
    style = "form" if location in ("query", "cookie") else "simple"
    return {
        "required": location == "path",
        "style": style,
        "explode": parameter.get("style", style) == "form",
        **dict.fromkeys(("deprecated", "allowEmptyValue", "allowReserved"), False),
    }


class _Comparer:
    def __init__(self, repository: Any, live: Any) -> None:
        self.repo = _Document(repository, "repository")
        self.live = _Document(live, "live")
        self.differences: list[Difference] = []
        self.notes: list[Difference] = []
        self._seen: set[tuple] = set()  # pairs of schemas compared below the current one

    def add(self, segments: Sequence[str], items: Iterable[Item]) -> None:
        for keys, a, b, note in items:
            where = " › ".join([*segments, _dotted(keys)] if keys else segments)
            (self.notes if note else self.differences).append(Difference(where, a, b))

    def adder(self, segments: Sequence[str]) -> Callable[[Iterable[Item]], None]:
        return lambda items: self.add(segments, items)

    def resolved(self, a: Any, b: Any) -> tuple[Any, Any]:
        return self.repo.resolve(a)[0], self.live.resolve(b)[0]

    # schemas: differences relative to the schema compared

    def schema(self, a: Any, b: Any) -> list[Item]:
        """Two schemas (a media type's, a parameter's), each pair of the schemas below them
        compared once: a pair met again (a recursive schema, a $ref used twice) adds nothing,
        its differences are named at the first place, so a DAG of $refs stays polynomial."""
        self._seen = set()
        return self._pair(a, b)

    def _pair(self, a: Any, b: Any) -> list[Item]:
        (a, key_a), (b, key_b) = self.repo.resolve(a), self.live.resolve(b)
        if (key_a, key_b) in self._seen:
            return []
        self._seen.add((key_a, key_b))
        return self._schema(a, b)

    def _schema(self, a: Any, b: Any) -> list[Item]:
        if a is True and isinstance(b, dict):  # `true` is the empty schema
            a = {}
        if b is True and isinstance(a, dict):
            b = {}
        if not (isinstance(a, dict) and isinstance(b, dict)):
            return _values(a, b)
        a, b = _normalized(a), _normalized(b)
        items: list[Item] = []
        for key in _keys(a, b):
            x = a.get(key, _SCHEMA_DEFAULTS.get(key, ABSENT))
            y = b.get(key, _SCHEMA_DEFAULTS.get(key, ABSENT))
            if _descriptive(key) or key in ("default", "const"):
                # data, compared whole: a default of {"description": …} is not a description
                items += [] if _same(x, y) else [((key,), x, y, _descriptive(key))]
            elif key in _UNORDERED:
                items += [] if _as_set(x) == _as_set(y) else [((key,), x, y, False)]
            elif key in _SCHEMA_MAPS and isinstance(x, dict) and isinstance(y, dict):
                for name in _keys(x, y):
                    sub = self._pair(x.get(name, ABSENT), y.get(name, ABSENT))
                    items += _under((key, str(name)), sub)
            elif key in _SCHEMA_LISTS | _SCHEMA and isinstance(x, list) and isinstance(y, list):
                items += self._schema_list(key, x, y)
            elif key in _SCHEMA and x is not ABSENT and y is not ABSENT:
                items += _under((key,), self._pair(x, y))
            else:
                items += _values(x, y, (key,))
        return items

    def _schema_list(self, key: str, a: list, b: list) -> list[Item]:
        """Lists of schemas, element by element; a reordered list (the same elements as
        written) pairs equal elements, whose $refs may still resolve to different schemas."""
        written_a, written_b = list(map(_canon, a)), list(map(_canon, b))
        order = list(range(len(b)))
        if written_a != written_b and sorted(written_a) == sorted(written_b):
            order = []
            for text in written_a:
                order.append(
                    next(j for j in range(len(b)) if written_b[j] == text and j not in order)
                )
        items: list[Item] = []
        for i in range(max(len(a), len(b))):
            x = a[i] if i < len(a) else ABSENT
            y = b[order[i]] if i < len(b) else ABSENT
            items += _under((key, i), self._pair(x, y))
        return items

    # OpenAPI objects: differences with their full place

    def operation(self, label: str, repo: tuple[dict, dict], live: tuple[dict, dict]) -> None:
        (item_a, op_a), (item_b, op_b) = repo, live
        params_a = self.repo.parameters(label, item_a, op_a)
        params_b = self.live.parameters(label, item_b, op_b)
        for key in _keys(params_a, params_b):
            location, name = key
            self.parameter(
                [label, f"parameter {location} {name}"],
                location,
                params_a.get(key, ABSENT),
                params_b.get(key, ABSENT),
            )
        security = self.repo.security(op_a), self.live.security(op_b)
        if _as_set(security[0]) != _as_set(security[1]):
            self.add([label], [(("security",), *security, False)])
        special: dict[str, Callable[[Any, Any], None]] = {
            "parameters": lambda x, y: None,  # above: merged with the path's, by name
            "security": lambda x, y: None,  # above: the document's when the operation has none
            "requestBody": lambda x, y: self.body(label, x, y),
            "responses": lambda x, y: self.responses(label, x, y),
        }
        defaults = {"deprecated": False}
        _fields({**defaults, **op_a}, {**defaults, **op_b}, special, self.adder([label]))

    def parameter(self, segments: list[str], location: str, a: Any, b: Any) -> None:
        """A parameter, or a response header (location ``header``)."""
        a, b = self.resolved(a, b)
        if not (isinstance(a, dict) and isinstance(b, dict)):
            return self.add(segments, _values(a, b))
        a = {**_parameter_defaults(a, location), **a}
        b = {**_parameter_defaults(b, location), **b}
        special: dict[str, Callable[[Any, Any], None]] = {
            "name": lambda x, y: None,  # the key it is found by
            "in": lambda x, y: None,
            "schema": lambda x, y: self.add(segments, _under(("schema",), self.schema(x, y))),
            "content": lambda x, y: self.content(segments[:-1], segments[-1], x, y),
        }
        _fields(a, b, special, self.adder(segments))

    def content(self, segments: list[str], label: str, a: Any, b: Any) -> None:
        """A content map: per media type, its schema and the rest."""
        if not all(v is ABSENT or isinstance(v, dict) for v in (a, b)):
            return self.add([*segments, label], _values(a, b, ("content",)))
        types_a = {str(k).lower(): v for k, v in _mapping(a).items()}
        types_b = {str(k).lower(): v for k, v in _mapping(b).items()}
        for media in _keys(types_a, types_b):
            here = [*segments, f"{label} {media}"]
            x, y = types_a.get(media, ABSENT), types_b.get(media, ABSENT)
            if not (isinstance(x, dict) and isinstance(y, dict)):
                self.add(here, _values(x, y))
                continue
            special = {"schema": lambda s, t, here=here: self.add(here, self.schema(s, t))}
            _fields(x, y, special, self.adder(here))

    def body(self, label: str, a: Any, b: Any) -> None:
        a, b = self.resolved(a, b)
        here = [label, "requestBody"]
        if not (isinstance(a, dict) and isinstance(b, dict)):
            return self.add(here, _values(a, b))
        special = {"content": lambda x, y: self.content([label], "requestBody", x, y)}
        _fields({"required": False, **a}, {"required": False, **b}, special, self.adder(here))

    def responses(self, label: str, a: Any, b: Any) -> None:
        by_code_a, by_code_b = _by_status(a), _by_status(b)
        for code in _keys(by_code_a, by_code_b):
            here = [label, f"response {code}"]
            x, y = self.resolved(by_code_a.get(code, ABSENT), by_code_b.get(code, ABSENT))
            if not (isinstance(x, dict) and isinstance(y, dict)):
                self.add(here, _values(x, y))
                continue
            special = {
                "content": lambda s, t, here=here: self.content([label], here[-1], s, t),
                "headers": lambda s, t, here=here: self.headers(here, s, t),
                # Swagger 2.0 writes the schema on the response
                "schema": lambda s, t, here=here: self.add(
                    here, _under(("schema",), self.schema(s, t))
                ),
            }
            _fields(x, y, special, self.adder(here))

    def headers(self, segments: list[str], a: Any, b: Any) -> None:
        if not all(v is ABSENT or isinstance(v, dict) for v in (a, b)):
            return self.add(segments, _values(a, b, ("headers",)))
        named_a = {str(k).lower(): v for k, v in _mapping(a).items()}
        named_b = {str(k).lower(): v for k, v in _mapping(b).items()}
        for name in _keys(named_a, named_b):
            header = named_a.get(name, ABSENT), named_b.get(name, ABSENT)
            self.parameter([*segments, f"header {name}"], "header", *header)

    def document(self) -> None:
        """Outside the operations: the security schemes, and notes about the document
        itself (its OpenAPI version, info, servers, tags)."""
        a, b = self.repo.document, self.live.document
        schemes = [_mapping(doc.get("components")).get("securitySchemes", ABSENT) for doc in (a, b)]
        self.add(["components"], _values(*schemes, ("securitySchemes",)))
        for key in _keys(a, b):
            if key in _ABOUT or _descriptive(key) or key == "jsonSchemaDialect":
                note = key != "jsonSchemaDialect"
                self.add([], _values(a.get(key, ABSENT), b.get(key, ABSENT), (str(key),), note))


def _normalized(schema: dict) -> dict:
    """One spelling for what 3.0 and 3.1 write two ways."""
    out = dict(schema)
    if out.pop("nullable", False) is True:  # 3.0: nullable → "null" in type
        if "type" in out:
            types = out.pop("type")
            out["type"] = [*(types if isinstance(types, list) else [types]), "null"]
        else:  # without a type there is nothing to add "null" to: kept as written
            out["nullable"] = True
    for bound in ("minimum", "maximum"):  # 3.0: exclusiveMaximum: true + maximum: N
        exclusive = f"exclusive{bound.capitalize()}"
        flag = out.get(exclusive)
        if isinstance(flag, bool):
            del out[exclusive]
        if flag is True and bound in out:
            out[exclusive] = out.pop(bound)
    if isinstance(out.get("type"), list):
        types = sorted(set(map(str, out["type"])))
        out["type"] = types[0] if len(types) == 1 else types
    return out


def _by_status(responses: Any) -> dict[str, Any]:
    if not isinstance(responses, dict):
        return {}
    return {
        (str(code).upper() if re.fullmatch(r"[1-5]xx", str(code), re.I) else str(code)): reply
        for code, reply in responses.items()
    }


def compare(repository: Any, live: Any) -> Comparison:
    """How ``live`` differs from ``repository`` (both parsed OpenAPI documents)."""
    comparer = _Comparer(repository, live)
    ops_repo, ops_live = comparer.repo.operations(), comparer.live.operations()
    for name in ops_repo:
        if name in ops_live:
            comparer.operation(name, ops_repo[name], ops_live[name])
    comparer.document()
    return Comparison(list(ops_repo), list(ops_live), comparer.differences, comparer.notes)
