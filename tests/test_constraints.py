"""Constraint schemas: enforceable() rewrites, call/choice schemas, and the measured decoder table."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from outlines_core.json_schema import build_regex_from_schema

from imaginarium.schemas.constraints import (
    ENFORCED_BY,
    call_schema,
    choice_schema,
    enforceable,
    unenforced_keywords,
)
from imaginarium.schemas.importers import openapi
from imaginarium.schemas.toolspec import ToolSource, ToolSpec

ROOT = Path(__file__).parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "constraint_enforcement.json"
from paths import TOOLBENCH  # noqa: E402

FREE = ["string", "number", "boolean", "null"]

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://example.com/search",
    "type": "object",
    "properties": {
        "query": {"type": "string", "description": "what to look for", "examples": ["cats"]},
        "short": {"type": "string", "maxLength": 10},
        "long": {"type": "string", "minLength": 300},
        "mode": {"type": "string", "enum": ["fast", "full"], "default": "fast"},
        "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "day": {"type": "string", "format": "date"},
        "limit": {"type": "integer", "minimum": 1, "maximum": 50},
        "filters": {"type": "object", "x-note": "free-form"},
        "scores": {"type": "object", "additionalProperties": {"type": "number"}},
        "owner": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "anything": {},
    },
    "required": ["query"],
}


def tool(name: str, parameters: dict) -> ToolSpec:
    return ToolSpec(name=name, source_name=name, parameters=parameters, source=ToolSource(format="test"))


def outlines_accepts(schema: dict, value) -> bool:
    pattern = build_regex_from_schema(json.dumps(schema))
    return re.fullmatch(pattern, json.dumps(value, separators=(",", ":"))) is not None


def test_free_strings_bounded_and_constrained_ones_left_alone():
    props = enforceable(SCHEMA, max_string_length=64)["properties"]
    assert props["query"] == {"type": "string", "description": "what to look for", "maxLength": 64}
    assert props["short"]["maxLength"] == 10  # the smaller of its own and the cap
    assert props["long"]["maxLength"] == 300  # never below minLength, which would make it unsatisfiable
    assert props["mode"] == {"type": "string", "enum": ["fast", "full"]}
    assert "maxLength" not in props["code"] and "maxLength" not in props["day"]
    assert props["tags"]["items"]["maxLength"] == 64
    assert "maxItems" not in props["tags"]
    assert enforceable(SCHEMA, max_array_items=5)["properties"]["tags"]["maxItems"] == 5


def test_objects_closed_and_free_forms_bounded():
    out = enforceable(SCHEMA, max_string_length=64)
    assert out["additionalProperties"] is False
    assert out["properties"]["owner"]["additionalProperties"] is False
    assert out["properties"]["scores"]["additionalProperties"] == {"type": "number"}  # its own schema kept
    assert out["properties"]["filters"] == {"type": "object", "additionalProperties": {"type": FREE, "maxLength": 64}}
    assert out["properties"]["anything"] == {"type": FREE, "maxLength": 64}
    assert enforceable({"type": "object", "properties": {}}) == {"type": "object", "properties": {}, "additionalProperties": False}
    for key in ("$schema", "$id"):
        assert key not in out
    assert "examples" not in json.dumps(out) and "default" not in json.dumps(out) and "x-note" not in json.dumps(out)


VALID_ORIGINAL = [
    {"query": "cats"},
    {"query": "cats", "mode": "full", "limit": 3, "code": "ABC", "day": "2024-02-01"},
    {"query": "x", "filters": {"colour": "red", "size": 3}, "scores": {"a": 1.5}, "owner": {"name": "Ann"}},
    {"query": "x", "tags": ["a", "b"], "anything": None, "long": "y" * 300},
]
VALID_ORIGINAL_ONLY = [  # valid for the tool, refused by the enforceable schema
    {"query": "x" * 65},
    {"query": "x", "extra": 1},
    {"query": "x", "owner": {"name": "Ann", "age": 3}},
    {"query": "x", "filters": {"nested": {"deep": 1}}},
    {"query": "x", "anything": [1, 2]},
    {"query": "x", "tags": ["y" * 100]},
]
INVALID = [{}, {"query": 1}, {"query": "x", "limit": 0}, {"query": "x", "mode": "slow"}, {"query": "x", "code": "abc"},
           {"query": "x", "owner": {}}, {"query": "x", "scores": {"a": "high"}}]


def test_enforceable_is_a_subset():
    original = jsonschema.Draft202012Validator(SCHEMA)
    narrowed = jsonschema.Draft202012Validator(enforceable(SCHEMA, max_string_length=64))
    jsonschema.Draft202012Validator.check_schema(narrowed.schema)
    for instance in VALID_ORIGINAL:
        assert original.is_valid(instance) and narrowed.is_valid(instance), instance
    for instance in VALID_ORIGINAL_ONLY:
        assert original.is_valid(instance) and not narrowed.is_valid(instance), instance
    for instance in INVALID:
        assert not original.is_valid(instance) and not narrowed.is_valid(instance), instance


def test_refs_inlined_and_recursion_cut_to_nothing():
    schema = {
        "type": "object",
        "$defs": {"Node": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}},
                  "Mark": {"enum": ["x", "o"]}},
        "properties": {"tree": {"$ref": "#/$defs/Node"}, "mark": {"$ref": "#/$defs/Mark", "description": "a mark"}},
    }
    out = enforceable(schema)
    assert "$ref" not in json.dumps(out) and "$defs" not in out
    assert out["properties"]["mark"] == {"enum": ["x", "o"], "description": "a mark"}
    third = out["properties"]["tree"]["properties"]["kids"]["items"]["properties"]["kids"]["items"]
    assert third["properties"]["kids"]["items"] is False
    validator = jsonschema.Draft202012Validator(out)
    assert validator.is_valid({"tree": {"kids": [{"kids": [{"kids": []}]}]}})
    assert not validator.is_valid({"tree": {"kids": [{"kids": [{"kids": [{}]}]}]}})
    assert jsonschema.Draft202012Validator(schema).is_valid({"tree": {"kids": [{"kids": [{"kids": [{}]}]}]}})
    with pytest.raises(ValueError, match="/properties/x: \\$ref '#/\\$defs/Gone' does not resolve"):
        enforceable({"type": "object", "properties": {"x": {"$ref": "#/$defs/Gone"}}})


def test_all_of_objects_merged_so_outlines_core_accepts_valid_values():
    schema = {"type": "object", "properties": {"pet": {"allOf": [
        {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
    ]}}, "required": ["pet"]}
    value = {"pet": {"name": "Rex", "id": 1}}
    assert not outlines_accepts(schema, value)  # the measured outlines_core allOf problem
    out = enforceable(schema)
    assert out["properties"]["pet"]["required"] == ["name", "id"]
    assert out["properties"]["pet"]["additionalProperties"] is False
    assert outlines_accepts(out, value)
    assert not outlines_accepts(out, {"pet": {"name": "Rex"}})


def test_not_and_if_are_not_narrowed():
    schema = {"type": "object", "properties": {"a": {"type": "string", "not": {"type": "string", "minLength": 3}}}}
    out = enforceable(schema, max_string_length=8)
    assert out["properties"]["a"] == {"type": "string", "not": {"type": "string", "minLength": 3}, "maxLength": 8}
    assert enforceable({"not": {}}) == {"not": {}}


def test_call_schema_accepts_valid_calls_only():
    search = tool("search", SCHEMA)
    validator = jsonschema.Draft202012Validator(call_schema(search, max_string_length=64))
    validator.check_schema(validator.schema)
    assert validator.is_valid({"name": "search", "arguments": {"query": "cats", "limit": 2}})
    assert not validator.is_valid({"name": "find", "arguments": {"query": "cats"}})  # wrong name
    assert not validator.is_valid({"name": "search", "arguments": {"query": "cats"}, "id": 1})  # extra key
    assert not validator.is_valid({"name": "search", "arguments": {"limit": 2}})  # missing required argument
    assert not validator.is_valid({"name": "search", "arguments": {"query": "cats", "lang": "en"}})  # unknown argument
    assert not validator.is_valid({"name": "search"})


def test_choice_schema_accepts_each_tools_call():
    tools = [tool("search", SCHEMA), tool("weather", {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]})]
    validator = jsonschema.Draft202012Validator(choice_schema(tools))
    assert validator.is_valid({"name": "search", "arguments": {"query": "cats"}})
    assert validator.is_valid({"name": "weather", "arguments": {"city": "Oslo"}})
    assert not validator.is_valid({"name": "weather", "arguments": {"query": "cats"}})
    assert not validator.is_valid({"name": "other", "arguments": {}})
    assert choice_schema(tools[:1]) == call_schema(tools[0])
    assert outlines_accepts(choice_schema(tools), {"name": "weather", "arguments": {"city": "Oslo"}})
    assert not outlines_accepts(choice_schema(tools), {"name": "weather", "arguments": {"query": "Oslo"}})


def test_unenforced_keywords_follow_the_measurement():
    schema = enforceable(SCHEMA)
    lines = unenforced_keywords(schema, "outlines_core")
    assert lines == [
        "/properties/limit: minimum (integer minimum is not enforced by outlines_core)",
        "/properties/limit: maximum (integer maximum is not enforced by outlines_core)",
    ]
    assert unenforced_keywords(schema, "llguidance") == []
    assert unenforced_keywords(schema, "xgrammar") == []
    plain = {"type": "object", "properties": {"q": {"type": "string", "maxLength": 5}, "k": {"enum": [1, 2]},
                                              "o": {"type": "object", "properties": {"d": {"type": "string", "format": "date"}},
                                                    "additionalProperties": False}},
             "required": ["q"], "additionalProperties": False}
    assert unenforced_keywords(plain, "outlines_core") == []
    assert unenforced_keywords({"type": "array", "uniqueItems": True}, "llguidance") == [
        "/: uniqueItems (refused by llguidance's schema compiler)"]
    assert unenforced_keywords({"type": "array", "contains": {"const": 1}}, "xgrammar") == [
        "/: contains (not measured; assume xgrammar does not enforce it)"]
    with pytest.raises(ValueError, match="unknown decoder"):
        unenforced_keywords(plain, "vllm")


def test_table_is_the_measured_one():
    measured = json.loads(RESULTS.read_text())["enforced_by"]
    assert {key: set(value) for key, value in measured.items()} == {key: set(value) for key, value in ENFORCED_BY.items()}


def test_imported_openapi_tools_compile_and_accept_a_valid_call():
    path = ROOT / "tests" / "data" / "petstore3.openapi.yaml"
    tools = {t.name: t for t in openapi.load(yaml.safe_load(path.read_text()), str(path))}
    for spec in tools.values():
        build_regex_from_schema(json.dumps(call_schema(spec)))
    # outlines_core fixes the property order to the schema's order (id, name, category, photoUrls, ...)
    call = {"name": "updatePet", "arguments": {"name": "Rex", "category": {"id": 1}, "photoUrls": [], "status": "sold"}}
    assert outlines_accepts(call_schema(tools["updatePet"]), call)
    assert not outlines_accepts(call_schema(tools["updatePet"]), {**call, "arguments": {"name": "Rex"}})


@pytest.mark.skipif(not TOOLBENCH.is_file(), reason="the STE data (../shared/datasets/ste) is not here")
def test_every_toolbench_call_schema_is_valid_and_compiles():
    from imaginarium.schemas.importers import import_file

    tools = import_file(TOOLBENCH, format="toolbench")
    assert len(tools) == 817
    for spec in tools:  # ~1 ms each with outlines_core: all of them (see the benchmark for timings)
        schema = call_schema(spec)
        jsonschema.Draft202012Validator.check_schema(schema)
        build_regex_from_schema(json.dumps(schema))
    sample = random.Random(0).sample(tools, 5)
    for spec in sample:
        validator = jsonschema.Draft202012Validator(call_schema(spec))
        assert not validator.is_valid({"name": spec.name, "arguments": {"not_a_parameter": 1}})


def test_enforceable_is_idempotent():
    """Backends apply enforceable() to whatever schema they get, call schemas included."""
    once = enforceable(SCHEMA, max_string_length=64)
    assert enforceable(once, max_string_length=64) == once
    tools = [tool("search", SCHEMA), tool("noop", {"type": "object", "properties": {}})]
    assert enforceable(call_schema(tools[0])) == call_schema(tools[0])
    assert enforceable(choice_schema(tools)) == choice_schema(tools)
