"""ToolBench / RapidAPI API descriptions (and the BMTools entries beside them) -> ToolSpecs.

Shapes read:
- STE's `API_descriptions.json`: API name -> description, either a JSON string (or an object)
  with `description`, `required_parameters`, `optional_parameters` (each `{name, type,
  description, default}`), `parent_tool_name`, `parent_tool_description`; or, for BMTools
  APIs (`add_date`, `search`, ...), free text that embeds an "args json schema" such as
  `{{"date" : string, "days" : integer, }}`.
- STE's `API_dict_bmtools.json`: API name -> `{description (that free text), parent_tool_name,
  parent_tool_description, ...}`.
- ToolBench's per-tool files (data/toolenv/tools/CATEGORY/TOOL.json): `{tool_name,
  tool_description, api_list: [{name, description, required_parameters, ...}]}`.

RapidAPI APIs are named `Tool%%API` (source_name); their category comes from a
`tool2cate.json` beside the file when there is one.

Type mapping (every type that occurs in the STE data, decided one by one):
STRING/string -> string; NUMBER -> number; BOOLEAN -> boolean; ENUM -> string (ToolBench never
lists the values, at most the prose does); DATE (YYYY-MM-DD) -> string with format "date";
ARRAY -> array; OBJECT -> object; anything else -> no type constraint, noted in the parameter's
description and in `x-toolbench-type`. Defaults are kept when they convert safely to that type
(numeric strings for NUMBER, "true"/"false" for BOOLEAN, JSON text for ARRAY/OBJECT); an empty
string is ToolBench's "no default" and is dropped, as is a default that does not convert.
Parameters are exactly the listed ones (`additionalProperties: false`): a RapidAPI endpoint or
BMTools function takes nothing else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imaginarium.errors import InputError
from imaginarium.schemas.importers.base import Skipped, load_each, make_tool, require_name, require_object, where
from imaginarium.schemas.jsonpointer import join
from imaginarium.schemas.toolspec import ToolSpec

CATEGORY_FILE = "tool2cate.json"
_PARAMETER_KEYS = ("required_parameters", "optional_parameters")
_BMTOOLS_MARK = "The Action to trigger this API"
_ARGS_SCHEMA = re.compile(r"\(args json schema\):\s*\{\{(?P<body>.*?)\}\}", re.DOTALL)
_ARG = re.compile(r'"(?P<name>[^"]+)"\s*:\s*(?P<type>[A-Za-z]+)\s*,')
_BOILERPLATE = re.compile(r"\s*(Your input should be a json|The Action to trigger this API).*", re.DOTALL)
_BMTOOLS_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean", "array": "array", "object": "object"}


def detect(document: Any) -> bool:
    """True for an API-name -> description mapping of ToolBench/BMTools, or a per-tool file."""
    if isinstance(document, dict) and "tool_name" in document and isinstance(document.get("api_list"), list):
        return True
    if not isinstance(document, dict) or not document:
        return False
    values = document.values()
    return all(isinstance(v, (str, dict)) for v in values) and any(_is_api_entry(v) for v in values)


def load(document: Any, file: str, errors: list[Skipped] | None = None) -> list[ToolSpec]:
    if not detect(document):
        raise InputError("not a ToolBench API description file", where=file)
    categories = _categories_beside(file)
    return load_each(_entries(document), lambda entry, ptr: _tool(entry, ptr, file, categories), file, errors)


def _is_api_entry(value: Any) -> bool:
    if isinstance(value, str):
        if _BMTOOLS_MARK in value:
            return True
        try:
            value = json.loads(value)
        except ValueError:
            return False
    return isinstance(value, dict) and any(key in value for key in (*_PARAMETER_KEYS, "parent_tool_name"))


def _entries(document: dict[str, Any]) -> Iterator[tuple[str, tuple[str | None, Any, dict[str, Any]]]]:
    """(pointer, (source name, API entry, parent tool info)) for every API in the document.

    In a per-tool file the source name is only known once the entry is checked (None here)."""
    if "api_list" in document:
        parent = {"parent_tool_name": document.get("tool_name"), "parent_tool_description": document.get("tool_description")}
        for i, api in enumerate(document["api_list"]):
            yield join("", "api_list", i), (None, api, parent)
    else:
        for name, value in document.items():
            yield join("", name), (name, value, {})


def _categories_beside(file: str) -> dict[str, str]:
    path = Path(file).with_name(CATEGORY_FILE)
    if not path.is_file():
        return {}
    try:
        categories = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"invalid JSON: {exc}", where=str(path)) from None
    return categories if isinstance(categories, dict) else {}


def _tool(entry: tuple[str | None, Any, dict[str, Any]], pointer: str, file: str, categories: dict[str, str]) -> ToolSpec:
    source_name, api, parent = entry
    if isinstance(api, str):
        try:
            api = json.loads(api)
        except ValueError:
            api = {"description": api}  # BMTools: free text with an embedded args schema
    api = require_object(api, file, pointer, "an API description")
    if source_name is None:  # an api_list entry of a per-tool file
        source_name = f"{parent['parent_tool_name']}%%{require_name(api, 'name', file, pointer)}"
    api = {**parent, **api}
    if not any(key in api for key in _PARAMETER_KEYS):
        return _bmtools_tool(source_name, api, pointer, file)
    tool_name = api.get("parent_tool_name") or source_name.split("%%")[0]
    return make_tool(
        file=file,
        pointer=pointer,
        format="toolbench",
        source_name=source_name,
        description=_description(api.get("description"), source_name, tool_name, api.get("parent_tool_description")),
        parameters=_rapidapi_parameters(api, pointer, file),
        category=categories.get(tool_name),
    )


def _description(text: Any, source_name: str, tool_name: str | None, tool_description: Any) -> str:
    """The API's own description (or its name), then one line about the tool it belongs to."""
    own = str(text or "").strip() or source_name.split("%%")[-1]
    if not tool_name:
        return own
    about = str(tool_description or "").strip()
    return f"{own}\n\nPart of the tool {tool_name}: {about}" if about else f"{own}\n\nPart of the tool {tool_name}."


def _rapidapi_parameters(api: dict[str, Any], pointer: str, file: str) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for kind in _PARAMETER_KEYS:
        listed = api.get(kind) or []
        if not isinstance(listed, list):
            raise InputError(f"{kind} must be a list", where=where(file, join(pointer, kind)))
        for i, parameter in enumerate(listed):
            at = join(pointer, kind, i)
            parameter = require_object(parameter, file, at, "a parameter")
            name = require_name(parameter, "name", file, at)
            schema = _parameter_schema(parameter)
            if name in properties:
                # ToolBench repeats PHP-style list parameters (`array[]`); one property says it.
                if properties[name].get("type") != schema.get("type"):
                    raise InputError(f"parameter {name!r} listed twice with different types", where=where(file, at))
                continue
            properties[name] = schema
            if kind == "required_parameters":
                required.append(name)
    return _object_schema(properties, required)


def _object_schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    return schema


def _parameter_schema(parameter: dict[str, Any]) -> dict[str, Any]:
    raw_type = str(parameter.get("type") or "")
    kind = raw_type.strip().upper()
    schema: dict[str, Any] = {}
    description = str(parameter.get("description") or "").strip()
    if kind in ("STRING", "ENUM"):
        schema["type"] = "string"
    elif kind == "NUMBER":
        schema["type"] = "number"
    elif kind == "BOOLEAN":
        schema["type"] = "boolean"
    elif kind.startswith("DATE"):
        schema.update(type="string", format="date")
    elif kind in ("ARRAY", "OBJECT"):
        schema["type"] = kind.lower()
    else:
        note = f"(ToolBench type {raw_type!r} has no JSON Schema equivalent: any value is accepted.)"
        description = f"{description} {note}".strip()
        schema["x-toolbench-type"] = raw_type
    if description:
        schema["description"] = description
    default = _coerce(parameter.get("default"), schema.get("type"))
    if default is not None:
        schema["default"] = default
    return schema


def _coerce(value: Any, json_type: str | None) -> Any:
    """`value` as a `json_type` value, or None when it is empty or does not convert safely."""
    if value is None or value == "":
        return None
    if json_type == "string":
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) else json.dumps(value)
    if json_type == "number":
        return _number(value)
    if json_type == "boolean":
        if isinstance(value, bool):
            return value
        return {"true": True, "false": False}.get(str(value).strip().lower())
    if json_type in ("array", "object"):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return None
        return value if isinstance(value, list if json_type == "array" else dict) else None
    return value


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


def _bmtools_tool(source_name: str, api: dict[str, Any], pointer: str, file: str) -> ToolSpec:
    """A BMTools API: the parameters come from the "args json schema" in its free text."""
    text = str(api.get("description") or "")
    own = _BOILERPLATE.sub("", text).strip().replace("{{", "{").replace("}}", "}")
    own = re.sub(r"\.\.$", ".", own)
    return make_tool(
        file=file,
        pointer=pointer,
        format="toolbench",
        source_name=source_name,
        description=_description(own, source_name, api.get("parent_tool_name"), api.get("parent_tool_description")),
        parameters=_bmtools_parameters(text, pointer, file),
    )


def _bmtools_parameters(text: str, pointer: str, file: str) -> dict[str, Any]:
    """Parse `{{"date" : string, "days" : integer, }}`: every arg is required unless the text
    documents it as `name (type, optional): ...` (the docstring convention of the BMTools Zillow
    functions), whose text also becomes the parameter's description."""
    match = _ARGS_SCHEMA.search(text)
    if match is None:
        if "args json schema" in text:
            raise InputError("cannot read the embedded args json schema", where=where(file, pointer))
        return _object_schema({}, [])
    body = match.group("body")
    args = _ARG.findall(body)
    if _ARG.sub("", body).strip():
        raise InputError(f"cannot read the embedded args json schema {{{{{body}}}}}", where=where(file, pointer))
    properties: dict[str, Any] = {}
    required = []
    for name, raw_type in args:
        json_type = _BMTOOLS_TYPES.get(raw_type.lower())
        documented = re.search(rf"^\s*{re.escape(name)}\s*\((?P<types>[^)\n]*)\):\s*(?P<text>.+)$", text, re.MULTILINE)
        description = documented.group("text").strip() if documented else ""
        if json_type is None:
            note = f"(BMTools type {raw_type!r} has no JSON Schema equivalent: any value is accepted.)"
            properties[name] = {"description": f"{description} {note}".strip(), "x-toolbench-type": raw_type}
        else:
            properties[name] = {"type": json_type, **({"description": description} if description else {})}
        if not (documented and re.search(r"\boptional\b", documented.group("types"))):
            required.append(name)
    return _object_schema(properties, required)
