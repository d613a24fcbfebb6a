"""OpenAPI 3.0/3.1 importer: real public specs (tests/data) and small hand-made ones for edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from imaginarium.errors import InputError
from imaginarium.schemas.importers import openapi

DATA = Path(__file__).parent / "data"
PETSTORE = DATA / "petstore3.openapi.yaml"
TICTACTOE = DATA / "tictactoe.openapi31.yaml"


def load_file(path: Path):
    return openapi.load(yaml.safe_load(path.read_text()), str(path))


def load_doc(doc: dict, file: str = "spec.yaml"):
    return openapi.load({"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, **doc}, file)


def by_name(tools):
    return {tool.name: tool for tool in tools}


def assert_valid_2020_12(tool):
    jsonschema.Draft202012Validator.check_schema(tool.parameters)
    assert "$ref" not in json.dumps(tool.parameters)
    if tool.returns is not None:
        jsonschema.Draft202012Validator.check_schema(tool.returns)


@pytest.fixture(scope="module")
def petstore():
    return by_name(load_file(PETSTORE))


def test_detect():
    assert openapi.detect({"openapi": "3.1.0", "info": {}})
    assert openapi.detect({"swagger": "2.0"})  # claimed so that load can say why it is refused
    assert not openapi.detect({"type": "function", "function": {}})
    assert not openapi.detect([{"openapi": "3.0.0"}])


def test_petstore_imports_every_operation(petstore):
    assert set(petstore) == {
        "updatePet", "addPet", "findPetsByStatus", "findPetsByTags", "getPetById", "updatePetWithForm",
        "deletePet", "uploadFile", "getInventory", "placeOrder", "getOrderById", "deleteOrder",
        "createUser", "createUsersWithListInput", "loginUser", "logoutUser", "getUserByName",
        "updateUser", "deleteUser",
    }
    for tool in petstore.values():
        assert_valid_2020_12(tool)
        assert tool.http.server_url == "https://petstore3.swagger.io/api/v3"
        assert tool.source.format == "openapi" and tool.source.file == str(PETSTORE)
        assert set(tool.http.locations) == set(tool.parameters["properties"])


def test_petstore_body_object_is_flattened_from_refs(petstore):
    tool = petstore["updatePet"]
    props = tool.parameters["properties"]
    assert set(props) == {"id", "name", "category", "photoUrls", "tags", "status"}
    assert tool.parameters["required"] == ["name", "photoUrls"]  # body required: its required props are
    assert props["category"]["properties"]["name"]["type"] == "string"  # $ref to Category resolved
    assert props["tags"]["items"]["properties"]["id"]["format"] == "int64"  # $ref inside a ref'd schema
    assert props["id"]["examples"] == [10]  # 3.0 `example` -> `examples`
    assert "xml" not in json.dumps(props)  # OpenAPI-only keyword dropped
    assert tool.http.method == "put" and tool.http.path == "/pet"
    assert tool.http.content_type == "application/json"
    assert tool.http.locations["photoUrls"] == ("body", "photoUrls")
    assert tool.category == "pet"
    assert tool.description == "Update an existing pet.\n\nUpdate an existing pet by Id."
    assert tool.returns["required"] == ["name", "photoUrls"]


def test_petstore_path_query_header_and_raw_body(petstore):
    get = petstore["getPetById"]
    assert get.parameters["properties"]["petId"]["type"] == "integer"
    assert get.parameters["required"] == ["petId"]
    assert get.http.locations == {"petId": ("path", "petId")}
    assert get.source.pointer == "/paths/~1pet~1{petId}/get"

    upload = petstore["uploadFile"]
    assert upload.http.locations == {
        "petId": ("path", "petId"), "additionalMetadata": ("query", "additionalMetadata"), "body": ("body", ""),
    }
    assert upload.parameters["properties"]["body"] == {"type": "string", "format": "binary"}
    assert upload.http.content_type == "application/octet-stream"
    assert upload.parameters["required"] == ["petId"]  # the body is optional there

    assert petstore["deletePet"].http.locations["api_key"] == ("header", "api_key")
    users = petstore["createUsersWithListInput"]
    assert users.parameters["properties"]["body"]["type"] == "array"  # a non-object body is one argument
    assert petstore["findPetsByStatus"].returns["items"]["properties"]["status"]["enum"][0] == "available"
    assert petstore["getInventory"].returns == {"type": "object", "additionalProperties": {"type": "integer", "format": "int32"}}
    assert petstore["logoutUser"].returns is None


def test_petstore_real_name_collision_is_prefixed(petstore):
    tool = petstore["updateUser"]  # path param `username` and body property `username`
    assert tool.http.locations["username"] == ("path", "username")
    assert tool.http.locations["body_username"] == ("body", "username")
    assert tool.parameters["required"] == ["username"]


def test_openapi_31_spec():
    tools = by_name(load_file(TICTACTOE))
    assert set(tools) == {"get-board", "get-square", "put-square"}  # webhooks and callbacks are not tools
    for tool in tools.values():
        assert_valid_2020_12(tool)
        assert tool.category == "Gameplay"
        assert tool.http.server_url == ""
    square = tools["put-square"]
    props = square.parameters["properties"]
    # path-level parameters given by $ref, each schema itself a $ref
    assert props["row"]["minimum"] == 1 and props["row"]["maximum"] == 3
    assert square.http.locations == {
        "row": ("path", "row"), "column": ("path", "column"),
        "progressUrl": ("header", "progressUrl"), "body": ("body", ""),
    }
    assert props["body"]["enum"] == [".", "X", "O"]
    assert square.parameters["required"] == ["row", "column", "body"]
    assert tools["get-board"].returns["properties"]["board"]["items"]["minItems"] == 3


def test_openapi_30_dialect_is_converted():
    doc = {
        "paths": {"/things": {"post": {
            "operationId": "makeThing",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
            "responses": {"201": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}}},
        }}},
        "components": {"schemas": {"Thing": {
            "type": "object",
            "required": ["id", "label"],
            "discriminator": {"propertyName": "kind"},
            "properties": {
                "id": {"type": "integer", "readOnly": True},
                "label": {"type": "string", "nullable": True, "example": "a"},
                "size": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 9, "exclusiveMaximum": False},
                "kind": {"type": "string", "enum": ["a", "b"], "nullable": True},
                "any": {"nullable": True, "description": "anything"},
                "secret": {"type": "string", "writeOnly": True},
                "parent": {"$ref": "#/components/schemas/Ref", "nullable": True, "description": "the parent"},
            },
        }, "Ref": {"type": "object", "properties": {"id": {"type": "integer"}}}}},
    }
    tool = load_doc(doc)[0]
    props = tool.parameters["properties"]
    assert "id" not in props and tool.parameters["required"] == ["label"]  # readOnly is not an input
    assert props["label"] == {"type": ["string", "null"], "examples": ["a"]}
    assert props["size"] == {"type": "number", "exclusiveMinimum": 0, "maximum": 9}
    assert props["kind"] == {"type": ["string", "null"], "enum": ["a", "b", None]}
    assert props["any"] == {"anyOf": [{"description": "anything"}, {"type": "null"}]}
    assert props["parent"] == {"type": ["object", "null"], "properties": {"id": {"type": "integer"}}, "description": "the parent"}
    validator = jsonschema.Draft202012Validator(tool.parameters)
    assert validator.is_valid({"label": None, "size": 0.5, "kind": None, "any": None, "parent": None})
    assert not validator.is_valid({"label": "x", "size": 0})  # exclusive bound
    assert "secret" not in tool.returns["properties"] and "id" in tool.returns["properties"]
    assert "discriminator" not in json.dumps(tool.model_dump())


def test_collisions_between_all_locations_are_resolved_deterministically():
    doc = {"paths": {"/items/{id}": {
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}, "description": "path level"}],
        "patch": {
            "parameters": [
                {"name": "id", "in": "query", "schema": {"type": "string"}},
                {"name": "id", "in": "header", "schema": {"type": "string"}},
                {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}, "description": "operation level"},
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["id", "query_id"],
                "properties": {"id": {"type": "string"}, "query_id": {"type": "boolean"}, "note": {"type": "string"}},
            }}}},
            "responses": {"204": {"description": "done"}},
        },
    }}}
    tool = load_doc(doc)[0]
    assert tool.name == "patch_items_id" and tool.source_name == "PATCH /items/{id}"
    assert tool.http.locations == {
        "id": ("path", "id"),
        "query_id": ("query", "id"),
        "header_id": ("header", "id"),
        "body_id": ("body", "id"),
        "body_query_id": ("body", "query_id"),
        "note": ("body", "note"),
    }
    assert tool.parameters["properties"]["id"]["description"] == "operation level"  # operation overrides path level
    assert tool.parameters["required"] == ["id", "body_id", "body_query_id"]
    assert load_doc(doc)[0] == tool  # deterministic


def test_dangling_ref_names_file_and_pointer():
    doc = {"paths": {"/pets": {"post": {
        "requestBody": {"content": {"application/json": {"schema": {
            "type": "object", "properties": {"owner": {"$ref": "#/components/schemas/Owner"}},
        }}}},
        "responses": {},
    }}}}
    with pytest.raises(InputError) as info:
        load_doc(doc, file="specs/pets.yaml")
    message = str(info.value)
    assert message.startswith("specs/pets.yaml#/paths/~1pets/post/requestBody/content/application~1json/schema/properties/owner/$ref:")
    assert "#/components/schemas/Owner" in message and "does not resolve" in message


def test_a_missing_referenced_file_and_a_remote_ref_are_refused_clearly():
    doc = {"paths": {"/a": {"get": {"parameters": [{"$ref": "common.yaml#/Limit"}], "responses": {}}}}}
    with pytest.raises(InputError, match=r"^spec.yaml#/paths/~1a/get/parameters/0/\$ref: \$ref to a missing file"):
        load_doc(doc)
    doc = {"paths": {"/a": {"get": {"parameters": [{"$ref": "https://example.com/c.yaml#/L"}], "responses": {}}}}}
    with pytest.raises(InputError, match=r"remote \$ref 'https://example.com/c.yaml#/L' is refused"):
        load_doc(doc)


def test_skipped_operations_are_reported_not_raised():
    doc = {"paths": {
        "/a": {"get": {"operationId": "a", "parameters": [{"$ref": "#/nope"}], "responses": {}}},
        "/b": {"get": {"operationId": "b", "responses": {}}},
    }}
    errors = []
    tools = openapi.load({"openapi": "3.1.0", **doc}, "s.json", errors)
    assert [tool.name for tool in tools] == ["b"]
    assert errors == [("s.json#/paths/~1a/get/parameters/0/$ref", "$ref '#/nope' does not resolve")]


def test_recursive_schema_is_cut_with_a_note():
    doc = {
        "paths": {"/tree": {"put": {
            "operationId": "putTree",
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}},
            "responses": {},
        }}},
        "components": {"schemas": {"Node": {
            "type": "object",
            "properties": {"value": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}},
        }}},
    }
    tool = load_doc(doc)[0]
    assert_valid_2020_12(tool)
    level = tool.parameters["properties"]["children"]["items"]  # Node, 2nd expansion
    level = level["properties"]["children"]["items"]  # 3rd expansion
    assert level["properties"]["value"] == {"type": "string"}
    cut = level["properties"]["children"]["items"]
    assert cut["x-imaginarium-cut"] == "#/components/schemas/Node"
    assert "cut at depth 3" in cut["description"]
    assert jsonschema.Draft202012Validator(tool.parameters).is_valid({"children": [{"children": [{"children": [{"x": 1}]}]}]})


def test_servers_variables_and_overrides():
    doc = {
        "servers": [{"url": "https://{region}.example.com/{base}", "variables": {
            "region": {"default": "eu", "enum": ["eu", "us"]}, "base": {"default": "v2"}}}],
        "paths": {
            "/a": {"get": {"operationId": "a", "responses": {}}},
            "/b": {"servers": [{"url": "https://b.example.com"}], "get": {"operationId": "b", "responses": {}},
                   "post": {"operationId": "c", "servers": [{"url": "/relative"}], "responses": {}}},
        },
    }
    tools = by_name(load_doc(doc))
    assert tools["a"].http.server_url == "https://eu.example.com/v2"
    assert tools["b"].http.server_url == "https://b.example.com"
    assert tools["c"].http.server_url == "/relative"


def test_form_body_and_ignored_headers():
    doc = {"paths": {"/login": {"post": {
        "operationId": "login",
        "parameters": [{"name": "Accept", "in": "header", "schema": {"type": "string"}},
                       {"name": "session", "in": "cookie", "schema": {"type": "string"}}],
        "requestBody": {"content": {
            "text/plain": {"schema": {"type": "string"}},
            "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {"user": {"type": "string"}}}},
        }},
        "responses": {},
    }}}}
    tool = load_doc(doc)[0]
    assert tool.http.locations == {"session": ("cookie", "session"), "user": ("body", "user")}
    assert tool.http.content_type == "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"swagger": "1.2", "paths": {}}, "Swagger version '1.2' is not supported"),
        ({"openapi": "2.5.0", "paths": {}}, "OpenAPI version '2.5.0' is not supported"),
        ({"openapi": "3.0.0", "paths": {"/x": {"get": {"operationId": "x", "responses": {}}},
                                         "/y": {"get": {"operationId": "x", "responses": {}}}}},
         "duplicate operationId 'x'"),
    ],
)
def test_unsupported_documents(document, message):
    with pytest.raises(InputError, match=message) as info:
        openapi.load(document, "api.json")
    assert str(info.value).startswith("api.json")


def test_unsafe_operation_id_and_generated_name_clash():
    doc = {"paths": {
        "/a-b": {"get": {"responses": {}}},
        "/a_b": {"get": {"responses": {}}},
        "/c": {"get": {"operationId": "list things!", "responses": {}}},
    }}
    tools = load_doc(doc)
    names = [tool.name for tool in tools]
    assert names[0] == "get_a_b" and names[1].startswith("GET_a_b_") and len(set(names)) == 3
    assert tools[2].source_name == "list things!" and tools[2].name.startswith("list_things_")
