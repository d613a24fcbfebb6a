"""ToolSpec: the one canonical description of a tool, whatever format it came from.

Every importer produces ToolSpecs; every later stage (constraint schemas, the executor, prompts,
training rows) reads only ToolSpecs. A tools file is JSON Lines, one ToolSpec per line.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from imaginarium.atomic import atomic_path
from imaginarium.errors import InputError
from imaginarium.schemas import jsonpointer

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_HASH_LEN = 8


def safe_name(source_name: str) -> str:
    """A function-call safe name for `source_name`, deterministic and collision-free.

    A name that is already safe is kept as is. Otherwise unsafe runs become `_` (`%%`, the
    ToolBench tool/API separator, becomes `__`), and a short hash of the original name is
    appended: two different source names can sanitise to the same text ("a b" and "a_b"), but
    not to the same text and hash, so the mapping stays injective.
    """
    if NAME_PATTERN.match(source_name):
        return source_name
    base = source_name.replace("%%", "__")
    base = _UNSAFE.sub("_", base).strip("_") or "tool"
    digest = hashlib.sha256(source_name.encode("utf-8")).hexdigest()[:_HASH_LEN]
    return f"{base[: 64 - _HASH_LEN - 1]}_{digest}"


class ToolSource(BaseModel):
    """Where a tool came from: the format, the file and the JSON pointer inside it."""

    model_config = ConfigDict(extra="forbid")

    format: str
    file: str | None = None
    pointer: str = ""


class HttpBinding(BaseModel):
    """How to call an HTTP tool live: method, server, path template, where each argument goes.

    `locations` maps each argument name (as it appears in `parameters`) to
    `(location, original_name)`, location one of path | query | header | cookie | body.
    A `body` argument named `body` with original name "" is the whole request body.
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["get", "put", "post", "delete", "options", "head", "patch", "trace"]
    server_url: str = ""
    path: str
    locations: dict[str, tuple[str, str]] = Field(default_factory=dict)
    content_type: str | None = None
    # How the API wants callers to authenticate, from the spec's security schemes: hints such as
    # {"type": "apiKey", "in": "header", "name": "X-API-Key"} or {"type": "http", "scheme": "bearer"}
    # (never a credential; `--api-key` supplies those at run time).
    auth: list[dict[str, str]] | None = None


class McpBinding(BaseModel):
    """How to reach an MCP server live: its name, transport, command or URL.

    Only *names* of secrets are kept: `env` lists the environment variables the server needs
    (their values come from the environment, or from an `mcpServers` file given at run time),
    `headers` maps each HTTP header to a template whose only variable parts are `${VAR}`
    references, or to None when the source file had a literal value (given again at run time).
    A tools file can therefore be shared and published without leaking a token.
    """

    model_config = ConfigDict(extra="forbid")

    server: str
    transport: Literal["stdio", "http"]
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    cwd: str | None = None
    url: str | None = None
    env: list[str] = Field(default_factory=list)
    headers: dict[str, str | None] = Field(default_factory=dict)


class ToolSpec(BaseModel):
    """A tool: name, description, parameters (JSON Schema object) and where it came from."""

    model_config = ConfigDict(extra="forbid")

    name: str
    source_name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    returns: dict[str, Any] | None = None
    category: str | None = None
    source: ToolSource
    http: HttpBinding | None = None
    mcp: McpBinding | None = None
    # Behaviour hints as the source gave them (MCP: readOnlyHint, destructiveHint, idempotentHint,
    # openWorldHint). `destructiveHint: true` keeps a tool from running live unless allowed.
    annotations: dict[str, Any] | None = None

    @property
    def destructive(self) -> bool:
        """True when the source marked the tool destructive (MCP `destructiveHint: true`)."""
        return bool(self.annotations and self.annotations.get("destructiveHint") is True)

    @field_validator("name")
    @classmethod
    def _name_is_safe(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a function-call safe name ({NAME_PATTERN.pattern})")
        return value

    @field_validator("parameters")
    @classmethod
    def _parameters_are_a_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type") != "object":
            raise ValueError("must be a JSON Schema with type 'object'")
        check_schema(value)
        check_refs(value)
        return value

    @field_validator("returns")
    @classmethod
    def _returns_is_a_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_schema(value)
            check_refs(value)
        return value

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", exclude_none=True), ensure_ascii=False)

    def openai_tool(self) -> dict[str, Any]:
        """The tool in the OpenAI / Hugging Face function-calling format."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


def check_schema(schema: dict[str, Any]) -> None:
    """Raise ValueError unless `schema` is valid under the JSON Schema Draft 2020-12 metaschema.

    The metaschema check is slow (~1 ms per 10 nodes) and the same schemas come back often (a
    tools file read twice, the same parameters in many tools), so verdicts are remembered.
    """
    problem = _schema_problem(json.dumps(schema, sort_keys=True, allow_nan=True))
    if problem:
        raise ValueError(problem)


@functools.lru_cache(maxsize=4096)
def _schema_problem(text: str) -> str | None:
    try:
        jsonschema.Draft202012Validator.check_schema(json.loads(text))
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        return f"invalid JSON Schema at {where}: {exc.message}"
    return None


def check_refs(schema: dict[str, Any]) -> None:
    """Raise ValueError unless every `$ref` in `schema` points inside it (`#/...` that resolves):
    a tool's schema must stand alone, or validating a call later fails on a reference."""
    stack: list[tuple[Any, str]] = [(schema, "")]
    while stack:
        node, at = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref is not None:
                if not isinstance(ref, str) or not ref.startswith("#"):
                    raise ValueError(f"$ref {ref!r} at {at or '(root)'} points outside the schema")
                try:
                    jsonpointer.resolve(schema, ref)
                except KeyError:
                    raise ValueError(f"$ref {ref!r} at {at or '(root)'} does not resolve") from None
            stack.extend((value, f"{at}/{key}") for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, f"{at}/{index}") for index, value in enumerate(node))


def read_tools(path: str | os.PathLike) -> list[ToolSpec]:
    """Read a tools.jsonl file; a bad line raises InputError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such tools file", where=str(path))
    tools = []
    names: dict[str, int] = {}
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as exc:
        raise InputError(f"cannot read it ({exc.strerror or exc})", where=str(path)) from None
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", where=f"{path}:{number}") from None
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            tool = ToolSpec.model_validate_json(line)
        except ValidationError as exc:
            raise InputError(_first_error(exc), where=where) from None
        if tool.name in names:
            raise InputError(f"duplicate tool name {tool.name!r} (also on line {names[tool.name]})", where=where)
        names[tool.name] = number
        tools.append(tool)
    return tools


def write_tools(path: str | Path, tools: Iterable[ToolSpec]) -> None:
    """Write a tools.jsonl file atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for tool in tools:
            handle.write(tool.to_json() + "\n")


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = ".".join(str(p) for p in error["loc"]) or "(root)"
    return f"field {field}: {error['msg']}"


def tool_doc(tool: ToolSpec) -> str:
    """Human-readable documentation of a tool, as a model is shown it."""
    lines = [f"Tool name: {tool.name}"]
    if tool.description:
        lines.append(f"Description: {tool.description}")
    properties = tool.parameters.get("properties", {})
    required = set(tool.parameters.get("required", []))
    if properties:
        lines.append("Parameters:")
        for name, schema in properties.items():
            kind = schema.get("type", "any")
            kind = "/".join(kind) if isinstance(kind, list) else kind
            flag = "required" if name in required else "optional"
            detail = schema.get("description", "")
            extras = [f"one of {json.dumps(schema['enum'])}"] if "enum" in schema else []
            if "default" in schema:
                extras.append(f"default {json.dumps(schema['default'])}")
            suffix = f" ({'; '.join(extras)})" if extras else ""
            lines.append(f"- {name} ({kind}, {flag}): {detail}{suffix}".rstrip())
    else:
        lines.append("Parameters: none")
    return "\n".join(lines)
