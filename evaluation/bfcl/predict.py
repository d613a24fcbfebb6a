"""`predict --format bfcl`: run any backend over BFCL's test items and write BFCL's result format.

Input: BFCL's data directory (`--bfcl-data`, default: the installed bfcl-eval package's), the
categories to run (`--category`, default all that eval scores) and `--limit` items per category.
Each item's function docs are imported with the BFCL importer (schemas/importers/bfcl.py: BFCL's
type names read as JSON Schema; names made call-safe, mapped back on output). For Java and
JavaScript every parameter is shown as a string holding that language's source text, as BFCL
shows them to function-calling models, since its checker reads such text.

Two call formats (`--call-format`):
- `json` (default): the project's act format, constrained: `{"calls": [{"name", "arguments"}]}`
  where each call is valid for one of the shown functions (schemas.constraints.choice_schema),
  and `[]` is a refusal. Works on every backend and any model.
- `native`: the tools go to the model's own chat template (`tools=`), generation is free, and
  the text is read for the model's tool-call syntax (`parse_native`: JSON calls in any wrapper,
  `<tool_call>`, `<call>`, `[TOOL_CALLS]`, `<|python_tag|>`, or Python call syntax).

Output: JSON lines `{"id", "category", "result", "raw", "finish_reason"}` where `result` is the
decoded call list `[{"func": {"arg": value}}]` (BFCL's names), or the raw text when no call could
be read from it, which eval, like BFCL, counts as no call. Written atomically.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imaginarium.atomic import atomic_path
from imaginarium.errors import InputError
from imaginarium.evaluation.bfcl.checker import language_of
from imaginarium.evaluation.bfcl.data import BfclItem, check_category, load_categories, present_categories
from imaginarium.evaluation.bfcl.decode import python_calls
from imaginarium.evaluation.bfcl.java_js import DecodeError
from imaginarium.models.backend import Backend, Constraint, GenerationRequest
from imaginarium.schemas.constraints import choice_schema
from imaginarium.schemas.toolspec import ToolSpec, tool_doc

TEMPLATES = Path(__file__).parent.parent / "templates"
LANGUAGE_NAMES = {"python": "Python", "java": "Java", "javascript": "JavaScript"}
MAX_CALLS = 8          # calls one answer may hold (BFCL's parallel items have up to 6)
MAX_JSON_STARTS = 200  # positions tried when scanning free text for JSON calls
_WRAPPERS = re.compile(r"</?tool_call>|</?call>|\[TOOL_CALLS\]|<\|python_tag\|>|```(?:json|python)?")


def item_tools(item: BfclItem) -> list[ToolSpec]:
    """The item's function docs as ToolSpecs (Java / JavaScript parameters as source-text strings)."""
    from imaginarium.schemas.importers.bfcl import load

    language = language_of(item.category)
    docs = item.functions if language == "python" else [_as_text_params(doc, language) for doc in item.functions]
    return load(docs, f"{item.where} function")


def _as_text_params(doc: dict[str, Any], language: str) -> dict[str, Any]:
    parameters = dict(doc.get("parameters") or {})
    properties = {}
    for name, schema in (parameters.get("properties") or {}).items():
        kind = schema.get("type", "any")
        note = f"{LANGUAGE_NAMES[language]} type {kind}, written as {LANGUAGE_NAMES[language]} source text."
        properties[name] = {"type": "string", "description": f"{schema.get('description', '')} ({note})".strip()}
    return {**doc, "parameters": {**parameters, "type": "dict", "properties": properties}}


def _messages(item: BfclItem, system: str) -> list[dict[str, Any]]:
    """The item's conversation (every turn's messages, in order) after our system message;
    a system message of the item's own is kept, joined to ours."""
    turns = [message for turn in item.question for message in (turn if isinstance(turn, list) else [turn])]
    own = [m.get("content", "") for m in turns if isinstance(m, dict) and m.get("role") == "system"]
    rest = [{"role": m.get("role", "user"), "content": str(m.get("content", ""))}
            for m in turns if isinstance(m, dict) and m.get("role") != "system"]
    return [{"role": "system", "content": "\n\n".join([*own, system])}, *rest]


@functools.lru_cache(maxsize=1)
def _templates():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                              autoescape=False, trim_blocks=True, lstrip_blocks=True)


def _render(name: str, **context: Any) -> str:
    """A prompt template (loaded once per process, not once per item)."""
    return _templates().get_template(name).render(**context).strip()


def calls_schema(tools: list[ToolSpec], max_string_length: int = 256) -> dict[str, Any]:
    """`{"calls": [...]}`: up to MAX_CALLS calls, each valid for one of `tools`; [] is a refusal."""
    return {
        "type": "object",
        "properties": {"calls": {"type": "array", "items": choice_schema(tools, max_string_length=max_string_length),
                                 "maxItems": MAX_CALLS}},
        "required": ["calls"],
        "additionalProperties": False,
    }


def build_request(item: BfclItem, tools: list[ToolSpec], call_format: str, *, max_tokens: int,
                  temperature: float, top_p: float, seed: int | None) -> GenerationRequest:
    language = language_of(item.category)
    context = {"language": language, "language_name": LANGUAGE_NAMES[language]}
    if call_format == "native":
        openai_tools = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                          "parameters": t.parameters}} for t in tools]
        return GenerationRequest(messages=_messages(item, _render("bfcl_native.jinja", **context)), tools=openai_tools,
                                 max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)
    system = _render("bfcl_json.jinja", docs=[tool_doc(t) for t in tools], **context)
    constraint = Constraint.json(calls_schema(tools)) if tools else Constraint.json(
        {"type": "object", "properties": {"calls": {"type": "array", "maxItems": 0}}, "required": ["calls"]})
    return GenerationRequest(messages=_messages(item, system), constraint=constraint, max_tokens=max_tokens,
                             temperature=temperature, top_p=top_p, seed=seed)


def parse_native(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The tool calls in a model's free text: JSON call objects (`{"name", "arguments" |
    "parameters"}`, OpenAI's `{"function": {...}}`, or a list of them) in any of the common
    wrappers, else Python call syntax. [] when none can be read."""
    cleaned = _WRAPPERS.sub(" ", text)
    calls = _json_calls(cleaned)
    if calls:
        return calls
    stripped = cleaned.strip()
    if re.match(r"^\[?\s*[A-Za-z_][\w.]*\s*\(", stripped):
        try:
            return python_calls(stripped if stripped.startswith("[") else f"[{stripped}]")
        except DecodeError:
            return []
    return []


def _json_calls(text: str) -> list[tuple[str, dict[str, Any]]]:
    decoder = json.JSONDecoder()
    calls: list[tuple[str, dict[str, Any]]] = []
    position, tries = 0, 0
    while tries < MAX_JSON_STARTS:
        starts = [i for i in (text.find("{", position), text.find("[", position)) if i >= 0]
        if not starts:
            break
        start = min(starts)
        tries += 1
        try:
            value, end = decoder.raw_decode(text, start)
        except (json.JSONDecodeError, RecursionError):
            position = start + 1
            continue
        found = [c for c in map(_call_object, value if isinstance(value, list) else [value]) if c is not None]
        calls.extend(found)
        position = end if found or not isinstance(value, (dict, list)) else start + 1
    return calls


def _call_object(value: Any) -> tuple[str, dict[str, Any]] | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):
        value = value["function"]
    name = value.get("name")
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except (json.JSONDecodeError, RecursionError):
            return None
    if not isinstance(name, str) or not name or not isinstance(arguments, dict):
        return None
    return name, arguments


def to_result(calls: list[tuple[str, dict[str, Any]]], names: dict[str, str]) -> list[dict[str, Any]]:
    """Calls in BFCL's decoded form, with BFCL's own function names (`names`: shown -> BFCL)."""
    return [{names.get(name, name): arguments} for name, arguments in calls]


def predict_bfcl(out: str | Path, *, backend: Backend | Callable[[], Backend], bfcl_root: Path,
                 categories: list[str] | None = None,
                 limit: int | None = None, call_format: str = "json", max_tokens: int = 512, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int | None = 0, batch_size: int = 64, progress: bool = True) -> dict[str, Any]:
    """Predict every chosen BFCL item with `backend` and write BFCL result lines to `out`.

    Args:
        out: the result file (JSON lines), written atomically.
        backend: the model, or a function that opens it (called after every input is read).
        bfcl_root: BFCL's data directory.
        categories: BFCL categories (default: every category eval scores that `bfcl_root` has).
        limit: at most this many items per category (in file order).
        call_format: json (constrained act format) or native (the chat template's tools).

    Returns:
        A summary: items, per-category counts, backend, model, out.

    Raises:
        InputError: an unknown category, missing or malformed data files.
    """
    chosen = [check_category(c) for c in (categories or present_categories(bfcl_root))]
    data = load_categories(bfcl_root, list(dict.fromkeys(chosen)))
    items: list[BfclItem] = []
    for category in dict.fromkeys(chosen):
        in_category = [item for item in data.items.values() if item.category == category]
        items.extend(in_category[:limit] if limit else in_category)
    if not items:
        raise InputError("no BFCL items to predict", where=str(bfcl_root))
    requests, name_maps = [], []
    for item in items:
        tools = item_tools(item)
        name_maps.append({tool.name: tool.source_name for tool in tools})
        requests.append(build_request(item, tools, call_format, max_tokens=max_tokens, temperature=temperature,
                                      top_p=top_p, seed=seed))
    from imaginarium.evaluation.predict import _generate

    if not isinstance(backend, Backend):
        backend = backend()
    completions = _generate(backend, requests, batch_size)
    per_category: dict[str, int] = {}
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for item, completion, names in zip(items, completions, name_maps):
            if call_format == "json" and completion.ok and isinstance(completion.value, dict):
                result: Any = to_result([(c["name"], c["arguments"]) for c in completion.value.get("calls", [])], names)
            else:
                calls = parse_native(completion.text) if call_format == "native" else []
                result = to_result(calls, names) if calls else completion.text
            line = {"id": item.id, "category": item.category, "result": result, "raw": completion.text,
                    "finish_reason": completion.finish_reason}
            if completion.error:
                line["generation_error"] = completion.error
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
            per_category[item.category] = per_category.get(item.category, 0) + 1
    return {"items": len(items), "by_category": per_category, "backend": backend.name, "model": backend.model,
            "call_format": call_format, "out": str(out)}
