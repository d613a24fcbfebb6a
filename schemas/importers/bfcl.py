"""BFCL (Berkeley Function Calling Leaderboard) function docs -> ToolSpecs.

Why its own importer: BFCL's function docs look like OpenAI functions (`{name, description,
parameters}`) but their schemas are not JSON Schema. The top-level parameters say
`"type": "dict"`, and inside there are Python type names (`float`, `tuple`, `any`) and, in the
Java and JavaScript tests, those languages' type names (`String`, `long`, `ArrayList`, `HashMap`,
`Boolean`, `Bigint`, ...). Read as OpenAI, not one doc passes the Draft 2020-12 metaschema.

Accepted shapes (what BFCL ships, and the pieces people cut from it):
- a JSON Lines file of questions, one `{"id", "question", "function": [doc, ...]}` per line
  (read as a list by `read_document`; pointer `/N` is the N-th value, 0-based),
- a JSON Lines file of function docs (the multi-turn docs in `multi_turn_func_doc/`),
- a JSON array of function docs, or one function doc (or one question) on its own.

Type mapping (BFCL's names as its own `type_mappings.py` lists them, plus `int`):
dict, object, HashMap, Hashtable -> object; float, double, number -> number;
integer, int, long, short, byte, Bigint -> integer; string, String, char -> string;
boolean, bool, Boolean -> boolean; array, list, tuple, Array, ArrayList, Queue, Stack -> array;
Set -> array with `uniqueItems`; null -> null; any, Any and "" (one JavaScript doc) -> no `type`
at all (BFCL itself sends `string` there; "any" means any JSON value). A `type` list is mapped
name by name. Any other name is refused (InputError at its JSON pointer): a guessed type would
teach the model wrong calls. A top-level parameters schema without a type is an object, as BFCL
treats it.

Everything else in a schema is kept (description, default, enum, required, format, minimum, ...),
with properties, items, additionalProperties, prefixItems and anyOf/oneOf/allOf converted
recursively; the old tuple form `"items": [schema, ...]` (a multi-turn doc has it) becomes
`prefixItems` (and `additionalItems`, if any, `items`). BFCL's `optional` marker (true, "True", "yes", a list of names: not JSON Schema,
and `required` already says it) is dropped. A multi-turn doc's `response` (the schema of what
the function returns) becomes `returns`. Defaults are kept as given, even BFCL's `"None"`.

The same function recurs across many questions: within one file, identical docs (same name,
description, parameters and response, after mapping) are kept once, at their first place. A
different doc under a name already seen is another tool: it is kept under the name plus 8 hex
digits of its definition's hash (`get_current_weather_1a2b3c4d`), its `source_name` the
original, so every distinct doc imports. BFCL's question files have many of those:
`get_current_weather` comes in 21 versions in live_multiple alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from imaginarium.errors import InputError
from imaginarium.jsonutil import content_hash
from imaginarium.schemas.importers.base import Skipped, load_each, make_tool, require_name, require_object, where
from imaginarium.schemas.jsonpointer import join
from imaginarium.schemas.toolspec import ToolSpec

_JSON_TYPES = ("string", "number", "integer", "boolean", "array", "object", "null")
_TYPES = {
    **{name: name for name in _JSON_TYPES},
    # Python (BFCL's own vocabulary)
    "dict": "object", "float": "number", "tuple": "array", "list": "array", "bool": "boolean",
    # Java
    "String": "string", "char": "string", "int": "integer", "long": "integer", "short": "integer", "byte": "integer",
    "double": "number", "Array": "array", "ArrayList": "array", "Queue": "array", "Stack": "array", "Set": "array",
    "HashMap": "object", "Hashtable": "object",
    # JavaScript
    "Boolean": "boolean", "Bigint": "integer",
}
_UNTYPED = ("any", "Any", "")
# Names that only BFCL writes: one of them anywhere in a doc tells it from an OpenAI function.
_BFCL_ONLY = (set(_TYPES) - set(_JSON_TYPES)) | {"any", "Any"}
_SCHEMA_MAPS = ("properties", "patternProperties")
_SCHEMA_LISTS = ("prefixItems", "anyOf", "oneOf", "allOf")
_SCHEMA_ONE = ("items", "additionalProperties", "not")


def detect(document: Any) -> bool:
    """True for BFCL questions (objects with a `function` list), or for function docs whose
    schemas use a type name only BFCL writes (`dict`, `float`, `any`, `String`, ...)."""
    items = _items(document)
    if not _is_ours(items):
        return False
    return any(_is_question(item) or (_is_function(item) and _uses_bfcl_types(item)) for _, item in items)


def load(document: Any, file: str, errors: list[Skipped] | None = None) -> list[ToolSpec]:
    items = _items(document)
    if not _is_ours(items):
        raise InputError("not BFCL function docs or questions", where=file)
    first: dict[str, ToolSpec] = {}  # tool name -> its first tool
    built: dict[str, ToolSpec] = {}  # a doc's JSON text -> its tool: a verbatim repeat is not built again

    def build(function: Any, pointer: str) -> ToolSpec:
        text = json.dumps(function, sort_keys=True)
        if text in built:
            return built[text]
        tool = built[text] = _tool(function, pointer, file)
        seen = first.setdefault(tool.name, tool)
        if seen is not tool and _definition(seen) != _definition(tool):
            digest = content_hash(list(_definition(tool)))[:8]
            tool = tool.model_copy(update={"name": f"{tool.name[:55]}_{digest}"})
            seen = first.setdefault(tool.name, tool)
        built[text] = seen  # a verbatim repeat returns the tool kept, not a copy
        return seen

    tools = load_each(_functions(items), build, file, errors)
    return list({id(tool): tool for tool in tools}.values())  # repeats: once


def _definition(tool: ToolSpec) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    return tool.description, tool.parameters, tool.returns


def _items(document: Any) -> list[tuple[str, Any]]:
    if isinstance(document, list):
        return [(join("", i), item) for i, item in enumerate(document)]
    return [("", document)] if isinstance(document, dict) else []


def _is_ours(items: list[tuple[str, Any]]) -> bool:
    """Objects only, at least one a question or a function doc (a broken one is then reported
    by pointer rather than making the whole file unrecognisable)."""
    return bool(items) and all(isinstance(item, dict) for _, item in items) and any(
        _is_question(item) or _is_function(item) for _, item in items)


def _is_question(item: dict[str, Any]) -> bool:
    return isinstance(item.get("function"), list)  # (OpenAI's `function` is one object)


def _is_function(item: dict[str, Any]) -> bool:
    return isinstance(item.get("name"), str) and isinstance(item.get("parameters"), dict)


def _functions(items: list[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """(pointer, function doc): a question's docs one by one, anything else as a doc itself."""
    for pointer, item in items:
        if _is_question(item):
            for j, function in enumerate(item["function"]):
                yield join(pointer, "function", j), function
        else:
            yield pointer, item


def uses_bfcl_types(parameters: Any) -> bool:
    """Whether a parameters schema uses a type name only BFCL writes (`dict`, `float`, `any`, ...)."""
    return _has_bfcl_type(parameters)


def bfcl_parameters(parameters: dict[str, Any], file: str, pointer: str = "") -> dict[str, Any]:
    """A BFCL parameters schema as JSON Schema (types mapped, the top level an object).

    Raises:
        InputError: an unknown type name, naming `file` and the pointer.
    """
    schema = _schema(require_object(parameters, file, pointer, "parameters"), file, pointer)
    schema.setdefault("type", "object")
    return schema


def _uses_bfcl_types(function: dict[str, Any]) -> bool:
    return any(_has_bfcl_type(function.get(key)) for key in ("parameters", "response"))


def _has_bfcl_type(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    kind = schema.get("type")
    if any(isinstance(name, str) and name in _BFCL_ONLY for name in (kind if isinstance(kind, list) else [kind])):
        return True
    return any(_has_bfcl_type(sub) for sub in _subschemas(schema))


def _subschemas(schema: dict[str, Any]) -> Iterator[Any]:
    """The value of every schema-valued keyword of `schema`, one subschema at a time."""
    for key, value in schema.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            yield from value.values()
        elif isinstance(value, list) and (key in _SCHEMA_LISTS or key == "items"):
            yield from value
        elif key in _SCHEMA_ONE:
            yield value


def _tool(function: Any, pointer: str, file: str) -> ToolSpec:
    function = require_object(function, file, pointer, "a function doc")
    name = require_name(function, "name", file, pointer)
    description = function.get("description") or ""
    if not isinstance(description, str):
        raise InputError("description must be a string", where=where(file, join(pointer, "description")))
    at = {key: join(pointer, key) for key in ("parameters", "response", "description")}
    parameters = function.get("parameters")
    if parameters not in (None, {}):
        parameters = bfcl_parameters(parameters, file, at["parameters"])  # the top level an object, as BFCL's converter does
    response = function.get("response")
    return make_tool(
        file=file,
        pointer=pointer,
        format="bfcl",
        source_name=name,
        description=description.strip(),
        parameters=parameters or None,
        returns=None if response is None else _schema(response, file, at["response"]),
        field_pointers={"parameters": at["parameters"], "returns": at["response"], "description": at["description"]},
    )


def _schema(schema: Any, file: str, pointer: str) -> Any:
    """`schema` as JSON Schema: types mapped, `optional` dropped, subschemas converted."""
    if isinstance(schema, bool):
        return schema
    schema = require_object(schema, file, pointer, "a schema")
    result: dict[str, Any] = {}
    if "type" in schema:
        kind = _type(schema["type"], file, join(pointer, "type"))
        if kind is not None:
            result["type"] = kind
        if schema["type"] == "Set":
            result["uniqueItems"] = True
    for key, value in schema.items():
        here = join(pointer, key)
        if key in ("type", "optional"):
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            value = {name: _schema(sub, file, join(here, name)) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            value = [_schema(sub, file, join(here, i)) for i, sub in enumerate(value)]
        elif key == "items" and isinstance(value, list):  # the old tuple form: a schema per position
            key, value = "prefixItems", [_schema(sub, file, join(here, i)) for i, sub in enumerate(value)]
        elif key == "additionalItems" and isinstance(schema.get("items"), list):
            key, value = "items", _schema(value, file, here)
        elif key in _SCHEMA_ONE:
            value = _schema(value, file, here)
        result[key] = value
    return result


def _type(kind: Any, file: str, pointer: str) -> str | list[str] | None:
    """The JSON Schema type for BFCL's `kind` (a name or a list of names); None for "any"."""
    names = kind if isinstance(kind, list) else [kind]
    if not all(isinstance(name, str) for name in names):
        raise InputError("type must be a type name or a list of them", where=where(file, pointer))
    mapped: list[str] = []
    for name in names:
        if name in _UNTYPED:
            return None
        if name not in _TYPES:
            raise InputError(f"unknown type {name!r}: not a JSON Schema type nor one of BFCL's Python, Java or JavaScript "
                             "type names", where=where(file, pointer))
        if _TYPES[name] not in mapped:
            mapped.append(_TYPES[name])
    return mapped if isinstance(kind, list) else mapped[0]
