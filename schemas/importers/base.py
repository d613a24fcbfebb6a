"""What every importer does the same way: build a ToolSpec, report problems with a pointer.

Importers walk their format and hand each tool's fields to `make_tool`, which names the tool
(`safe_name`), validates it as a ToolSpec and turns a validation error into an InputError at
`FILE#/json/pointer` of the field at fault. `load_each` runs that per tool and either stops at
the first broken tool or, given an `errors` list, records it and goes on (`--skip-invalid`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pydantic import ValidationError

from imaginarium.errors import InputError
from imaginarium.schemas.jsonpointer import join
from imaginarium.schemas.toolspec import ToolSource, ToolSpec, safe_name

# A tool that could not be imported: (where, why), where = "FILE#/pointer".
Skipped = tuple[str, str]

EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


def where(file: str, pointer: str) -> str:
    return f"{file}#{pointer}"


def bare_message(exc: InputError) -> str:
    """The message of an InputError without its `where: ` prefix."""
    text = str(exc)
    prefix = f"{exc.where}: "
    return text[len(prefix) :] if exc.where and text.startswith(prefix) else text


def make_tool(
    *,
    file: str,
    pointer: str,
    format: str,
    source_name: str,
    description: str = "",
    parameters: dict[str, Any] | None = None,
    returns: dict[str, Any] | None = None,
    category: str | None = None,
    field_pointers: dict[str, str] | None = None,
    **extra: Any,
) -> ToolSpec:
    """A validated ToolSpec; an invalid field raises InputError at that field's pointer.

    `field_pointers` maps ToolSpec fields (parameters, returns, ...) to where they sit in the
    source document, so "invalid JSON Schema" names the exact place to fix. `extra` holds the
    other ToolSpec fields (a live binding, annotations).
    """
    try:
        return ToolSpec(
            name=safe_name(source_name),
            source_name=source_name,
            description=description,
            parameters=EMPTY_PARAMETERS if parameters is None else parameters,
            returns=returns,
            category=category,
            source=ToolSource(format=format, file=file, pointer=pointer),
            **extra,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        at = (field_pointers or {}).get(field, pointer)
        raise InputError(f"{field or 'tool'}: {message}", where=where(file, at)) from None


def load_each(
    entries: Iterable[tuple[str, Any]],
    build: Callable[[Any, str], ToolSpec],
    file: str,
    errors: list[Skipped] | None,
) -> list[ToolSpec]:
    """`build(entry, pointer)` for every entry; a broken one raises, or is recorded in `errors`."""
    tools = []
    for pointer, entry in entries:
        try:
            tools.append(build(entry, pointer))
        except InputError as exc:
            if errors is None:
                raise
            errors.append((exc.where or where(file, pointer), bare_message(exc)))
    return tools


def require_object(value: Any, file: str, pointer: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{what} must be an object, not {type(value).__name__}", where=where(file, pointer))
    return value


def require_name(entry: dict[str, Any], key: str, file: str, pointer: str) -> str:
    name = entry.get(key)
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"missing or empty {key!r}", where=where(file, join(pointer, key)))
    return name



MAX_DEPTH = 128  # nesting levels of a source document; real API descriptions stay far below


def check_document(document: Any, file: str) -> None:
    """Refuse what no importer should have to handle, naming the JSON pointer: nesting deeper
    than MAX_DEPTH, numbers that JSON cannot carry (NaN, Infinity, 1e999: a schema with them
    would be written and then refused), strings with lone surrogates (not UTF-8)."""
    import math

    stack: list[tuple[Any, str, int]] = [(document, "", 0)]
    while stack:
        node, pointer, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InputError(f"nested more than {MAX_DEPTH} levels deep", where=where(file, pointer))
        if isinstance(node, float) and not math.isfinite(node):
            raise InputError(f"{node} is not a JSON number (non-finite numbers are refused)", where=where(file, pointer))
        if isinstance(node, str):
            _check_text(node, file, pointer)
        elif isinstance(node, dict):
            for key, value in node.items():
                here = join(pointer, str(key))
                _check_text(str(key), file, here)
                stack.append((value, here, depth + 1))
        elif isinstance(node, list):
            stack.extend((value, join(pointer, index), depth + 1) for index, value in enumerate(node))


def _check_text(text: str, file: str, pointer: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        safe = pointer.encode("utf-8", "backslashreplace").decode("utf-8")
        raise InputError(f"text with a lone surrogate (\\u{ord(text[exc.start]):04x}) is not UTF-8",
                         where=where(file, safe)) from None
