"""Python callables as tools: a function's signature and docstring become a ToolSpec.

A Python tool's ToolSpec has `source.format == "python"` and `source_name == "module:function"`
(its original name: the reference the executor imports to run it); `source.file` is the listing
it was imported from, if any. So a tools.jsonl stays plain data and a Python
tool can be listed beside OpenAPI tools, shipped, and re-run anywhere the module is installed.

Schema rules (kept small on purpose): `str`, `int`, `float`, `bool`, `list[X]`, `dict`,
`Literal[...]` (an enum) and `X | None` (optional); a parameter without a default is required;
parameter descriptions come from a Google-style `Args:` section of the docstring, the tool's
description from the docstring's first paragraph. A parameter type outside these rules raises
ValueError: a schema guessed wrong would teach the model wrong calls.
"""

from __future__ import annotations

import importlib
import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

from imaginarium.errors import InputError
from imaginarium.schemas.toolspec import ToolSource, ToolSpec

PYTHON_FORMAT = "python"
_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


def python_tool(
    func: Callable[..., Any],
    *,
    name: str | None = None,
    returns: dict[str, Any] | None = None,
    category: str | None = None,
    file: str | None = None,
    pointer: str = "",
) -> ToolSpec:
    """The ToolSpec of a module-level function (its schema from its signature and docstring)."""
    qualname = func.__qualname__
    if "<" in qualname or "." in qualname:
        raise ValueError(f"{func.__module__}.{qualname}: only module-level functions can be tools")
    description, arg_docs = _parse_docstring(inspect.getdoc(func) or "")
    hints = typing.get_type_hints(func)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ValueError(f"{qualname}: *args and **kwargs cannot be described as tool parameters")
        if param.name not in hints:
            raise ValueError(f"{qualname}: parameter {param.name!r} needs a type annotation")
        schema = _schema_of(hints[param.name], f"{qualname}({param.name})")
        if param.name in arg_docs:
            schema["description"] = arg_docs[param.name]
        if param.default is param.empty:
            required.append(param.name)
        elif param.default is not None:
            schema["default"] = param.default
        properties[param.name] = schema
    parameters: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        parameters["required"] = required
    tool_name = name or func.__name__
    return ToolSpec(
        name=tool_name,
        source_name=f"{func.__module__}:{qualname}",
        description=description,
        parameters=parameters,
        returns=returns,
        category=category,
        source=ToolSource(format=PYTHON_FORMAT, file=file, pointer=pointer),
    )


def resolve(tool: ToolSpec) -> Callable[..., Any]:
    """Import the function a Python tool refers to (`source_name` = "module:function")."""
    reference = tool.source_name
    module_name, _, attribute = reference.partition(":")
    if tool.source.format != PYTHON_FORMAT or not module_name or not attribute:
        raise InputError(f"tool {tool.name!r} is not a Python tool reference (module:function): {reference!r}")
    try:
        func = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"tool {tool.name!r}: cannot import {reference!r} ({exc})") from None
    if not callable(func):
        raise InputError(f"tool {tool.name!r}: {reference!r} is not callable")
    return func


LISTING_KEY = "python_tools"


def detect(document: Any) -> bool:
    """True for a listing of Python tools: `{"python_tools": ["module:function" | "module", ...]}`."""
    return isinstance(document, dict) and isinstance(document.get(LISTING_KEY), list)


_REFERENCE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*)?$")
# The package's own tools (executor/builtins.py) import without asking: their code ships here.
_OWN_PACKAGE = "imaginarium."


def load(document: Any, file: str, allow_python_import: bool = False) -> list[ToolSpec]:
    """The ToolSpecs of a listing (the `python` importer format of `imaginarium tools import`).

    Each entry is "module:function", or "module" for all tools its `TOOLS()` returns (the way
    a module ships tools with hand-written `returns` schemas, as builtins.py does). Importing a
    module runs its code, so a listing naming modules other than the package's own needs
    `allow_python_import` (`--allow-python-import`); only the modules named are imported.
    """
    if not detect(document):
        raise InputError(f'not a Python tool listing: expected {{"{LISTING_KEY}": ["module:function", ...]}}',
                         where=file)
    references = []
    for index, reference in enumerate(document[LISTING_KEY]):
        at = f"{file}#/{LISTING_KEY}/{index}"
        if not isinstance(reference, str) or not _REFERENCE.match(reference):
            raise InputError(f"expected 'module:function' or 'module', got {reference!r}", where=at)
        references.append(reference)
    foreign = sorted({r.partition(":")[0] for r in references if not r.startswith(_OWN_PACKAGE)})
    if foreign and not allow_python_import:
        raise InputError(f"importing this listing runs the code of module(s) {', '.join(foreign[:5])}: pass "
                         "--allow-python-import to allow it", where=file)
    tools = []
    for index, reference in enumerate(references):
        pointer = f"/{LISTING_KEY}/{index}"
        at = f"{file}#{pointer}"
        module_name, _, attribute = reference.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise InputError(f"cannot import module {module_name!r} ({exc})", where=at) from None
        except Exception as exc:  # the module's own code failed while importing
            raise InputError(f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}", where=at) from None
        if attribute:
            func = getattr(module, attribute, None)
            if not callable(func):
                raise InputError(f"module {module_name!r} has no function {attribute!r}", where=at)
            try:
                tools.append(python_tool(func, file=file, pointer=pointer))
            except ValueError as exc:
                raise InputError(str(exc), where=at) from None
        else:
            listed = getattr(module, "TOOLS", None)
            if not callable(listed):
                raise InputError(f"module {module_name!r} has no TOOLS(); name a function (module:function)", where=at)
            source = ToolSource(format=PYTHON_FORMAT, file=file, pointer=pointer)
            tools.extend(tool.model_copy(update={"source": source}) for tool in listed())
    return tools


def _schema_of(hint: Any, where: str) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            inner = _schema_of(rest[0], where)
            if "type" in inner:
                return {**inner, "type": [inner["type"], "null"]}
            return {"anyOf": [inner, {"type": "null"}]}
    if hint is list or origin is list:
        return {"type": "array", "items": _schema_of(args[0], where)} if args else {"type": "array"}
    if hint is dict or origin is dict:
        return {"type": "object"}
    raise ValueError(f"{where}: type {hint!r} has no JSON Schema rule (use str, int, float, bool, list, dict, Literal)")


_SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Raises|Examples?|Yields|Notes?):\s*$")
_ARG_LINE = re.compile(r"^\s{2,}(\w+)\s*(?:\([^)]*\))?:\s*(.*)$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(first paragraph, {argument: description}) of a Google-style docstring."""
    lines = doc.splitlines()
    description_lines: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line.strip()):
            break
        description_lines.append(line.strip())
    arg_docs: dict[str, str] = {}
    section = None
    current = None
    for line in lines:
        match = _SECTION.match(line.strip())
        if match and not line.startswith(" "):
            section = match.group(1)
            current = None
            continue
        if section in ("Args", "Arguments", "Parameters"):
            arg = _ARG_LINE.match(line)
            if arg:
                current = arg.group(1)
                arg_docs[current] = arg.group(2).strip()
            elif current and line.strip():
                arg_docs[current] += " " + line.strip()
    return " ".join(description_lines), arg_docs
