"""The OpenAPI comparison behind DOC-002: drift in a schema is found and named by its path.

Inputs not written for opsverify: documents in the OpenAPI/Swagger petstore examples' style
(components with $ref, allOf, nullable, enums; the same API spelled as 3.1), documents that
apispec generates from marshmallow models (3.0.3 and 3.1.0 from the same models, so the two
spellings of "nullable" meet), the sandbox's own published document, and documents
Hypothesis generates, where any single seeded keyword change must be found at its path.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema, fields, validate

from opsverify.drivers import openapi
from opsverify.drivers.docs import DocError
from opsverify.sandbox.service.app import OPENAPI
from tests.helpers import ROOT

# --- the petstore, as the OpenAPI examples write it --------------------------------------------

PETSTORE_30 = """
openapi: "3.0.3"
info:
  version: 1.0.0
  title: Swagger Petstore
  description: A sample API that uses a petstore as an example
servers:
  - url: http://petstore.swagger.io/api
paths:
  /pets:
    get:
      description: Returns all pets from the system that the user has access to
      operationId: findPets
      parameters:
        - name: tags
          in: query
          description: tags to filter by
          required: false
          style: form
          schema:
            type: array
            items:
              type: string
        - name: limit
          in: query
          description: maximum number of results to return
          required: false
          schema:
            type: integer
            format: int32
            minimum: 1
            maximum: 100
            default: 20
      responses:
        '200':
          description: pet response
          headers:
            X-Rate-Limit:
              description: calls per hour allowed by the user
              schema:
                type: integer
                format: int32
          content:
            application/json:
              schema:
                type: array
                items:
                  $ref: '#/components/schemas/Pet'
        default:
          $ref: '#/components/responses/UnexpectedError'
    post:
      description: Creates a new pet in the store. Duplicates are allowed
      operationId: addPet
      security:
        - petstore_auth:
            - write:pets
      requestBody:
        description: Pet to add to the store
        required: true
        content:
          application/json:
            schema:
              $ref: '#/components/schemas/NewPet'
      responses:
        '200':
          description: pet response
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Pet'
        default:
          $ref: '#/components/responses/UnexpectedError'
  /pets/{id}:
    parameters:
      - $ref: '#/components/parameters/PetId'
    get:
      description: Returns a user based on a single ID
      operationId: find pet by id
      responses:
        '200':
          description: pet response
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Pet'
        default:
          $ref: '#/components/responses/UnexpectedError'
    delete:
      description: deletes a single pet based on the ID supplied
      operationId: deletePet
      responses:
        '204':
          description: pet deleted
        default:
          $ref: '#/components/responses/UnexpectedError'
components:
  parameters:
    PetId:
      name: id
      in: path
      description: ID of pet
      required: true
      schema:
        type: integer
        format: int64
  responses:
    UnexpectedError:
      description: unexpected error
      content:
        application/json:
          schema:
            $ref: '#/components/schemas/Error'
  schemas:
    Pet:
      allOf:
        - $ref: '#/components/schemas/NewPet'
        - type: object
          required:
          - id
          properties:
            id:
              type: integer
              format: int64
    NewPet:
      type: object
      required:
        - name
      properties:
        name:
          type: string
          maxLength: 200
        tag:
          type: string
          nullable: true
        status:
          type: string
          description: pet status in the store
          enum:
            - available
            - pending
            - sold
        weight:
          type: number
          minimum: 0
          exclusiveMinimum: true
    Error:
      type: object
      required:
        - code
        - message
      properties:
        code:
          type: integer
          format: int32
        message:
          type: string
  securitySchemes:
    petstore_auth:
      type: oauth2
      flows:
        implicit:
          authorizationUrl: https://petstore.swagger.io/oauth/authorize
          scopes:
            write:pets: modify pets in your account
"""

# The same API as a 3.1 document writes it (and as other generators spell the same thing).
SPELLED_31 = [
    ('openapi: "3.0.3"', 'openapi: "3.1.0"'),
    ("          type: string\n          nullable: true", '          type: [string, "null"]'),
    ("          minimum: 0\n          exclusiveMinimum: true", "          exclusiveMinimum: 0"),
    ("          required: false\n          style: form", "          explode: true"),
    (
        "            - available\n            - pending",
        "            - pending\n            - available",
    ),
    ("      required:\n        - code\n        - message", "      required: [message, code]"),
    (
        "    NewPet:\n      type: object",
        "    NewPet:\n      type: object\n      additionalProperties: true",
    ),
    ("            maximum: 100", "            maximum: 100.0"),
    ("        '204':", "        204:"),
    ("            X-Rate-Limit:", "            x-rate-limit:"),
]


def petstore_31() -> dict:
    text = PETSTORE_30
    for old, new in SPELLED_31:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return yaml.safe_load(text)


def petstore() -> dict:
    return yaml.safe_load(PETSTORE_30)


def found(repository: Any, live: Any) -> list[str]:
    return [str(d) for d in openapi.compare(repository, live).differences]


def test_the_sandbox_publishes_what_its_repository_document_says() -> None:
    shipped = json.loads((ROOT / "docs" / "openapi.json").read_text())
    comparison = openapi.compare(shipped, OPENAPI)
    assert comparison.differences == comparison.notes == []
    assert len(comparison.operations_live) == 11


def test_a_document_equals_itself_and_its_3_1_spelling() -> None:
    assert found(petstore(), petstore()) == []
    comparison = openapi.compare(petstore(), petstore_31())
    assert comparison.differences == []
    assert [str(n) for n in comparison.notes] == ['openapi: repository "3.0.3", live "3.1.0"']


def _schema(doc: dict, name: str) -> dict:
    return doc["components"]["schemas"][name]


def _limit(doc: dict) -> dict:
    return doc["paths"]["/pets"]["get"]["parameters"][1]


# Where NewPet is used: in the request body of POST /pets, and (in Pet) in three responses.
NEW_PET = [
    "GET /pets › response 200 application/json › items.allOf[0].",
    "POST /pets › requestBody application/json › ",
    "POST /pets › response 200 application/json › allOf[0].",
    "GET /pets/{id} › response 200 application/json › allOf[0].",
]


DRIFT: list[tuple[str, Callable[[dict], Any], list[str]]] = [
    (
        "maxLength in a shared component, under every operation that uses it",
        lambda d: _schema(d, "NewPet")["properties"]["name"].update(maxLength=100),
        [
            "GET /pets › response 200 application/json › "
            "items.allOf[0].properties.name.maxLength: repository 200, live 100",
            "POST /pets › requestBody application/json › "
            "properties.name.maxLength: repository 200, live 100",
            "POST /pets › response 200 application/json › "
            "allOf[0].properties.name.maxLength: repository 200, live 100",
            "GET /pets/{id} › response 200 application/json › "
            "allOf[0].properties.name.maxLength: repository 200, live 100",
        ],
    ),
    (
        "a field's type",
        lambda d: _schema(d, "Pet")["allOf"][1]["properties"]["id"].update(type="string"),
        [
            f"{op} › response 200 application/json › {at}allOf[1].properties.id.type: "
            'repository "integer", live "string"'
            for op, at in (("GET /pets", "items."), ("POST /pets", ""), ("GET /pets/{id}", ""))
        ],
    ),
    (
        "nullable dropped (3.0)",
        lambda d: _schema(d, "NewPet")["properties"]["tag"].pop("nullable"),
        [f'{at}properties.tag.type: repository ["null","string"], live "string"' for at in NEW_PET],
    ),
    (
        "an enum value dropped",
        lambda d: _schema(d, "NewPet")["properties"]["status"]["enum"].remove("pending"),
        [
            f"{at}properties.status.enum: "
            'repository ["available","pending","sold"], live ["available","sold"]'
            for at in NEW_PET
        ],
    ),
    (
        "an exclusive minimum made inclusive",
        lambda d: _schema(d, "NewPet")["properties"]["weight"].pop("exclusiveMinimum"),
        [
            f"{at}properties.weight.{change}"
            for at in NEW_PET
            for change in (
                "exclusiveMinimum: repository 0, live absent",
                "minimum: repository absent, live 0",
            )
        ],
    ),
    (
        "a query parameter's maximum and default",
        lambda d: _limit(d)["schema"].update(maximum=50, default=10),
        [
            "GET /pets › parameter query limit › schema.maximum: repository 100, live 50",
            "GET /pets › parameter query limit › schema.default: repository 20, live 10",
        ],
    ),
    (
        "a query parameter made required",
        lambda d: _limit(d).update(required=True),
        ["GET /pets › parameter query limit › required: repository false, live true"],
    ),
    (
        "a path parameter's type, from the path item",
        lambda d: d["components"]["parameters"]["PetId"]["schema"].update(type="string"),
        [
            f'{op} /pets/{{id}} › parameter path id › schema.type: repository "integer", '
            'live "string"'
            for op in ("GET", "DELETE")
        ],
    ),
    (
        "a response header's type",
        lambda d: d["paths"]["/pets"]["get"]["responses"]["200"]["headers"]["X-Rate-Limit"][
            "schema"
        ].update(type="string"),
        [
            'GET /pets › response 200 › header x-rate-limit › schema.type: repository "integer", '
            'live "string"'
        ],
    ),
    (
        "a request body made optional",
        lambda d: d["paths"]["/pets"]["post"]["requestBody"].update(required=False),
        ["POST /pets › requestBody › required: repository true, live false"],
    ),
    (
        "a status code dropped",
        lambda d: d["paths"]["/pets/{id}"]["delete"]["responses"].pop("204"),
        ['DELETE /pets/{id} › response 204: repository {"description":"pet deleted"}, live absent'],
    ),
    (
        "a media type renamed",
        lambda d: d["paths"]["/pets/{id}"]["get"]["responses"]["200"].update(
            content={"application/xml": {"schema": {"$ref": "#/components/schemas/Pet"}}}
        ),
        [
            'GET /pets/{id} › response 200 application/json: repository {"schema":'
            '{"$ref":"#/components/schemas/Pet"}}, live absent',
            'GET /pets/{id} › response 200 application/xml: repository absent, live {"schema":'
            '{"$ref":"#/components/schemas/Pet"}}',
        ],
    ),
    (
        "additional properties refused",
        lambda d: _schema(d, "Error").update(additionalProperties=False),
        [
            f"{op} › response default application/json › additionalProperties: "
            "repository true, live false"
            for op in ("GET /pets", "POST /pets", "GET /pets/{id}", "DELETE /pets/{id}")
        ],
    ),
    (
        "a field made read-only, a pattern added",
        lambda d: _schema(d, "NewPet")["properties"]["name"].update(readOnly=True, pattern="^x"),
        [
            f"{at}properties.name.{change}"
            for at in NEW_PET
            for change in (
                "readOnly: repository false, live true",
                'pattern: repository absent, live "^x"',
            )
        ],
    ),
    (
        "security dropped from an operation",
        lambda d: d["paths"]["/pets"]["post"].pop("security"),
        ['POST /pets › security: repository [{"petstore_auth":["write:pets"]}], live []'],
    ),
    (
        "a discriminator added",
        lambda d: _schema(d, "Error").update(discriminator={"propertyName": "code"}),
        [
            f"{op} › response default application/json › discriminator: repository absent, "
            'live {"propertyName":"code"}'
            for op in ("GET /pets", "POST /pets", "GET /pets/{id}", "DELETE /pets/{id}")
        ],
    ),
]


@pytest.mark.parametrize(("edit", "expected"), [d[1:] for d in DRIFT], ids=[d[0] for d in DRIFT])
def test_drift_is_found_and_named_by_its_path(
    edit: Callable[[dict], Any], expected: list[str]
) -> None:
    live = petstore()
    edit(live)
    assert sorted(found(petstore(), live)) == sorted(expected)
    # the same drift against the 3.1 spelling of the repository document: found the same way
    assert len(found(petstore_31(), live)) == len(expected)


def test_operations_only_on_one_side_are_listed_apart() -> None:
    live = petstore()
    del live["paths"]["/pets/{id}"]["delete"]
    live["paths"]["/pets/{id}"]["patch"] = {"responses": {"200": {"description": "updated"}}}
    comparison = openapi.compare(petstore(), live)
    assert comparison.only_repository == ["DELETE /pets/{id}"]
    assert comparison.only_live == ["PATCH /pets/{id}"]
    assert comparison.differences == []
    assert comparison.problems("openapi.yaml") == [
        "1 operation: undocumented in openapi.yaml: PATCH /pets/{id}",
        "1 operation: documented but not served: DELETE /pets/{id}",
    ]


def test_descriptive_keys_are_notes_never_differences() -> None:
    live = petstore()
    live["info"]["title"] = "Petstore (staging)"
    live["servers"] = [{"url": "https://staging.example.com"}]
    get = live["paths"]["/pets"]["get"]
    get["description"] = "Lists pets"
    get["operationId"] = "listPets"
    get["x-codegen-request-body-name"] = "body"
    get["parameters"][1]["example"] = 5
    _schema(live, "NewPet")["properties"]["status"]["description"] = "where the pet is"
    _schema(live, "NewPet")["x-internal"] = True
    comparison = openapi.compare(petstore(), live)
    assert comparison.differences == []
    notes = {n.where for n in comparison.notes}
    assert {
        "info.title",
        "servers",
        "GET /pets › description",
        "GET /pets › operationId",
        "GET /pets › x-codegen-request-body-name",
        "GET /pets › parameter query limit › example",
        "POST /pets › requestBody application/json › properties.status.description",
        "POST /pets › requestBody application/json › x-internal",
    } <= notes


def test_values_json_tells_apart_stay_apart() -> None:
    repo, live = petstore(), petstore()
    _limit(repo)["schema"]["default"] = 1
    _limit(live)["schema"]["default"] = True
    _schema(repo, "NewPet")["properties"]["name"]["const"] = None  # const: null is not absent
    assert found(repo, live) == [
        "GET /pets › parameter query limit › schema.default: repository 1, live true"
    ] + [f"{at}properties.name.const: repository null, live absent" for at in NEW_PET]


def test_ref_siblings_apply_in_3_1_and_are_ignored_in_3_0() -> None:
    def with_sibling(version: str, sibling: dict) -> dict:
        doc = petstore()
        doc["openapi"] = version
        body = doc["paths"]["/pets"]["post"]["requestBody"]["content"]["application/json"]
        body["schema"] = {"$ref": "#/components/schemas/NewPet", **sibling}
        return doc

    base = with_sibling("3.1.0", {})
    assert found(base, with_sibling("3.1.0", {"description": "a new pet"})) == []
    assert found(base, with_sibling("3.1.0", {"maxProperties": 3})) == [
        "POST /pets › requestBody application/json › maxProperties: repository absent, live 3"
    ]
    assert found(with_sibling("3.0.3", {}), with_sibling("3.0.3", {"maxProperties": 3})) == []


def test_recursive_schemas_end_and_their_drift_is_found_once_per_operation() -> None:
    def tree(version: str) -> dict:
        doc = petstore()
        doc["openapi"] = version
        schemas = doc["components"]["schemas"]
        schemas["Node"] = {
            "type": "object",
            "properties": {
                "value": {"type": "string", "maxLength": 10},
                "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
                "next": {"$ref": "#/components/schemas/Link", "description": "3.1 sibling"},
            },
        }
        schemas["Link"] = {"properties": {"node": {"$ref": "#/components/schemas/Node"}}}
        ok = doc["paths"]["/pets"]["get"]["responses"]["200"]
        ok["content"]["application/json"]["schema"] = {"$ref": "#/components/schemas/Node"}
        return doc

    for version in ("3.0.3", "3.1.0"):
        assert found(tree(version), tree(version)) == []
        live = tree(version)
        _schema(live, "Node")["properties"]["value"]["maxLength"] = 20
        assert found(tree(version), live) == [
            "GET /pets › response 200 application/json › properties.value.maxLength: "
            "repository 10, live 20"
        ]


def test_a_schema_reached_by_many_paths_is_named_once_per_operation() -> None:
    """Levels of $refs, each naming the next twice: 2**30 paths lead to the last one."""

    def dag() -> dict:
        doc = petstore()
        schemas = doc["components"]["schemas"]
        for level in range(30):
            below = {"$ref": f"#/components/schemas/L{level + 1}"}
            schemas[f"L{level}"] = {"properties": {"a": below, "b": below}}
        schemas["L30"] = {"type": "string", "maxLength": 5}
        ok = doc["paths"]["/pets/{id}"]["get"]["responses"]["200"]
        ok["content"]["application/json"]["schema"] = {"$ref": "#/components/schemas/L0"}
        return doc

    live = dag()
    _schema(live, "L30")["maxLength"] = 6
    assert found(dag(), live) == [
        "GET /pets/{id} › response 200 application/json › "
        + "properties.a." * 30
        + "maxLength: repository 5, live 6"
    ]


def test_references_that_lead_nowhere_are_named() -> None:
    broken = petstore()
    broken["paths"]["/pets/{id}"]["parameters"] = [{"$ref": "#/components/parameters/PetID"}]
    with pytest.raises(DocError, match=r"live document's \$ref '#/components/parameters/PetID' "):
        openapi.compare(petstore(), broken)
    outside = petstore()
    _schema(outside, "Pet")["allOf"][0] = {"$ref": "common.yaml#/NewPet"}
    with pytest.raises(DocError, match="repository document's .* leads outside it"):
        openapi.compare(outside, petstore())
    loop = petstore()
    _schema(loop, "Error").clear()
    _schema(loop, "Error")["$ref"] = "#/components/schemas/Oops"
    loop["components"]["schemas"]["Oops"] = {"$ref": "#/components/schemas/Error"}
    with pytest.raises(DocError, match="Error → #/components/schemas/Oops → .* is a cycle"):
        openapi.compare(loop, loop)
    with pytest.raises(DocError, match="not an OpenAPI document"):
        openapi.compare({"swagger": "2.0"}, petstore())


def test_many_differences_are_counted_and_the_rest_is_in_the_evidence() -> None:
    live = petstore()
    for code in ("code", "message"):
        _schema(live, "Error")["properties"][code]["type"] = "boolean"
    _schema(live, "Error")["minProperties"] = 1
    comparison = openapi.compare(petstore(), live)  # 3 differences in Error, used 4 times
    [problem] = comparison.problems("openapi.yaml")
    assert problem.startswith("12 contract differences; first 10: GET /pets › response default")
    assert problem.endswith("; all 12 in the evidence")
    assert problem.count(" › properties.") == 7 and problem.count("minProperties") == 3
    evidence = json.loads(json.dumps(comparison.evidence()))
    assert len(evidence["differences"]) == 12
    assert evidence["differences"][0] == {
        "where": "GET /pets › response default application/json › properties.code.type",
        "repository": "integer",
        "live": "boolean",
    }
    odd = petstore()
    _schema(odd, "NewPet")["properties"]["a.b"] = {"type": "string"}
    [where, *_] = [d.where for d in openapi.compare(petstore(), odd).differences]
    assert where.endswith('items.allOf[0].properties["a.b"]')


# --- apispec: the same marshmallow models published as 3.0.3 and 3.1.0 -------------------------


def apispec_document(version: str, name_max: int = 200, id_field: type = fields.Integer) -> dict:
    class NewPet(Schema):
        name = fields.String(required=True, validate=validate.Length(min=1, max=name_max))
        tag = fields.String(allow_none=True)
        status = fields.String(validate=validate.OneOf(["available", "pending", "sold"]))

    class Pet(NewPet):
        id = id_field(required=True)
        friends = fields.List(fields.Nested(lambda: Pet()))

    spec = APISpec("Petstore", "1.0.0", version, plugins=[MarshmallowPlugin()])
    spec.components.schema("Pet", schema=Pet)
    spec.components.schema("NewPet", schema=NewPet)
    item = {"in": "path", "name": "id", "required": True, "schema": {"type": "integer"}}
    spec.path(
        path="/pets/{id}",
        parameters=[item],
        operations={
            "get": {"responses": {"200": {"content": {"application/json": {"schema": Pet}}}}},
            "put": {
                "requestBody": {"content": {"application/json": {"schema": NewPet}}},
                "responses": {"204": {"description": "updated"}},
            },
        },
    )
    return spec.to_dict()


def test_apispec_3_0_and_3_1_of_the_same_models_are_the_same_contract() -> None:
    v30, v31 = apispec_document("3.0.3"), apispec_document("3.1.0")
    assert _schema(v30, "Pet")["properties"]["tag"]["nullable"] is True  # two spellings meet
    assert _schema(v31, "Pet")["properties"]["tag"]["type"] == ["string", "null"]
    assert found(v30, v31) == [] and found(v31, v30) == []


@pytest.mark.parametrize("version", ["3.0.3", "3.1.0"])
def test_a_changed_model_is_found_in_the_published_document(version: str) -> None:
    docs = apispec_document(version)
    assert found(docs, apispec_document(version, name_max=100)) == [
        "GET /pets/{id} › response 200 application/json › properties.name.maxLength: "
        "repository 200, live 100",
        "PUT /pets/{id} › requestBody application/json › properties.name.maxLength: "
        "repository 200, live 100",
    ]
    assert found(docs, apispec_document(version, id_field=fields.String)) == [
        "GET /pets/{id} › response 200 application/json › properties.id.type: "
        'repository "integer", live "string"'
    ]


# --- any document equals itself; any single keyword change is found at its path ----------------

NAMES = st.text("abcdefgh_", min_size=1, max_size=5)
TYPES = ["string", "integer", "number", "boolean", "object", "array"]
COUNTS = st.integers(0, 1000)
LEAVES = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("string")},
        optional={
            "minLength": COUNTS,
            "maxLength": COUNTS,
            "pattern": st.sampled_from(["^[a-z]+$", "^\\d{4}$"]),
            "format": st.sampled_from(["date-time", "email", "uuid"]),
            "enum": st.lists(st.text(max_size=4), min_size=1, max_size=4, unique=True),
            "description": st.text(max_size=8),
            "readOnly": st.booleans(),
        },
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["integer", "number"])},
        optional={
            "minimum": COUNTS,
            "maximum": COUNTS,
            "exclusiveMaximum": COUNTS,
            "multipleOf": st.integers(1, 10),
            "default": COUNTS,
        },
    ),
    st.fixed_dictionaries({"type": st.just("boolean")}, optional={"writeOnly": st.booleans()}),
)


def _composites(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.fixed_dictionaries(
            {"type": st.just("object"), "properties": st.dictionaries(NAMES, children, max_size=4)},
            optional={
                "required": st.lists(NAMES, max_size=3, unique=True),
                "additionalProperties": st.booleans(),
                "title": st.text(max_size=8),
            },
        ),
        st.fixed_dictionaries(
            {"type": st.just("array"), "items": children},
            optional={"minItems": COUNTS, "maxItems": COUNTS, "uniqueItems": st.booleans()},
        ),
        st.tuples(
            st.sampled_from(["allOf", "oneOf", "anyOf"]), st.lists(children, min_size=1, max_size=3)
        ).map(lambda pair: {pair[0]: pair[1]}),
    )


SCHEMAS = st.recursive(LEAVES, _composites, max_leaves=10)
# where a schema sits in an operation: (method, place, the place's name in a difference)
PLACES = [
    ("post", "body", "requestBody application/json › "),
    ("get", "response", "response 200 application/json › "),
    ("get", "parameter", "parameter query q › schema."),
]


@st.composite
def documents(draw: st.DrawFn) -> tuple[dict, list[tuple[str, dict]]]:
    """A document, and for each schema in it: where a difference in it is named, the schema."""
    version = draw(st.sampled_from(["3.0.3", "3.1.0"]))
    doc: dict = {"openapi": version, "info": {"title": "t", "version": "1"}, "paths": {}}
    placed = []
    for k in range(draw(st.integers(1, 3))):
        schema = draw(SCHEMAS)
        method, place, named = draw(st.sampled_from(PLACES))
        if draw(st.booleans()):  # in components, by $ref
            doc.setdefault("components", {}).setdefault("schemas", {})[f"S{k}"] = schema
            written = {"$ref": f"#/components/schemas/S{k}"}
        else:
            written = schema
        media = {"content": {"application/json": {"schema": written}}}
        operation: dict = {"responses": {"204": {"description": "done"}}}
        if place == "body":
            operation["requestBody"] = media
        elif place == "response":
            operation["responses"] = {"200": {"description": "ok", **media}}
        else:
            operation["parameters"] = [{"name": "q", "in": "query", "schema": written}]
        doc["paths"][f"/r{k}"] = {method: operation}
        placed.append((f"{method.upper()} /r{k} › {named}", schema))
    # one copy, no object shared: a change happens in one place
    fresh = json.loads(json.dumps(doc))
    return fresh, _placed_in(fresh, placed)


def _placed_in(doc: dict, placed: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """The schemas of ``placed`` as they are in the fresh copy ``doc``."""
    found = []
    for k, (where, _) in enumerate(placed):
        components = doc.get("components", {}).get("schemas", {})
        operation = next(iter(doc["paths"][f"/r{k}"].values()))
        if f"S{k}" in components:
            found.append((where, components[f"S{k}"]))
        elif "requestBody" in operation:
            found.append((where, operation["requestBody"]["content"]["application/json"]["schema"]))
        elif "parameters" in operation:
            found.append((where, operation["parameters"][0]["schema"]))
        else:
            found.append(
                (where, operation["responses"]["200"]["content"]["application/json"]["schema"])
            )
    return found


def keywords(schema: dict, path: str = "") -> Iterator[tuple[dict, str, str]]:
    """Every keyword in a schema tree: (the schema holding it, the keyword, its dotted path)."""
    for key, value in schema.items():
        if key == "properties":
            for name, sub in value.items():
                yield from keywords(sub, f"{path}properties.{name}.")
        elif key == "items":
            yield from keywords(value, f"{path}items.")
        elif key in ("allOf", "oneOf", "anyOf"):
            for i, sub in enumerate(value):
                yield from keywords(sub, f"{path}{key}[{i}].")
        else:
            yield schema, key, f"{path}{key}"


def changed(key: str, value: Any) -> Any:
    """A different value for a keyword, as an edit would make it."""
    if key == "type":
        return next(t for t in TYPES if t != value)
    if key in ("enum", "required"):
        return [*value, next(f"z{i}" for i in range(9) if f"z{i}" not in value)]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    return value + "x"


@settings(max_examples=150, deadline=None)
@given(documents())
def test_any_document_equals_itself(generated: tuple[dict, list]) -> None:
    doc, _ = generated
    comparison = openapi.compare(doc, copy.deepcopy(doc))
    assert comparison.differences == comparison.notes == []
    assert openapi.compare(doc, doc).differences == []


@settings(max_examples=300, deadline=None)
@given(documents(), st.data())
def test_any_single_keyword_change_is_found_at_its_path(
    generated: tuple[dict, list], data: st.DataObject
) -> None:
    repository, placed = generated
    live = json.loads(json.dumps(repository))
    where, schema = data.draw(st.sampled_from(_placed_in(live, placed)))
    holder, key, path = data.draw(st.sampled_from(list(keywords(schema))))
    old = holder[key]
    holder[key] = changed(key, old)
    comparison = openapi.compare(repository, live)
    spotted = [(d.where, d.repository, d.live) for d in comparison.differences]
    noted = [(n.where, n.repository, n.live) for n in comparison.notes]
    expected = [(f"{where}{path}", old, holder[key])]
    if key in ("description", "title"):
        assert (spotted, noted) == ([], expected)
    else:
        assert (spotted, noted) == (expected, [])
