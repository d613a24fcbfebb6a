"""Importers against the real world: Swagger 2.0, multi-file specs, broken response schemas,
bounded work, output paths, Python listings, and one line (never a traceback) for bad bytes.

The real specs here are small Apache-2.0 files from the OpenAPI Initiative's examples
(tests/data/specs/oai, petstore 2.0 in one and in several files). Property-based tests for
every format are in tests/test_import_properties.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from imaginarium.errors import InputError
from imaginarium.schemas.importers import import_file
from imaginarium.schemas.importers.openapi import CUT_KEY, NODE_BUDGET, RETURNS_LIMIT
from imaginarium.schemas.toolspec import check_refs, read_tools

DATA = Path(__file__).parent / "data" / "specs"

SWAGGER2 = {
    "swagger": "2.0", "info": {"title": "Pets", "version": "1"},
    "host": "pets.example.com", "basePath": "/v1", "schemes": ["http", "https"],
    "consumes": ["application/json"], "produces": ["application/json"],
    "securityDefinitions": {"key": {"type": "apiKey", "in": "header", "name": "X-Key"}},
    "security": [{"key": []}],
    "definitions": {"Pet": {"type": "object", "required": ["name"],
                            "properties": {"name": {"type": "string"}, "tag": {"type": "string", "x-nullable": True}}}},
    "parameters": {"Limit": {"name": "limit", "in": "query", "type": "integer", "maximum": 100}},
    "paths": {
        "/pets": {
            "get": {"operationId": "listPets", "summary": "List pets.",
                    "parameters": [{"$ref": "#/parameters/Limit"},
                                   {"name": "X-Trace", "in": "header", "type": "string"}],
                    "responses": {"200": {"description": "ok", "schema": {"type": "array",
                                                                        "items": {"$ref": "#/definitions/Pet"}}}}},
            "post": {"operationId": "addPet", "summary": "Add a pet.",
                     "parameters": [{"name": "pet", "in": "body", "required": True,
                                     "schema": {"$ref": "#/definitions/Pet"}}],
                     "responses": {"201": {"description": "made"}}},
        },
        "/pets/{id}/photo": {
            "parameters": [{"name": "id", "in": "path", "required": True, "type": "string"}],
            "post": {"operationId": "uploadPhoto", "summary": "Upload a photo.", "consumes": ["multipart/form-data"],
                     "parameters": [{"name": "file", "in": "formData", "type": "file", "required": True},
                                    {"name": "caption", "in": "formData", "type": "string"}],
                     "responses": {"200": {"description": "ok"}}},
        },
    },
}

OPENAPI3 = {
    "openapi": "3.0.3", "info": {"title": "Pets", "version": "1"},
    "servers": [{"url": "https://pets.example.com/v1"}],
    "security": [{"key": []}],
    "components": {
        "securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "X-Key"}},
        "schemas": {"Pet": {"type": "object", "required": ["name"],
                            "properties": {"name": {"type": "string"}, "tag": {"type": "string", "nullable": True}}}},
        "parameters": {"Limit": {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 100}}},
    },
    "paths": {
        "/pets": {
            "get": {"operationId": "listPets", "summary": "List pets.",
                    "parameters": [{"$ref": "#/components/parameters/Limit"},
                                   {"name": "X-Trace", "in": "header", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {
                        "type": "array", "items": {"$ref": "#/components/schemas/Pet"}}}}}}},
            "post": {"operationId": "addPet", "summary": "Add a pet.",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/Pet"}}}},
                     "responses": {"201": {"description": "made"}}},
        },
        "/pets/{id}/photo": {
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "post": {"operationId": "uploadPhoto", "summary": "Upload a photo.",
                     "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                         "type": "object", "required": ["file"],
                         "properties": {"file": {"type": "string", "format": "binary"}, "caption": {"type": "string"}}}}}},
                     "responses": {"200": {"description": "ok"}}},
        },
    },
}


def write(path: Path, document) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document) if not isinstance(document, str) else document, encoding="utf-8")
    return path


def shape(tools):
    return [tool.model_dump(mode="json", exclude={"source"}) for tool in tools]


# -- Swagger 2.0 -----------------------------------------------------------------------------
def test_swagger2_gives_the_same_tools_as_the_equivalent_openapi3(tmp_path):
    two = import_file(write(tmp_path / "two.json", SWAGGER2))
    three = import_file(write(tmp_path / "three.json", OPENAPI3))
    assert shape(two) == shape(three)
    by_name = {tool.name: tool for tool in two}
    assert by_name["listPets"].http.server_url == "https://pets.example.com/v1"
    assert by_name["listPets"].http.auth == [{"type": "apiKey", "in": "header", "name": "X-Key"}]
    assert by_name["addPet"].parameters["required"] == ["name"]  # the body, flattened
    assert by_name["uploadPhoto"].http.content_type == "multipart/form-data"
    assert by_name["listPets"].returns["items"]["properties"]["tag"]["type"] == ["string", "null"]


@pytest.mark.parametrize("name", ["petstore.json", "petstore.yaml", "petstore-expanded.yaml", "uber.json"])
def test_real_swagger2_examples_import(name):
    tools = import_file(DATA / "oai" / "v2.0" / name)
    assert tools and all(tool.description or tool.parameters["properties"] for tool in tools)
    assert all(tool.http.server_url.startswith(("http", "/")) for tool in tools)


# -- multi-file specs ------------------------------------------------------------------------
def test_a_multi_file_spec_imports_like_its_bundled_form(tmp_path):
    separate = import_file(DATA / "oai" / "v2.0" / "petstore-separate" / "spec" / "swagger.yaml")
    bundled = import_file(DATA / "oai" / "v2.0" / "petstore-expanded.yaml")
    assert {t.name for t in separate} == {t.name for t in bundled}
    for tool in separate:
        assert tool.description and tool.parameters is not None
    find = {t.name: t for t in separate}["findPets"]
    assert set(find.parameters["properties"]) == {"tags", "limit"}


def test_operations_referenced_from_other_files_keep_their_inputs(tmp_path):
    root = write(tmp_path / "spec" / "openapi.yaml", json.dumps({
        "openapi": "3.0.0", "info": {"title": "t", "version": "1"},
        "paths": {"/things": {"$ref": "paths/things.yaml"},
                  "/other": {"get": {"$ref": "ops/other.json"}}}}))
    write(tmp_path / "spec" / "paths" / "things.yaml", json.dumps({
        "get": {"operationId": "listThings", "summary": "List things.",
                "parameters": [{"$ref": "../common/params.yaml#/Limit"}],
                "responses": {"200": {"description": "ok", "content": {"application/json": {
                    "schema": {"$ref": "../common/schemas.yaml#/Thing"}}}}}}}))
    write(tmp_path / "spec" / "ops" / "other.json", {"operationId": "other", "summary": "Other.", "responses": {}})
    write(tmp_path / "spec" / "common" / "params.yaml", json.dumps({
        "Limit": {"name": "limit", "in": "query", "schema": {"type": "integer"}}}))
    write(tmp_path / "spec" / "common" / "schemas.yaml", json.dumps({
        "Thing": {"type": "object", "properties": {"id": {"type": "string"}, "child": {"$ref": "#/Thing"}}}}))
    tools = {t.name: t for t in import_file(root)}
    assert tools["listThings"].parameters["properties"] == {"limit": {"type": "integer"}}
    assert tools["listThings"].returns["properties"]["child"]["properties"]["id"] == {"type": "string"}
    assert tools["other"].description == "Other."


def test_an_error_in_another_file_names_that_file(tmp_path):
    root = write(tmp_path / "openapi.json", {"openapi": "3.0.0", "paths": {"/a": {"$ref": "a.json"}}})
    write(tmp_path / "a.json", {"get": {"operationId": "a", "parameters": [{"$ref": "#/nope"}], "responses": {}}})
    with pytest.raises(InputError) as info:
        import_file(root)
    assert str(info.value).startswith(f"{tmp_path / 'a.json'}#/get/parameters/0/$ref")


def test_tools_with_neither_description_nor_parameters_are_an_error_unless_allowed(tmp_path, run):
    spec = write(tmp_path / "s.json", {"openapi": "3.0.0", "paths": {"/a": {"get": {"responses": {}}}}})
    code, _, err = run("tools", "import", spec, "-o", tmp_path / "t.jsonl")
    assert code == 2 and "has neither a description nor parameters" in err and "s.json#/paths/~1a/get" in err
    assert run("tools", "import", spec, "--allow-empty", "-o", tmp_path / "t.jsonl")[0] == 0


# -- response schemas ------------------------------------------------------------------------
def test_a_broken_response_schema_is_dropped_with_a_warning_and_the_tool_kept(tmp_path, run):
    spec = write(tmp_path / "s.json", {"openapi": "3.0.0", "paths": {"/a": {"get": {
        "operationId": "a", "summary": "A.", "parameters": [{"name": "q", "in": "query", "schema": {"type": "string"}}],
        "responses": {"200": {"description": "ok", "content": {"application/json": {
            "schema": {"type": "object", "properties": {"x": {"type": "strnig"}}}}}}}}}}})
    code, out, err = run("tools", "import", spec, "-o", tmp_path / "t.jsonl")
    assert code == 0, err
    assert "warning: " in err and "s.json#/paths/~1a/get/responses" in err and "response schema dropped" in err
    assert "Value error" not in err
    [tool] = read_tools(tmp_path / "t.jsonl")
    assert tool.returns is None and tool.parameters["properties"] == {"q": {"type": "string"}}
    assert "(1 warnings)" in out


def test_a_huge_response_schema_is_cut_to_its_top_levels(tmp_path):
    wide = {f"field_{i}": {"type": "object", "properties": {f"inner_{j}": {"type": "string", "description": "x" * 40}
                                                            for j in range(40)}} for i in range(60)}
    spec = write(tmp_path / "s.json", {"openapi": "3.0.0", "paths": {"/a": {"get": {
        "operationId": "a", "summary": "A.", "responses": {"200": {"description": "ok", "content": {
            "application/json": {"schema": {"type": "object", "properties": wide}}}}}}}}})
    [tool] = import_file(spec)
    assert len(json.dumps(tool.returns)) <= RETURNS_LIMIT
    assert set(tool.returns["properties"]) == set(wide)
    assert CUT_KEY in json.dumps(tool.returns)


def test_a_bad_parameter_schema_names_the_parameter_and_its_place_in_the_source(tmp_path):
    spec = write(tmp_path / "s.json", {"openapi": "3.0.0", "paths": {"/a": {"get": {
        "operationId": "a", "parameters": [{"name": "q", "in": "query", "schema": {"type": "strnig"}}],
        "responses": {}}}}})
    with pytest.raises(InputError) as info:
        import_file(spec)
    message = str(info.value)
    assert message.startswith(f"{spec}#/paths/~1a/get/parameters/0/schema: parameter 'q': invalid JSON Schema")
    assert "Value error" not in message and "parameters: parameters" not in message


# -- bounded work ----------------------------------------------------------------------------
def test_ref_fan_out_is_bounded(tmp_path):
    schemas = {f"S{i}": {"type": "object", "properties": {"a": {"$ref": f"#/components/schemas/S{i + 1}"},
                                                          "b": {"$ref": f"#/components/schemas/S{i + 1}"}}}
               for i in range(40)}
    schemas["S40"] = {"type": "string"}
    spec = write(tmp_path / "s.json", {"openapi": "3.0.0", "components": {"schemas": schemas}, "paths": {"/a": {
        "post": {"operationId": "a", "summary": "A.", "requestBody": {"content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/S0"}}}}, "responses": {}}}}})
    [tool] = import_file(spec)  # 2^40 nodes if inlined without a limit (speed: benchmarks/import_benchmark.py)
    text = json.dumps(tool.parameters)
    assert text.count('"type"') <= NODE_BUDGET + 10 and len(text) < 100_000
    assert set(tool.parameters["$defs"]) >= {"S30", "S39"}  # met again: kept once, referred to
    assert check_refs(tool.parameters) is None


def test_a_node_budget_cuts_what_sharing_cannot(tmp_path):
    schemas = {f"S{i}": {"type": "object", "properties": {f"p{j}": {"$ref": f"#/components/schemas/T{i}_{j}"}
                                                          for j in range(100)}} for i in range(100)}
    schemas.update({f"T{i}_{j}": {"type": "integer"} for i in range(100) for j in range(100)})  # 10,000 distinct
    schemas["Root"] = {"type": "object", "properties": {f"s{i}": {"$ref": f"#/components/schemas/S{i}"} for i in range(100)}}
    spec = write(tmp_path / "s.json", {"openapi": "3.0.0", "components": {"schemas": schemas}, "paths": {"/a": {
        "post": {"operationId": "a", "summary": "A.", "requestBody": {"content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Root"}}}}, "responses": {}}}}})
    [tool] = import_file(spec)
    text = json.dumps(tool.parameters)
    assert CUT_KEY in text and text.count('"integer"') < NODE_BUDGET


def test_a_long_ref_chain_and_deep_nesting_are_one_line(tmp_path, run):
    chain = {f"A{i}": {"$ref": f"#/components/schemas/A{i + 1}"} for i in range(2000)}
    chain["A2000"] = {"type": "string"}
    spec = write(tmp_path / "chain.json", {"openapi": "3.0.0", "components": {"schemas": chain}, "paths": {"/a": {"get": {
        "operationId": "a", "parameters": [{"name": "q", "in": "query", "schema": {"$ref": "#/components/schemas/A0"}}],
        "responses": {}}}}})
    deep = write(tmp_path / "deep.json", "[" * 300 + "]" * 300)
    for path, expected in ((spec, "$refs nested more than"), (deep, "nested more than")):
        code, _, err = run("tools", "import", path, "-o", tmp_path / "t.jsonl")
        assert code == 2 and expected in err and "Traceback" not in err and len(err.splitlines()) == 1, err


# -- malformed bytes and values --------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ('{"openapi": "3.0.0", "paths": {"/a": {"get": {"operationId": "a", "parameters": [{"name": "q", "in": "query", '
     '"schema": {"type": "integer", "maximum": Infinity}}], "responses": {}}}}}', "/maximum: inf is not a JSON number"),
    ('{"openapi": "3.0.0", "x": 1e999, "paths": {}}', "#/x: inf is not a JSON number"),
    ('{"openapi": "3.0.0", "x": NaN, "paths": {}}', "#/x: nan is not a JSON number"),
    ("openapi: 3.0.0\nx: .inf\npaths: {}\n", "#/x: inf is not a JSON number"),
    ('{"openapi": "3.0.0", "paths": {"/a\\ud800": {}}}', "lone surrogate"),
    ("a: &a [*a]\n", "nested more than"),
    ("openapi: 3.0.0\npaths:\n  2024-01-01: {}\n", "no tools to write"),  # a date key is text, as in JSON
    ('{"openapi": "3.0.0", "servers": "nope", "paths": {"/a": {"get": {"operationId": "a", "summary": "A", '
     '"responses": {}}}}}', None),
    ('{"openapi": "3.0.0", "paths": {"/a": {"get": {"operationId": "a", "requestBody": {"content": []}, '
     '"responses": {}}}}}', "content: must be an object"),
    ('{"openapi": "3.0.0", "paths": {"/a": {"get": {"operationId": "a", "tags": 5, "summary": "A", '
     '"responses": {}}}}}', None),
    ('{"python_tools": [""]}', "expected 'module:function' or 'module'"),
    ('{"python_tools": [":f"]}', "expected 'module:function' or 'module'"),
    ('{"python_tools": ["this"]}', "--allow-python-import"),
    ('{"tools": [{"name": "x", "inputSchema": null}]}', "inputSchema must be a JSON Schema object"),
])
def test_malformed_inputs_are_one_line(tmp_path, run, text, expected):
    source = write(tmp_path / "in.txt", text)
    code, out, err = run("tools", "import", source, "-o", tmp_path / "t.jsonl")
    assert "Traceback" not in err
    if expected is None:  # tolerated: the wrong-typed part is ignored
        assert code == 0, err
    else:
        assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "t.jsonl").exists()
    assert "Zen of Python" not in out


def test_a_forced_format_that_does_not_fit_is_one_line(tmp_path, run):
    spec = write(tmp_path / "s.json", OPENAPI3)
    code, _, err = run("tools", "import", spec, "--format", "toolbench", "-o", tmp_path / "t.jsonl")
    assert code == 2 and "not a toolbench document" in err and "it looks like openapi" in err


def test_python_listings_import_only_with_permission(tmp_path, run, monkeypatch):
    (tmp_path / "mytools.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(tmp_path / 'imported')!r}).touch()  # proves the module's code ran\n"
        "def add(a: int, b: int) -> int:\n    \"\"\"Add two numbers.\"\"\"\n    return a + b\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    listing = write(tmp_path / "py.json", {"python_tools": ["mytools:add"]})
    code, _, err = run("tools", "import", listing, "-o", tmp_path / "t.jsonl")
    assert code == 2 and "runs the code of module(s) mytools" in err
    assert not (tmp_path / "imported").exists() and not (tmp_path / "t.jsonl").exists()
    code, _, err = run("tools", "import", listing, "--allow-python-import", "-o", tmp_path / "t.jsonl")
    assert code == 0, err
    assert (tmp_path / "imported").exists() and [t.name for t in read_tools(tmp_path / "t.jsonl")] == ["add"]


def test_dangling_and_remote_refs_in_a_tools_file_are_refused_by_validate(tmp_path, run):
    tool = {"name": "t", "source_name": "t", "source": {"format": "openai"},
            "parameters": {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}}
    path = write(tmp_path / "tools.jsonl", json.dumps(tool) + "\n")
    code, _, err = run("tools", "validate", path)
    assert code == 2 and "does not resolve" in err
    tool["parameters"]["properties"]["a"] = {"$ref": "https://example.com/s.json"}
    write(path, json.dumps(tool) + "\n")
    code, _, err = run("tools", "validate", path)
    assert code == 2 and "points outside the schema" in err


def test_validate_on_a_non_utf8_file_is_one_line(tmp_path, run):
    path = tmp_path / "tools.jsonl"
    path.write_bytes(b'{"name": "\xff"}\n')
    code, _, err = run("tools", "validate", path)
    assert code == 2 and "not UTF-8" in err and "tools.jsonl:1" in err


# -- output paths ----------------------------------------------------------------------------
def test_output_paths(tmp_path, run):
    spec = write(tmp_path / "s.json", OPENAPI3)
    code, _, err = run("tools", "import", spec, "-o", spec)
    assert code == 2 and "the output is one of the inputs" in err
    assert json.loads(spec.read_text()) == OPENAPI3
    blocker = write(tmp_path / "file", "x")
    code, _, err = run("tools", "import", spec, "-o", blocker / "t.jsonl")
    assert code == 2 and "cannot create its folder" in err and "Traceback" not in err
    out = tmp_path / "new" / "dir" / "t.jsonl"
    old = os.umask(0o022)
    try:
        assert run("tools", "import", spec, "-o", out)[0] == 0
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644


def test_skip_invalid_lists_every_reason_when_everything_fails(tmp_path, run):
    spec = write(tmp_path / "s.json", {"openapi": "3.0.0", "paths": {
        "/a": {"get": {"operationId": "a", "parameters": [{"$ref": "#/nope1"}], "responses": {}}},
        "/b": {"get": {"operationId": "b", "parameters": [{"$ref": "#/nope2"}], "responses": {}}}}})
    code, _, err = run("tools", "import", spec, "--skip-invalid", "-o", tmp_path / "t.jsonl")
    assert code == 2 and "#/nope1" in err and "#/nope2" in err and "no tools to write" in err
