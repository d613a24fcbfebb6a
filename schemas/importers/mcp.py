"""MCP (Model Context Protocol): `tools/list` results -> ToolSpecs, and `mcpServers` files.

Listings: the result object `{"tools": [...]}`, the whole JSON-RPC response
`{"jsonrpc": "2.0", "id": ..., "result": {"tools": [...]}}`, or a bare list of tools. Each tool
has `name`, `inputSchema` (a JSON Schema object) and optionally `description`, `title`,
`outputSchema` (becomes `returns`) and `annotations` (readOnlyHint, destructiveHint, ...: kept).
A listing fetched from a live server (executor/mcp_import.py) also gives each tool its
`McpBinding`, so the executor can call it.

Server files: the `mcpServers` JSON that desktop assistants and editors read (`servers` in VS
Code's form), `{name: {"command", "args", "env", "cwd"} | {"url", "headers"}}`. Values may refer to
the environment as `${VAR}` (or `${env:VAR}`). `read_servers` resolves them for the run; the
binding written to a tools file keeps only names (see `McpBinding`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imaginarium.errors import InputError
from imaginarium.schemas.importers.base import Skipped, load_each, make_tool, require_name, require_object, where
from imaginarium.schemas.jsonpointer import join
from imaginarium.schemas.toolspec import McpBinding, ToolSpec

_VARIABLE = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)\}")
_ANNOTATIONS = ("title", "readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")


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


def load(document: Any, file: str, errors: list[Skipped] | None = None,
         binding: McpBinding | None = None) -> list[ToolSpec]:
    if not detect(document):
        raise InputError("not an MCP tools/list result", where=file)
    found = _tools(document)
    assert found is not None  # detect() said it is ours
    pointer, tools = found
    entries = ((join(pointer, i), tool) for i, tool in enumerate(tools))
    return load_each(entries, lambda tool, ptr: _tool(tool, ptr, file, binding), file, errors)


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


def _tool(tool: Any, pointer: str, file: str, binding: McpBinding | None) -> ToolSpec:
    tool = require_object(tool, file, pointer, "a tool")
    name = require_name(tool, "name", file, pointer)
    if "inputSchema" not in tool:
        raise InputError(f"tool {name!r}: missing 'inputSchema'", where=where(file, pointer))
    if not isinstance(tool["inputSchema"], dict):
        raise InputError(f"tool {name!r}: inputSchema must be a JSON Schema object, not "
                         f"{'null' if tool['inputSchema'] is None else type(tool['inputSchema']).__name__}",
                         where=where(file, join(pointer, "inputSchema")))
    description = tool.get("description") or tool.get("title") or ""
    raw = tool.get("annotations")
    annotations = {key: raw[key] for key in _ANNOTATIONS if key in raw} if isinstance(raw, dict) else None
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
        mcp=binding,
        annotations=annotations or None,
    )


# -- mcpServers files ------------------------------------------------------------------------
@dataclass
class McpServer:
    """One server as a run needs it: the binding (names only) and the resolved secret values."""

    binding: McpBinding
    env: dict[str, str] = field(default_factory=dict, repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    args: list[str] = field(default_factory=list, repr=False)  # the binding's, `${VAR}` expanded

    @property
    def secrets(self) -> list[str]:
        """The values that must never be printed (env values, header values)."""
        return [value for value in (*self.env.values(), *self.headers.values()) if len(value) >= 4]


def read_servers(path: str | Path) -> dict[str, McpServer]:
    """The servers of an `mcpServers` (or VS Code `servers`) JSON or YAML file, by name.

    Raises:
        InputError: a missing or malformed file, an entry with neither command nor url, an
            unsupported transport, a `${VAR}` that is not set; the message names the server.
    """
    from imaginarium.schemas.importers import read_document

    path = Path(path)
    document = read_document(path)
    servers = document.get("mcpServers", document.get("servers")) if isinstance(document, dict) else None
    if not isinstance(servers, dict):
        raise InputError('not an MCP servers file: expected {"mcpServers": {name: {...}}}', where=str(path))
    return {name: server_entry(name, entry, str(path)) for name, entry in servers.items()}


def server_entry(name: str, entry: Any, file: str = "") -> McpServer:
    """One `mcpServers` entry -> McpServer (values resolved from the environment)."""
    at = where(file, join("/mcpServers", name)) if file else ""  # the messages name the server
    if not isinstance(entry, dict):
        raise InputError(f"MCP server {name!r}: an entry must be an object", where=at or None)
    kind = str(entry.get("type") or entry.get("transport") or ("http" if "url" in entry else "stdio")).lower()
    if kind in ("streamable-http", "streamable_http", "streamablehttp"):
        kind = "http"
    if kind not in ("stdio", "http"):
        raise InputError(f"MCP server {name!r}: transport {kind!r} is not supported (stdio or streamable HTTP)", where=at or None)
    if kind == "stdio":
        command = entry.get("command")
        if not isinstance(command, str) or not command.strip():
            raise InputError(f"MCP server {name!r}: a stdio server needs a 'command'", where=at or None)
        args = entry.get("args") or []
        if not isinstance(args, list) or not all(isinstance(a, (str, int, float)) for a in args):
            raise InputError(f"MCP server {name!r}: 'args' must be a list of strings", where=at or None)
        env = _string_map(entry.get("env"), name, "env", at)
        binding = McpBinding(server=name, transport="stdio", command=command, args=[str(a) for a in args],
                             cwd=entry.get("cwd") if isinstance(entry.get("cwd"), str) else None, env=sorted(env))
        return McpServer(binding, env={key: _expand(value, name, at) for key, value in env.items()},
                         args=[_expand(str(a), name, at) for a in args])
    url = entry.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://", url):
        raise InputError(f"MCP server {name!r}: an HTTP server needs a 'url' (http:// or https://)", where=at or None)
    headers = _string_map(entry.get("headers"), name, "headers", at)
    templates = {key: (value if _only_references(value) else None) for key, value in headers.items()}
    binding = McpBinding(server=name, transport="http", url=url, headers=templates)
    return McpServer(binding, headers={key: _expand(value, name, at) for key, value in headers.items()})


def command_server(command: str, name: str | None = None) -> McpServer:
    """A stdio server from a command line ("mcp-server-time --local-timezone UTC")."""
    import shlex

    try:
        parts = shlex.split(command)
    except ValueError as exc:
        raise InputError(f"--mcp-command: {exc}") from None
    if not parts:
        raise InputError("--mcp-command: empty command")
    return server_entry(name or _command_name(parts), {"command": parts[0], "args": parts[1:]})


_LAUNCHERS = re.compile(r"^(python[0-9.]*|node|npx|uvx|uv|deno|bun|run|pipx)$")


def _command_name(parts: list[str]) -> str:
    """A server name from its command line: the first part that is not a launcher or a flag
    ("python -m mcp_server_time" -> mcp_server_time; "uvx mcp-server-git" -> mcp-server-git)."""
    for part in parts:
        stem = Path(part).stem
        if part.startswith("-") or _LAUNCHERS.match(stem):
            continue
        return stem
    return Path(parts[0]).stem


def url_server(url: str, name: str | None = None) -> McpServer:
    """A streamable-HTTP server from its URL."""
    from urllib.parse import urlparse

    return server_entry(name or urlparse(url).hostname or "mcp", {"url": url})


def runtime_values(binding: McpBinding, servers: dict[str, McpServer] | None = None) -> McpServer:
    """The server to start for `binding`: its entry in a run-time servers file when it has one
    (which may also move the command or URL), else the binding with values from the environment.

    Raises:
        InputError: an environment variable the server needs is not set.
    """
    if servers and binding.server in servers:
        return servers[binding.server]
    at = ""  # the messages name the server
    env = {}
    for key in binding.env:
        if key not in os.environ:
            raise InputError(f"MCP server {binding.server!r} needs environment variable {key}, which is not set "
                             "(or give the servers file again with --mcp-config)")
        env[key] = os.environ[key]
    headers = {}
    for key, template in binding.headers.items():
        if template is None:
            raise InputError(f"MCP server {binding.server!r}: header {key} had a literal value that is not stored; "
                             "give the servers file with --mcp-config")
        headers[key] = _expand(template, binding.server, at)
    return McpServer(binding, env=env, headers=headers, args=[_expand(a, binding.server, at) for a in binding.args])


def _string_map(value: Any, name: str, key: str, at: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, (str, int, float)) for v in value.values()):
        raise InputError(f"MCP server {name!r}: {key!r} must map names to strings", where=at or None)
    return {str(k): str(v) for k, v in value.items()}


def _only_references(value: str) -> bool:
    """True when a header value holds no literal secret: fixed words around `${VAR}` parts
    ("Bearer ${TOKEN}"), where the fixed words are short (a scheme, not a key)."""
    if not _VARIABLE.search(value):
        return False
    literal = _VARIABLE.sub("", value).strip()
    return len(literal) <= 16 and " " not in literal


def _expand(value: str, name: str, at: str) -> str:
    def one(match: re.Match) -> str:
        variable = match.group(1)
        if variable not in os.environ:
            raise InputError(f"MCP server {name!r} refers to ${{{variable}}}, which is not set", where=at or None)
        return os.environ[variable]

    return _VARIABLE.sub(one, value)
