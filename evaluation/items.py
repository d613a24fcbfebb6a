"""Prediction files -> `EvalItem`s, whatever their format, plus the bundled STE metadata.

Formats (`--format`):
- `ste`: the STE paper's results shape: a JSON object API name -> list of items (or a JSON
  list of items), each with `query`, `API_name_list`, `action` (gold API), `action_input`
  (gold arguments, a JSON string or object) and `model_output` (the raw text). The paper's
  cached fields `no_call`, `err`, `api_match`, `args_correct` are kept aside (`stored`): they
  are never used to compute parse or API match, only `args_correct` as a stored judgment.
- `jsonl`: one STE-shaped item per line (the same keys). `imaginarium predict` writes `ste`.
- `chat`: one object per line with `gold` (`{"name", "arguments"}`), `prediction` (an OpenAI
  assistant message with `tool_calls` or `content`; a plain string is read as text),
  optional `query` and `tools` (OpenAI-format tools shown to the model; their parameter
  schemas guide AST matching).

Every row is checked before anything is scored, generated or ranked (`BadRows`): a bad row is one
line naming `FILE:LINE` (JSONL) or `FILE#/pointer` (a JSON document) and the field at fault.
Without `skip_invalid` the first bad row is an InputError (with how many more there are); with
it, bad rows are left out and reported on stderr as a count and the first five reasons. The
readers (`read_document`, `read_jsonl`, in trice/questions.py, the lower layer, since `rank`
uses them too) refuse a file that is not UTF-8, JSON nested deeper than MAX_DEPTH levels,
NaN / Infinity and lone surrogates, naming the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from imaginarium.errors import InputError
from imaginarium.schemas.importers.bfcl import bfcl_parameters, uses_bfcl_types
from imaginarium.schemas.jsonpointer import join
from imaginarium.trice.questions import BadRows, JsonProblem, Row, loads, read_document, read_jsonl, value_problem

FORMATS = ("ste", "chat", "jsonl")
STE_DATA = Path(__file__).parent / "data" / "ste"
STORED_FIELDS = ("no_call", "err", "api_match", "args_correct")
ANY, OPTIONAL = "$any", "$optional"  # the gold syntax of ast matching (schemas/matching.py)


# -- rows of a predictions or test file ------------------------------------------------------------
def dotted(prefix: str, path: list[str | int]) -> str:
    """`prefix` extended by a path: dotted("gold", ["arguments", "a", 0]) == "gold.arguments.a[0]"."""
    out = prefix
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def check_values(row: Any, where: str) -> None:
    """Raise InputError naming the field of the first value `value_problem` refuses."""
    problem = value_problem(row)
    if problem:
        path, message = problem
        raise InputError(f"field {dotted('', path)}: {message}" if path else message, where=where)


def document_rows(path: Path, data: Any, bad: BadRows) -> Iterator[Row]:
    """The items of an STE-shaped document (object API name -> list of items, or a list of
    items), each named by its JSON pointer; a group that is not a list goes to `bad`."""
    if isinstance(data, list):
        yield from (Row(f"{path}#{join('', i)}", i, row) for i, row in enumerate(data))
        return
    if not isinstance(data, dict):
        raise InputError("expected an object of API name -> items, or a list of items", where=str(path))
    index = 0
    for api, group in data.items():
        if not isinstance(group, list):
            kind = "null" if group is None else type(group).__name__
            bad.add(InputError(f"group {api!r}: must be a list of items, not {kind}", where=f"{path}#{join('', api)}"))
            continue
        for i, row in enumerate(group):
            yield Row(f"{path}#{join('', api, i)}", index, row)
            index += 1


# -- prediction items -------------------------------------------------------------------------------
@dataclass
class EvalItem:
    index: int
    api: str                      # the gold API name
    gold: dict[str, Any]          # the gold arguments
    output: Any                   # the raw model output: text or an assistant message
    query: str = ""
    description: str = ""                                   # the gold tool's description
    tools: list[str] = field(default_factory=list)          # names of the tools shown
    schemas: dict[str, dict] = field(default_factory=dict)  # tool name -> parameters schema
    stored: dict[str, Any] = field(default_factory=dict)    # the STE paper's cached fields
    # Several gold calls (chat format, `gold` a list; [] = no call expected): (name, arguments)
    # each, matched one-to-one with the predicted calls, in order only when `ordered`. None: one
    # gold call (`api`, `gold`), scored as the STE metrics always were.
    golds: list[tuple[str, dict[str, Any]]] | None = None
    ordered: bool = False


def load_predictions(path: str | Path, fmt: str = "ste", *, args_match: str = "string",
                     bad: BadRows | None = None) -> list[EvalItem]:
    """Read a predictions file, every row checked.

    Args:
        path: the predictions file.
        fmt: its format (FORMATS).
        args_match: how arguments will be judged; `ast` also checks the tools' parameter
            schemas and the gold's `$any` alternatives, which the AST matcher reads.
        bad: where bad rows go; None: the first bad row raises (after the whole file is read).

    Raises:
        InputError: a missing or unreadable file, or (without `bad`) a malformed row, naming
            the file, the line (or the item's JSON pointer) and the field.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    if not path.is_file():
        raise InputError("no such predictions file", where=str(path))
    collect = bad if bad is not None else BadRows()
    rows = document_rows(path, read_document(path), collect) if fmt == "ste" else read_jsonl(path, collect)
    maker = _chat_item if fmt == "chat" else _ste_item
    items: list[EvalItem] = []
    for row in rows:
        try:
            check_values(row.value, row.where)
            item = maker(len(items), row.value, row.where, args_match == "ast")
            if args_match == "bfcl":
                for name, arguments in item.golds if item.golds is not None else [(item.api, item.gold)]:
                    check_possible_answers(arguments, row.where, name)
            items.append(item)
        except InputError as exc:
            collect.add(exc)
    if bad is None:
        collect.check()
    return items


def json_object(value: Any, where: str, name: str, ast: bool = False) -> dict[str, Any]:
    """Field `name`: a JSON object, or its JSON text (empty text: {}); `ast` also checks `$any`."""
    if isinstance(value, str):
        try:
            value = loads(value) if value.strip() else {}
        except JsonProblem as exc:
            raise InputError(f"field {name}: {exc.message}", where=where) from None
        check_values(value, where)
    if not isinstance(value, dict):
        raise InputError(f"field {name}: must be a JSON object", where=where)
    if ast:
        _check_alternatives(value, where, name)
    return value


def _check_alternatives(value: Any, where: str, name: str) -> None:
    """The AST matcher reads `{"$any": [...]}` as alternatives: it must hold a list."""
    stack: list[tuple[Any, str]] = [(value, name)]
    while stack:
        node, at = stack.pop()
        if isinstance(node, dict):
            if ANY in node and not isinstance(node[ANY], list):
                raise InputError(f"field {at}: {ANY} must be a list of alternatives", where=where)
            stack.extend((item, f"{at}.{key}") for key, item in node.items())
        elif isinstance(node, list):
            stack.extend((item, f"{at}[{i}]") for i, item in enumerate(node))


def _require(row: Any, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(row, dict):
        raise InputError("an item must be a JSON object", where=where)
    for key in keys:
        if key not in row:
            raise InputError(f"missing field {key}", where=where)


def check_name(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"field {name}: must be a non-empty string (a tool name)", where=where)
    return value


def _optional_text(row: dict[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"field {key}: must be a string", where=where)
    return value


def check_names(value: Any, where: str, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(f"field {name}: must be a list of tool names", where=where)
    return [check_name(item, where, f"{name}[{i}]") for i, item in enumerate(value)]


def check_output(value: Any, where: str, name: str) -> None:
    """A model output is text, null, or an object (an assistant message or a call) whose
    `tool_calls`, when given, is a list of objects."""
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, dict):
        raise InputError(f"field {name}: must be text or an assistant message (an object)", where=where)
    calls = value.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise InputError(f"field {name}.tool_calls: must be a list of calls", where=where)
    for i, call in enumerate(calls or []):
        if not isinstance(call, dict):
            raise InputError(f"field {name}.tool_calls[{i}]: must be an object", where=where)


def _ste_item(index: int, row: Any, where: str, ast: bool = False) -> EvalItem:
    _require(row, ("action", "action_input", "model_output"), where)
    check_output(row["model_output"], where, "model_output")
    return EvalItem(
        index=index,
        api=check_name(row["action"], where, "action"),
        gold=json_object(row["action_input"], where, "action_input", ast),
        output=row["model_output"],
        query=_optional_text(row, "query", where),
        description=_optional_text(row, "api_descriptions", where),
        tools=check_names(row.get("API_name_list"), where, "API_name_list"),
        stored={key: row[key] for key in STORED_FIELDS if key in row},
    )


def check_possible_answers(arguments: dict[str, Any], where: str, name: str) -> None:
    """BFCL's gold form (`--args-match bfcl`): each parameter maps to a list of acceptable values."""
    for key, values in arguments.items():
        if not isinstance(values, list):
            raise InputError(f"gold {name}.{key}: with --args-match bfcl a gold value is a list of acceptable "
                             f"values ('' among them: may be omitted), not {json.dumps(values)[:40]}", where=where)


def _gold_calls(value: Any, where: str, ast: bool) -> list[tuple[str, dict[str, Any]]]:
    calls = []
    for i, gold in enumerate(value):
        if not isinstance(gold, dict) or not isinstance(gold.get("name"), str):
            raise InputError(f"field gold[{i}]: must be an object with a name", where=where)
        name = check_name(gold["name"], where, f"gold[{i}].name")
        calls.append((name, json_object(gold.get("arguments", {}), where, f"gold[{i}].arguments", ast)))
    return calls


def _chat_item(index: int, row: Any, where: str, ast: bool = False) -> EvalItem:
    _require(row, ("gold", "prediction"), where)
    gold = row["gold"]
    golds = None
    if isinstance(gold, list):  # several gold calls, or none ([]: no call is right)
        golds = _gold_calls(gold, where, ast)
        gold = {"name": golds[0][0], "arguments": golds[0][1]} if golds else {"name": "(no call)", "arguments": {}}
    if not isinstance(gold, dict) or not isinstance(gold.get("name"), str):
        raise InputError("field gold: must be an object with a name, or a list of them", where=where)
    name = check_name(gold["name"], where, "gold.name")
    ordered = row.get("ordered", False)
    if not isinstance(ordered, bool):
        raise InputError("field ordered: must be true or false", where=where)
    check_output(row["prediction"], where, "prediction")
    tools = row.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise InputError("field tools: must be a list of tools", where=where)
    schemas, descriptions = {}, {}
    for i, tool in enumerate(tools or []):
        fn = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or "name" not in fn:
            raise InputError(f"field tools[{i}]: each tool needs a name", where=where)
        tool_name = check_name(fn["name"], where, f"tools[{i}].name")
        parameters = fn.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise InputError(f"field tools[{i}].parameters: must be a JSON Schema object", where=where)
        if parameters and uses_bfcl_types(parameters):  # a raw BFCL doc: its types read as JSON Schema
            parameters = bfcl_parameters(parameters, where, f"/tools/{i}/parameters")
        if ast and parameters:
            problem = ast_schema_problem(parameters)
            if problem:
                raise InputError(f"field tools[{i}].parameters: {problem}", where=where)
        schemas[tool_name] = parameters or {}
        description = fn.get("description")
        descriptions[tool_name] = description if isinstance(description, str) else ""
    return EvalItem(
        index=index,
        api=name,
        gold=json_object(gold.get("arguments", {}), where, "gold.arguments", ast),
        output=row["prediction"],
        query=_optional_text(row, "query", where),
        description=descriptions.get(name, ""),
        tools=list(schemas),
        schemas=schemas,
        stored={key: row[key] for key in ("args_correct",) if key in row},
        golds=golds,
        ordered=ordered,
    )


def ast_schema_problem(schema: dict[str, Any]) -> str | None:
    """Why the AST matcher cannot use a parameters schema: not valid JSON Schema (Draft 2020-12),
    or a property whose schema is not an object (the matcher reads each property's type)."""
    from imaginarium.schemas.toolspec import check_schema

    try:
        check_schema(schema)
    except ValueError as exc:
        return str(exc)
    stack: list[tuple[Any, str]] = [(schema, "")]
    while stack:
        node, at = stack.pop()
        properties = node.get("properties") if isinstance(node, dict) else None
        for key, sub in (properties or {}).items():
            here = f"{at}/properties/{key}"
            if not isinstance(sub, dict):
                return f"the schema of property {here} must be an object, not {json.dumps(sub)}"
            stack.append((sub, here))
        items = node.get("items") if isinstance(node, dict) else None
        if isinstance(items, dict):
            stack.append((items, f"{at}/items"))
    return None


@lru_cache(maxsize=1)
def ste_api_list() -> tuple[str, ...]:
    """The 50 APIs of the STE test set (bundled copy of tool_metadata/API_list.json)."""
    return tuple(json.loads((STE_DATA / "API_list.json").read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def ste_string_match_apis() -> frozenset[str]:
    """The 31 APIs the STE paper checks by string match (tool_metadata/string_match_APIs.json)."""
    return frozenset(json.loads((STE_DATA / "string_match_APIs.json").read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def ste_revised_gold() -> frozenset[tuple[str, str]]:
    """(API, query) of the test items whose published gold differs from the paper's (see the file)."""
    data = json.loads((STE_DATA / "revised_gold.json").read_text(encoding="utf-8"))
    return frozenset((row["api"], row["query"]) for row in data["items"])


def load_batches(path: str | Path) -> dict[str, list[str]]:
    """Batches of APIs: a list of lists (CL_batches.json's shape, named batch_0..) or name -> list."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such batches file", where=str(path))
    data = read_document(path)
    if isinstance(data, list):
        data = {f"batch_{i}": batch for i, batch in enumerate(data)}
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in data.values()
    ):
        raise InputError("expected a list of lists of API names, or an object name -> list", where=str(path))
    return data
