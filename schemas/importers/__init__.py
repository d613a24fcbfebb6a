"""Importers: tool descriptions in other formats -> ToolSpecs.

Each importer module exposes `detect(document) -> bool` and
`load(document, file: str) -> list[ToolSpec]`, where `document` is the parsed JSON/YAML of one
file (of a JSON Lines file: the list of its values). `import_file` reads a file, picks the
importer (given, or the first whose `detect` says yes) and returns the ToolSpecs; problems
raise InputError naming the file and JSON pointer.

An importer whose `load` also takes `errors: list | None` can skip single broken tools (it
appends `(where, why)` and goes on); for one that cannot, `--skip-invalid` skips its whole file.
Importer modules are imported by name when needed, so a format whose module is missing is
simply unknown. Writing a tools file from files and live MCP servers is
`imaginarium.executor.tools_import.import_tools` (listing a live server needs the executor).
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, get_args

import yaml

from imaginarium.errors import InputError
from imaginarium.schemas.importers.base import MAX_DEPTH, Skipped, bare_message, check_document, where
from imaginarium.schemas.toolspec import ToolSpec

# Auto-detection tries these in order: the most specific shapes first.
# bfcl before openai: BFCL docs are OpenAI-shaped but say "dict", "float", "String", ... as types.
FormatName = Literal["openapi", "mcp", "bfcl", "openai", "toolbench", "python"]
FORMATS: tuple[str, ...] = get_args(FormatName)


def read_document(path: str | Path) -> Any:
    """The parsed JSON or YAML content of `path` (told apart by content, not by file name).

    Text that opens with `{` or `[` is JSON (YAML would accept most broken JSON as flow style
    and hide the mistake); anything else is YAML, normalised to what the same data in JSON
    would be. JSON that goes on after its first value is read as JSON Lines: the list of the
    values, one per line (blank lines skipped). Errors name the line and column.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", where=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", where=str(path)) from None
    if text.lstrip().startswith(("{", "[")):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            values = _json_lines(text, path) if exc.msg == "Extra data" else None
            if values is None:
                raise InputError(f"invalid JSON: {exc.msg}", where=f"{path}:{exc.lineno}:{exc.colno}") from None
            document = values
        except RecursionError:
            raise InputError(f"nested more than {MAX_DEPTH} levels deep", where=str(path)) from None
        check_document(document, str(path))
        return document
    try:
        document = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise InputError(f"invalid YAML: {exc.problem or exc.context}", where=at) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", where=str(path)) from None
    except RecursionError:
        raise InputError(f"nested more than {MAX_DEPTH} levels deep", where=str(path)) from None
    # As JSON would have it: unquoted dates become strings, integer keys (`200:`) string keys.
    document = _as_json(document, 0, str(path))
    check_document(document, str(path))
    return document


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: large specs parse ~10x faster


def _as_json(node: Any, depth: int, file: str) -> Any:
    """YAML data as the same data in JSON: keys as strings, dates and other scalars as text.
    Depth-limited, which also stops a recursive YAML anchor (a node that contains itself)."""
    if depth > MAX_DEPTH:
        raise InputError(f"nested more than {MAX_DEPTH} levels deep (or a YAML anchor that contains itself)",
                         where=file)
    if isinstance(node, dict):
        return {_key(key): _as_json(value, depth + 1, file) for key, value in node.items()}
    if isinstance(node, list):
        return [_as_json(value, depth + 1, file) for value in node]
    if node is None or isinstance(node, (str, int, float)):
        return node
    return str(node)


def _key(key: Any) -> str:
    if isinstance(key, bool) or key is None:
        return json.dumps(key)  # as JSON writes them: true, false, null
    return str(key)


def _json_lines(text: str, path: Path) -> list[Any] | None:
    """The values of JSON Lines `text`; None when its first line is no JSON value (then the text
    is broken JSON, not JSON Lines, and the error at its own place says more)."""
    values = []
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): U+2028 may sit in a string
        if line.strip():
            try:
                values.append(json.loads(line))
            except json.JSONDecodeError as exc:
                if not values:
                    return None
                raise InputError(f"invalid JSON Lines: {exc.msg}", where=f"{path}:{number}:{exc.colno}") from None
            except RecursionError:
                raise InputError(f"nested more than {MAX_DEPTH} levels deep", where=f"{path}:{number}") from None
    return values


def importer(format: str) -> ModuleType:
    """The importer module for `format`; InputError if there is none."""
    if format not in FORMATS:
        raise InputError(f"unknown format {format!r} (known: {', '.join(FORMATS)})")
    module_name = f"{__name__}.{format}"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise InputError(f"unknown format {format!r}: its importer is not installed") from None


def detect_format(document: Any, file: str) -> str:
    """The first format in FORMATS whose importer recognises `document`."""
    for format in FORMATS:
        try:
            module = importer(format)
        except InputError:
            continue
        if module.detect(document):
            return format
    raise InputError(f"unknown format: not recognisably any of {', '.join(FORMATS)}", where=file)


def import_file(path: str | Path, format: str = "auto", errors: list[Skipped] | None = None, *,
                warnings: list[Skipped] | None = None, **options: Any) -> list[ToolSpec]:
    """The ToolSpecs in one file. With an `errors` list, broken tools are recorded there and
    skipped (the whole file where its importer cannot skip single tools); without, they raise.
    What an importer drops without dropping a tool goes to `warnings`; `options` (such as
    `allow_python_import`) reach the importers that take them.

    Raises:
        InputError: whatever is wrong with the file, one line naming it (and the pointer).
    """
    file = str(path)
    document = read_document(path)
    forced = format != "auto"
    if not forced:
        format = detect_format(document, file)
    module = importer(format)
    if forced and not module.detect(document):
        try:
            guess = f"; it looks like {detect_format(document, file)}"
        except InputError:
            guess = ""
        raise InputError(f"not a {format} document, as --format {format} says{guess}", where=file)
    accepted = inspect.signature(module.load).parameters
    extra = {key: value for key, value in options.items() if key in accepted}
    if "warnings" in accepted:
        extra["warnings"] = warnings
    if errors is not None and "errors" in accepted:
        extra["errors"] = errors
    try:
        return module.load(document, file, **extra)
    except InputError as exc:
        if errors is None or "errors" in accepted:
            raise
        errors.append((exc.where or file, bare_message(exc)))
        return []
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError) as exc:
        # An importer met a shape it does not check: still the file's fault, and one line.
        raise InputError(f"malformed {format} document ({type(exc).__name__}: {str(exc)[:200]})", where=file) from None


def import_files(
    paths: Iterable[str | Path], format: str = "auto", skip_invalid: bool = False, *,
    warnings: list[Skipped] | None = None, **options: Any,
) -> tuple[list[ToolSpec], list[Skipped]]:
    """All tools of all files, and the skipped ones as (where, why).

    Without `skip_invalid` any problem raises InputError and nothing is returned. With it, a
    broken file or tool is skipped and recorded. Two tools with the same name (after
    sanitising) are a problem of the later one; the message names both places. `warnings` and
    `options` are passed to `import_file`.
    """
    skipped: list[Skipped] | None = [] if skip_invalid else None
    tools: list[ToolSpec] = []
    first_seen: dict[str, str] = {}
    for path in paths:
        try:
            found = import_file(path, format, errors=skipped, warnings=warnings, **options)
        except InputError as exc:
            if skipped is None:
                raise
            skipped.append((exc.where or str(path), bare_message(exc)))
            continue
        for tool in found:
            here = where(tool.source.file or "", tool.source.pointer)
            if tool.name in first_seen:
                problem = InputError(f"duplicate tool name {tool.name!r} (also at {first_seen[tool.name]})", where=here)
                if skipped is None:
                    raise problem
                skipped.append((here, bare_message(problem)))
                continue
            first_seen[tool.name] = here
            tools.append(tool)
    return tools, skipped or []
