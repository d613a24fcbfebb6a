"""OpenAI function-calling tool definitions -> ToolSpecs.

Accepted shapes (the ones people actually paste from API calls and docs):
- a list of tools `[{"type": "function", "function": {name, description, parameters}}]`,
- a list of bare function objects `[{name, description, parameters}]`,
- one tool or one bare function on its own,
- `{"tools": [...]}`, as in a chat-completions request body.

A function without `parameters` (or with `{}`) takes no arguments: the empty object schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from imaginarium.errors import InputError
from imaginarium.schemas.importers.base import Skipped, load_each, make_tool, require_name, require_object, where
from imaginarium.schemas.jsonpointer import join
from imaginarium.schemas.toolspec import ToolSpec


def detect(document: Any) -> bool:
    """True when the document is (a list of, or `{"tools": [...]}` of) OpenAI tools/functions.

    One recognisable tool among objects is enough, so that a broken one is reported by pointer
    rather than making the whole file unrecognisable."""
    items = _items(document)
    if not items or not all(isinstance(item, dict) for _, item in items):
        return False
    return any(_is_tool(item) for _, item in items)


def load(document: Any, file: str, errors: list[Skipped] | None = None) -> list[ToolSpec]:
    if not detect(document):
        raise InputError("not an OpenAI tool list", where=file)
    return load_each(_functions(_items(document) or []), lambda fn, ptr: _tool(fn, ptr, file), file, errors)


def _items(document: Any) -> list[tuple[str, Any]] | None:
    """(pointer, item) for each tool in the document, or None when the shape is not ours."""
    if isinstance(document, list):
        return [(join("", i), item) for i, item in enumerate(document)]
    if isinstance(document, dict):
        if isinstance(document.get("tools"), list):
            return [(join("", "tools", i), item) for i, item in enumerate(document["tools"])]
        if _is_tool(document):
            return [("", document)]
    return None


def _is_tool(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    if item.get("type") == "function" and isinstance(item.get("function"), dict):
        return True
    return isinstance(item.get("name"), str) and ("parameters" in item or "description" in item) and "inputSchema" not in item


def _functions(items: list[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """The function object of each item: unwrapped from `{"type": "function", "function": ...}`."""
    for pointer, item in items:
        if isinstance(item, dict) and isinstance(item.get("function"), dict):
            yield join(pointer, "function"), item["function"]
        else:
            yield pointer, item


def _tool(function: Any, pointer: str, file: str) -> ToolSpec:
    function = require_object(function, file, pointer, "a function")
    name = require_name(function, "name", file, pointer)
    description = function.get("description") or ""
    if not isinstance(description, str):
        raise InputError("description must be a string", where=where(file, join(pointer, "description")))
    parameters = function.get("parameters")
    return make_tool(
        file=file,
        pointer=pointer,
        format="openai",
        source_name=name,
        description=description.strip(),
        parameters=None if parameters in (None, {}) else parameters,
        field_pointers={"parameters": join(pointer, "parameters"), "description": join(pointer, "description")},
    )
