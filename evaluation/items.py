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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from imaginarium.errors import InputError

FORMATS = ("ste", "chat", "jsonl")
STE_DATA = Path(__file__).parent / "data" / "ste"
STORED_FIELDS = ("no_call", "err", "api_match", "args_correct")


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


def load_predictions(path: str | Path, fmt: str = "ste") -> list[EvalItem]:
    """Read a predictions file; a malformed item raises InputError naming file and item."""
    path = Path(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    if not path.is_file():
        raise InputError("no such predictions file", where=str(path))
    if fmt == "ste":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"not JSON ({exc.msg}, line {exc.lineno})", where=str(path)) from None
        if isinstance(data, dict):
            rows = [(f"{path}: {api}[{i}]", row) for api, group in data.items() for i, row in enumerate(group)]
        elif isinstance(data, list):
            rows = [(f"{path}: item {i}", row) for i, row in enumerate(data)]
        else:
            raise InputError("expected an object of API name -> items, or a list of items", where=str(path))
        return [_ste_item(i, row, where) for i, (where, row) in enumerate(rows)]
    items: list[EvalItem] = []
    for number, row in _jsonl(path):
        where = f"{path}:{number}"
        maker = _ste_item if fmt == "jsonl" else _chat_item
        items.append(maker(len(items), row, where))
    return items


def _jsonl(path: Path):
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"not JSON ({exc.msg})", where=f"{path}:{number}") from None


def _arguments(value: Any, where: str, name: str) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise InputError(f"field {name}: not JSON ({exc.msg})", where=where) from None
    if not isinstance(value, dict):
        raise InputError(f"field {name}: must be a JSON object", where=where)
    return value


def _require(row: Any, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(row, dict):
        raise InputError("an item must be a JSON object", where=where)
    for key in keys:
        if key not in row:
            raise InputError(f"missing field {key}", where=where)


def _ste_item(index: int, row: Any, where: str) -> EvalItem:
    _require(row, ("action", "action_input", "model_output"), where)
    return EvalItem(
        index=index,
        api=str(row["action"]),
        gold=_arguments(row["action_input"], where, "action_input"),
        output=row["model_output"],
        query=str(row.get("query", "")),
        description=str(row.get("api_descriptions", "")),
        tools=list(row.get("API_name_list") or []),
        stored={key: row[key] for key in STORED_FIELDS if key in row},
    )


def _chat_item(index: int, row: Any, where: str) -> EvalItem:
    _require(row, ("gold", "prediction"), where)
    gold = row["gold"]
    if not isinstance(gold, dict) or not isinstance(gold.get("name"), str):
        raise InputError("field gold: must be an object with a name", where=where)
    schemas, descriptions = {}, {}
    for tool in row.get("tools") or []:
        fn = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or "name" not in fn:
            raise InputError("field tools: each tool needs a name", where=where)
        schemas[fn["name"]] = fn.get("parameters") or {}
        descriptions[fn["name"]] = str(fn.get("description", ""))
    return EvalItem(
        index=index,
        api=gold["name"],
        gold=_arguments(gold.get("arguments", {}), where, "gold.arguments"),
        output=row["prediction"],
        query=str(row.get("query", "")),
        description=descriptions.get(gold["name"], ""),
        tools=list(schemas),
        schemas=schemas,
        stored={key: row[key] for key in ("args_correct",) if key in row},
    )


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
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON ({exc.msg})", where=str(path)) from None
    if isinstance(data, list):
        data = {f"batch_{i}": batch for i, batch in enumerate(data)}
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in data.values()
    ):
        raise InputError("expected a list of lists of API names, or an object name -> list", where=str(path))
    return data
