"""The BFCL importer: every type name it maps, nesting, what it keeps and drops, JSON Lines files
of questions and of multi-turn docs, duplicates, a refused type through the CLI; real BFCL
lines from tests/data/bfcl, and all of BFCL's data when the bfcl-eval package is installed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from imaginarium.errors import InputError
from imaginarium.schemas.importers import bfcl, detect_format, import_file, import_files, read_document
from imaginarium.schemas.toolspec import read_tools, safe_name

# Real lines of BFCL (Berkeley Function Calling Leaderboard, bfcl-eval 2026.3.23, Apache-2.0):
# questions.jsonl is line 92 of BFCL_v4_simple_java.json and line 2 of BFCL_v4_simple_javascript.json;
# memory_kv_doc.json is line 3 of multi_turn_func_doc/memory_kv.json. Copied unchanged.
DATA = Path(__file__).parent / "data" / "bfcl"

# BFCL type name -> the JSON Schema it becomes ({} for "no type constraint").
TYPE_MAPPING = {
    "dict": {"type": "object"}, "object": {"type": "object"}, "HashMap": {"type": "object"}, "Hashtable": {"type": "object"},
    "float": {"type": "number"}, "double": {"type": "number"}, "number": {"type": "number"},
    "integer": {"type": "integer"}, "int": {"type": "integer"}, "long": {"type": "integer"}, "short": {"type": "integer"},
    "byte": {"type": "integer"}, "Bigint": {"type": "integer"},
    "string": {"type": "string"}, "String": {"type": "string"}, "char": {"type": "string"},
    "boolean": {"type": "boolean"}, "bool": {"type": "boolean"}, "Boolean": {"type": "boolean"},
    "array": {"type": "array"}, "list": {"type": "array"}, "tuple": {"type": "array"}, "Array": {"type": "array"},
    "ArrayList": {"type": "array"}, "Queue": {"type": "array"}, "Stack": {"type": "array"},
    "Set": {"type": "array", "uniqueItems": True},
    "null": {"type": "null"},
    "any": {}, "Any": {}, "": {},
}


def _doc(properties: dict, name: str = "f", **extra) -> dict:
    return {"name": name, "description": "Does f.", "parameters": {"type": "dict", "properties": properties, **extra}}


def _write(path: Path, document) -> Path:
    path.write_text(json.dumps(document))
    return path


def test_every_type_name_maps(tmp_path):
    path = _write(tmp_path / "f.json", _doc({f"p_{kind}": {"type": kind} for kind in TYPE_MAPPING}))
    [tool] = import_file(path)
    assert tool.source.format == "bfcl"
    assert tool.parameters == {"type": "object", "properties": {f"p_{kind}": schema for kind, schema in TYPE_MAPPING.items()}}


def test_nested_objects_arrays_and_type_lists(tmp_path):
    properties = {
        "route": {"type": "tuple", "description": "Stops.", "items": {
            "type": "dict", "properties": {"lat": {"type": "float"}, "tags": {"type": "ArrayList", "items": {"type": "String"}}},
            "required": ["lat"]}},
        "headers": {"type": "HashMap", "additionalProperties": {"type": "String"}},
        "pair": {"type": "array", "items": [{"type": "float"}, {"type": "string"}], "additionalItems": {"type": "long"}},
        "maybe": {"type": ["String", "null"], "anyOf": [{"type": "int"}, {"type": "double"}]},
        "loose": {"type": ["float", "any"]},
    }
    path = _write(tmp_path / "f.json", [_doc(properties)])
    [tool] = import_file(path)
    assert tool.parameters["properties"] == {
        "route": {"type": "array", "description": "Stops.", "items": {
            "type": "object", "properties": {"lat": {"type": "number"}, "tags": {"type": "array", "items": {"type": "string"}}},
            "required": ["lat"]}},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "pair": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "string"}], "items": {"type": "integer"}},
        "maybe": {"type": ["string", "null"], "anyOf": [{"type": "integer"}, {"type": "number"}]},
        "loose": {},
    }


def test_descriptions_defaults_enums_required_kept_optional_dropped(tmp_path):
    properties = {
        "city": {"type": "string", "description": "City name.", "enum": ["Paris", "Rome"]},
        "days": {"type": "integer", "description": "How many.", "default": 3, "optional": True},
        "unit": {"type": "string", "default": "None", "optional": "True"},  # BFCL's "None" default stays as given
        "optional": {"type": "boolean"},  # a parameter named `optional` is a parameter, not the marker
    }
    document = _doc(properties, name="weather.forecast", required=["city"], optional=["days"])
    [tool] = import_file(_write(tmp_path / "f.json", document))
    assert tool.source_name == "weather.forecast" and tool.name == safe_name("weather.forecast") != "weather.forecast"
    assert tool.description == "Does f." and tool.source.pointer == ""
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name.", "enum": ["Paris", "Rome"]},
            "days": {"type": "integer", "description": "How many.", "default": 3},
            "unit": {"type": "string", "default": "None"},
            "optional": {"type": "boolean"},
        },
        "required": ["city"],
    }
    assert document["parameters"]["properties"]["days"]["optional"] is True  # the source is not changed


def test_no_parameters_and_untyped_top_level(tmp_path):
    path = _write(tmp_path / "f.json", [_doc({"x": {"type": "float"}}, name="a"), {"name": "b", "parameters": {"type": "dict"}},
                                        {"name": "c", "parameters": {"properties": {"y": {"type": "any"}}}}])
    _, b, c = import_file(path)
    assert b.parameters == {"type": "object"} and b.description == ""
    assert c.parameters == {"type": "object", "properties": {"y": {}}}


def test_unknown_type_exits_2_with_one_line(run, tmp_path):
    path = _write(tmp_path / "f.json", [_doc({"when": {"type": "dict", "properties": {"at": {"type": "LocalDateTime"}}}})])
    out = tmp_path / "tools.jsonl"
    code, _, stderr = run("tools", "import", path, "-o", out)
    assert code == 2 and stderr.count("\n") == 1
    assert stderr.startswith(f"error: {path}#/0/parameters/properties/when/properties/at/type: unknown type 'LocalDateTime'")
    assert not out.exists()
    bad_kind = _write(tmp_path / "g.json", _doc({"x": {"type": 7}}))
    with pytest.raises(InputError, match=r"#/parameters/properties/x/type: type must be a type name"):
        import_file(bad_kind, "bfcl")


def test_json_lines_questions_file(run, tmp_path):
    lines = [
        {"id": "q0", "question": [[{"role": "user", "content": "Factorial of 5?"}]],
         "function": [_doc({"n": {"type": "integer"}}, name="math.factorial")]},
        {"id": "q1", "question": [[{"role": "user", "content": "GCD?"}]],
         "function": [_doc({"a": {"type": "integer"}}, name="math.gcd"), _doc({"x": {"type": "float"}}, name="math.sqrt")]},
    ]
    path = tmp_path / "BFCL_v4_mini.json"
    path.write_text(json.dumps(lines[0]) + "\n\n" + json.dumps(lines[1]) + "\n")  # a blank line is skipped
    assert read_document(path) == lines
    assert detect_format(lines, str(path)) == "bfcl"
    tools = import_file(path)
    assert [(tool.source_name, tool.source.pointer) for tool in tools] == [
        ("math.factorial", "/0/function/0"), ("math.gcd", "/1/function/0"), ("math.sqrt", "/1/function/1")]
    out = tmp_path / "tools.jsonl"
    code, stdout, _ = run("tools", "import", path, "-o", out)
    assert code == 0 and "wrote 3 tools" in stdout
    assert [tool.parameters["properties"] for tool in read_tools(out)] == [
        {"n": {"type": "integer"}}, {"a": {"type": "integer"}}, {"x": {"type": "number"}}]


def test_json_lines_errors_name_line_and_column(tmp_path):
    path = tmp_path / "q.json"
    path.write_text('{"name": "a", "parameters": {"type": "dict"}}\n{"name": "b", oops}\n')
    with pytest.raises(InputError, match=rf"^{path}:2:15: invalid JSON Lines: Expecting property name"):
        read_document(path)
    path.write_text('{\n  "name": "a"\n}\n}\n')  # broken JSON, not JSON Lines: the error where it is
    with pytest.raises(InputError, match=rf"^{path}:4:1: invalid JSON: Extra data"):
        read_document(path)


def test_multi_turn_doc_file_with_response(tmp_path):
    docs = [
        {"name": "add", "description": "Add two numbers.", "parameters": {"type": "dict", "properties": {
            "a": {"type": "float"}, "b": {"type": "float"}}, "required": ["a", "b"]},
         "response": {"type": "dict", "properties": {"result": {"type": "float"}}}},
        {"name": "reset", "description": "Start over.", "parameters": {"type": "dict", "properties": {}, "required": []}},
    ]
    path = tmp_path / "math_api.json"
    path.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    add, reset = import_file(path)
    assert add.parameters == {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}
    assert add.returns == {"type": "object", "properties": {"result": {"type": "number"}}}
    assert reset.returns is None and reset.source.pointer == "/1"


def test_identical_duplicates_kept_once_different_ones_renamed(tmp_path):
    same = _doc({"n": {"type": "integer"}}, name="math.factorial")
    also_same = _doc({"n": {"type": "integer"}}, name="math.factorial")
    other = _doc({"n": {"type": "float"}}, name="math.factorial")
    questions = [{"id": f"q{i}", "question": [], "function": [doc, _doc({}, name="noop")]} for i, doc in enumerate([same, also_same])]
    path = tmp_path / "q.json"
    path.write_text("".join(json.dumps(q) + "\n" for q in questions))
    tools = import_file(path)
    assert [(tool.source_name, tool.source.pointer) for tool in tools] == [("math.factorial", "/0/function/0"), ("noop", "/0/function/1")]

    questions += [{"id": "q2", "question": [], "function": [other]}, {"id": "q3", "question": [], "function": [other]}]
    path.write_text("".join(json.dumps(q) + "\n" for q in questions))
    tools, skipped = import_files([path])
    assert not skipped
    assert [(tool.source_name, tool.source.pointer) for tool in tools] == [
        ("math.factorial", "/0/function/0"), ("noop", "/0/function/1"), ("math.factorial", "/2/function/0")]
    renamed = tools[2]
    assert renamed.name.startswith(safe_name("math.factorial") + "_") and len(renamed.name) == len(tools[0].name) + 9
    assert renamed.parameters["properties"]["n"] == {"type": "number"}


def test_plain_openai_functions_still_detect_as_openai(tmp_path):
    functions = [{"name": "lookup", "description": "Look up.", "parameters": {"type": "object", "properties": {
        "float": {"type": "number", "description": "a parameter named like a BFCL type"}, "dict": {"type": "object"}}}}]
    assert detect_format(functions, "x") == "openai"
    assert detect_format([{"type": "function", "function": functions[0]}], "x") == "openai"
    assert not bfcl.detect({"tools": functions})


def test_real_bfcl_lines():
    java, javascript = import_file(DATA / "questions.jsonl")
    assert java.source_name == "invokemethod007.runIt" and java.source.pointer == "/0/function/0"
    assert java.parameters == {"type": "object", "properties": {
        "args": {"type": "array", "description": "An array of command-line arguments to process.", "items": {"type": "string"}},
        "out": {"description": "The PrintStream to which the output will be logged."}}, "required": ["args", "out"]}
    assert javascript.parameters["properties"]["value"] == {
        "type": "boolean", "default": True,
        "description": "The value of the attribute to match. Optional parameter with a default value of true."}
    assert javascript.parameters["properties"]["listElement"] == {
        "description": "The list element from which to extract active data entries."}
    [search] = import_file(DATA / "memory_kv_doc.json")
    assert search.parameters["properties"]["k"] == {"type": "integer", "description": "The number of results to return. ", "default": 5}
    assert search.returns["properties"]["ranked_results"]["items"] == {
        "type": "array", "prefixItems": [{"type": "number"}, {"type": "string"}]}


def _bfcl_data() -> Path | None:
    spec = importlib.util.find_spec("bfcl_eval")
    return Path(spec.origin).parent / "data" if spec and spec.origin else None


@pytest.mark.skipif(_bfcl_data() is None, reason="bfcl-eval is not installed")
def test_all_of_bfcl_imports():
    """Every function doc of every BFCL file converts, and every distinct doc is kept (a name
    BFCL reuses for another doc gets a suffix)."""
    files = docs = 0
    for path in sorted(_bfcl_data().rglob("*.json")):
        document = read_document(path)
        if not bfcl.detect(document):  # answers, multi-turn questions (no function docs), ID lists
            continue
        functions = [function for _, function in bfcl._functions(bfcl._items(document))]
        distinct = {json.dumps(function, sort_keys=True) for function in functions}
        tools = import_file(path, "bfcl")
        assert len(tools) == len({json.dumps(bfcl._tool(f, "", "x").model_dump(exclude={"source", "name"}),
                                             sort_keys=True) for f in functions}), path
        assert len(tools) <= len(distinct)
        files, docs = files + 1, docs + len(functions)
    assert files >= 25 and docs >= 9000
