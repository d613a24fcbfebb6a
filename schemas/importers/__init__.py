"""Importers: tool descriptions in other formats -> ToolSpecs.

Each importer module exposes `detect(document) -> bool` and
`load(document, file: str) -> list[ToolSpec]`, where `document` is the parsed JSON/YAML of one
file. `import_file` reads a file, picks the importer (given, or the first whose `detect` says
yes) and returns the ToolSpecs; problems raise InputError naming the file and JSON pointer.

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
from imaginarium.schemas.importers.base import Skipped, bare_message, where
from imaginarium.schemas.toolspec import ToolSpec

# Auto-detection tries these in order: the most specific shapes first.
FormatName = Literal["openapi", "mcp", "openai", "toolbench", "python"]
FORMATS: tuple[str, ...] = get_args(FormatName)


def read_document(path: str | Path) -> Any:
    """The parsed JSON or YAML content of `path` (told apart by content, not by file name).

    Text that opens with `{` or `[` is JSON (YAML would accept most broken JSON as flow style
    and hide the mistake); anything else is YAML, normalised to what the same data in JSON
    would be. Errors name the line and column.
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
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg}", where=f"{path}:{exc.lineno}:{exc.colno}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise InputError(f"invalid YAML: {exc.problem or exc.context}", where=at) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", where=str(path)) from None
    # As JSON would have it: unquoted dates become strings, integer keys (`200:`) string keys.
    return json.loads(json.dumps(document, default=str))


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


def import_file(path: str | Path, format: str = "auto", errors: list[Skipped] | None = None) -> list[ToolSpec]:
    """The ToolSpecs in one file. With an `errors` list, broken tools are recorded there and
    skipped (the whole file where its importer cannot skip single tools); without, they raise."""
    file = str(path)
    document = read_document(path)
    module = importer(detect_format(document, file) if format == "auto" else format)
    if errors is None:
        return module.load(document, file)
    if "errors" in inspect.signature(module.load).parameters:
        return module.load(document, file, errors=errors)
    try:
        return module.load(document, file)
    except InputError as exc:
        errors.append((exc.where or file, bare_message(exc)))
        return []


def import_files(
    paths: Iterable[str | Path], format: str = "auto", skip_invalid: bool = False
) -> tuple[list[ToolSpec], list[Skipped]]:
    """All tools of all files, and the skipped ones as (where, why).

    Without `skip_invalid` any problem raises InputError and nothing is returned. With it, a
    broken file or tool is skipped and recorded. Two tools with the same name (after
    sanitising) are a problem of the later one; the message names both places.
    """
    skipped: list[Skipped] | None = [] if skip_invalid else None
    tools: list[ToolSpec] = []
    first_seen: dict[str, str] = {}
    for path in paths:
        try:
            found = import_file(path, format, errors=skipped)
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
