"""No traceback from any importer, whatever the bytes: property-based tests (hypothesis).

For every format a valid document is mutated: a random node replaced by a random JSON value
(wrong types at every position, odd unicode with lone surrogates, non-finite numbers, long
strings), wrapped in deep nesting, or the file replaced by random bytes. Importing it, with the
format auto-detected and forced, must give tools or an InputError (one line, exit 2 in the CLI),
never anything else. 1,000 examples per format.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imaginarium.errors import InputError
from imaginarium.schemas.importers import import_file

DATA = Path(__file__).parent / "data" / "importers"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "description": "a city"},
                                           "days": {"type": "integer", "minimum": 1}}, "required": ["city"]}
SEEDS = {
    "openapi": {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "servers": [{"url": "https://x.example"}],
                "components": {"schemas": {"City": {"type": "string"}}},
                "paths": {"/w/{city}": {"get": {"operationId": "w", "summary": "Weather.", "tags": ["a"],
                                                "parameters": [{"name": "city", "in": "path", "required": True,
                                                                "schema": {"$ref": "#/components/schemas/City"}}],
                                                "responses": {"200": {"description": "ok", "content": {
                                                    "application/json": {"schema": SCHEMA}}}}}}}},
    "swagger2": {"swagger": "2.0", "info": {"title": "t", "version": "1"}, "host": "x.example", "basePath": "/v1",
                 "definitions": {"Pet": SCHEMA},
                 "paths": {"/p": {"post": {"operationId": "p", "summary": "Add.", "consumes": ["application/json"],
                                           "parameters": [{"name": "pet", "in": "body", "schema": {"$ref": "#/definitions/Pet"}},
                                                          {"name": "q", "in": "query", "type": "string"},
                                                          {"name": "f", "in": "formData", "type": "file"}],
                                           "responses": {"200": {"description": "ok", "schema": SCHEMA}}}}}},
    "mcp": {"tools": [{"name": "weather", "description": "Weather.", "inputSchema": SCHEMA, "outputSchema": SCHEMA,
                       "annotations": {"readOnlyHint": True}}]},
    "bfcl": [{"name": "math.f", "description": "F.", "parameters": {"type": "dict", "properties": {
        "x": {"type": "float"}, "t": {"type": "tuple", "items": {"type": "String"}}}, "required": ["x"]}}],
    "openai": [{"type": "function", "function": {"name": "weather", "description": "Weather.", "parameters": SCHEMA}}],
    "toolbench": json.loads((DATA / "toolbench_per_tool.json").read_text()),
    "python": {"python_tools": ["imaginarium.executor.builtins:calculator", "imaginarium.executor.builtins"]},
}
FORMAT_OF = {"swagger2": "openapi"}

odd_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=12)
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | odd_text
           | st.sampled_from(["", "object", "dict", "$ref", "#/nope", "#/components/schemas/City", "https://x/y",
                              "a:b", ":f", "2.0", "3.1.0", "x" * 5000]))
values = st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                      | st.dictionaries(odd_text | st.sampled_from(["type", "$ref", "properties", "name", "schema"]),
                                        children, max_size=4), max_leaves=12)


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, (*prefix, index))


def replace(document, path, value):
    if not path:
        return value
    copy = json.loads(json.dumps(document))
    node = copy
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return copy


def write(path: Path, document, as_yaml: bool) -> None:
    if as_yaml:
        import yaml

        try:
            dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
            path.write_text(yaml.dump(document, Dumper=dumper, allow_unicode=False), encoding="utf-8")
            return
        except (yaml.YAMLError, UnicodeEncodeError, RecursionError):
            pass
    path.write_text(json.dumps(document, allow_nan=True), encoding="utf-8")


def outcome(path: Path, format: str):
    """The tools, or the InputError: any other exception fails the test."""
    try:
        return import_file(path, format)
    except InputError as error:
        text = str(error)
        assert "\n" not in text and "Traceback" not in text
        text.encode("utf-8")  # printable: no lone surrogate reaches a message
        return error


@pytest.mark.parametrize("name", sorted(SEEDS))
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(data=st.data())
def test_a_mutated_document_gives_tools_or_one_line(tmp_path, name, data):
    seed = SEEDS[name]
    targets = list(paths(seed))
    path = targets[data.draw(st.integers(0, len(targets) - 1), label="position")]
    mutation = data.draw(st.sampled_from(["replace", "replace", "replace", "nest", "huge"]), label="mutation")
    if mutation == "replace":
        document = replace(seed, path, data.draw(values, label="value"))
    elif mutation == "nest":
        depth = data.draw(st.integers(1, 300), label="depth")
        inner = json.loads(json.dumps(seed))
        for _ in range(depth):
            inner = {"properties": {"a": inner}} if depth % 2 else [inner]
        document = replace(seed, path, inner)
    else:
        document = replace(seed, path, "é" * data.draw(st.integers(10_000, 50_000), label="size"))
    file = tmp_path / "in.txt"
    write(file, document, data.draw(st.booleans(), label="yaml"))
    outcome(file, "auto")
    outcome(file, FORMAT_OF.get(name, name))


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_random_bytes_give_one_line(tmp_path, data):
    file = tmp_path / "in.bin"
    file.write_bytes(data)
    result = outcome(file, "auto")
    assert isinstance(result, (list, InputError))
