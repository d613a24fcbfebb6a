"""MCP (Model Context Protocol) `tools/list` results -> ToolSpecs.

Accepted shapes: the result object `{"tools": [...]}`, the whole JSON-RPC response
`{"jsonrpc": "2.0", "id": ..., "result": {"tools": [...]}}`, or a bare list of tools. Each tool
has `name`, `inputSchema` (a JSON Schema object) and optionally `description`, `title`,
`outputSchema` (becomes `returns`) and `annotations` (behaviour hints such as readOnlyHint,
which a ToolSpec has no field for; they are not imported).
"""

from __future__ import annotations

from typing import Any

from imaginarium.errors import InputError
from imaginarium.schemas.importers.base import Skipped, load_each, make_tool, require_name, require_object, where
from imaginarium.schemas.jsonpointer import join
from imaginarium.schemas.toolspec import ToolSpec


def detect(document: Any) -> bool:
    """True for a tools/list result (bare, in `result`, or a list) of objects, one of them at
    least with an `inputSchema` (an empty `{"tools": []}` counts too)."""
    found = _tools(document)
    if found is None:
        return False
    _, tools = found
    if not all(isinstance(tool, dict) for tool in tools):
        return False
    return not tools or any("inputSchema" in tool for tool in tools)


def load(document: Any, file: str, errors: list[Skipped] | None = None) -> list[ToolSpec]:
    if not detect(document):
        raise InputError("not an MCP tools/list result", where=file)
    found = _tools(document)
    assert found is not None  # detect() said it is ours
    pointer, tools = found
    entries = ((join(pointer, i), tool) for i, tool in enumerate(tools))
    return load_each(entries, lambda tool, ptr: _tool(tool, ptr, file), file, errors)


def _tools(document: Any) -> tuple[str, list[Any]] | None:
    """(pointer of the tools list, the list), or None when the shape is not ours."""
    if isinstance(document, list):
        return ("", document) if document else None
    if isinstance(document, dict):
        result = document.get("result")
        if "jsonrpc" in document and isinstance(result, dict) and isinstance(result.get("tools"), list):
            return "/result/tools", result["tools"]
        if isinstance(document.get("tools"), list):
            return "/tools", document["tools"]
    return None


def _tool(tool: Any, pointer: str, file: str) -> ToolSpec:
    tool = require_object(tool, file, pointer, "a tool")
    name = require_name(tool, "name", file, pointer)
    if "inputSchema" not in tool:
        raise InputError("missing 'inputSchema'", where=where(file, pointer))
    description = tool.get("description") or tool.get("title") or ""
    return make_tool(
        file=file,
        pointer=pointer,
        format="mcp",
        source_name=name,
        description=description.strip() if isinstance(description, str) else description,
        parameters=tool["inputSchema"],
        returns=tool.get("outputSchema"),
        field_pointers={
            "parameters": join(pointer, "inputSchema"),
            "returns": join(pointer, "outputSchema"),
            "description": join(pointer, "description"),
        },
    )
