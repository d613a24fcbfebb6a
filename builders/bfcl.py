"""`build bfcl`: a held-out part of imaginarium's own trials as BFCL question and possible-answer
files, so a model can be tested on your tools with the format everyone uses (BFCL's own runner,
or `predict --format bfcl --bfcl-data DIR` + `eval --format bfcl --bfcl-data DIR`).

Which trials: those `builders.trials.held_out` picks for `holdout` and `seed` (a stable hash of
the query a trial stems from); `build sft --holdout` with the same two values leaves exactly
those out of training. Each trial's first successful call is the gold; a trial without one is
skipped (counted).

Each item: `{"id": "<category>_<n>", "question": [[{"role": "user", "content": query}]],
"function": [docs]}` and its possible answer `{"id", "ground_truth": [{name: {param: [value]}}]}`:
every argument the call gave, with that one value (BFCL's checker normalises strings; other
right values are unknown, so the gold is strict about them). Docs are in BFCL's form (`"type":
"dict"` at the top, `float` for number, `dict` for object, `any` where no type is given), which
both bfcl-eval's checker and ours read. `max_tools` 1 gives `simple_python` items (the API alone);
more gives `multiple` items (the API among its nearest tools, builders.neighbours.ToolMenu).

Files are written one at a time, each atomically; a manifest `export.json` says what was exported.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from pydantic import Field

from imaginarium.atomic import atomic_write_text
from imaginarium.builders.neighbours import ToolMenu
from imaginarium.builders.trials import check_trials, example_turns, held_out
from imaginarium.errors import InputError
from imaginarium.options import Options
from imaginarium.schemas.kinds import first_turn_calls, kind_of, kind_problem
from imaginarium.schemas.rows import TrialRecord
from imaginarium.schemas.toolspec import read_tools
from imaginarium.stage import read_table

_TYPES = {"object": "dict", "number": "float", "null": "any"}
# the BFCL category each scenario kind is scored like (schemas/kinds.py; single: simple_python or multiple)
KIND_CATEGORIES = {"multiple": "multiple", "parallel": "parallel", "irrelevant": "irrelevance", "clarify": "clarify"}
NO_ANSWER_CATEGORIES = ("irrelevance", "clarify")  # scored by whether a call is made, as BFCL's irrelevance


def _golds(trial: TrialRecord, kind: str) -> tuple[list[dict[str, Any]], str | None]:
    """The gold calls a held-out trial gives its item, or why it gives none. Multi-turn trials are
    left out: BFCL scores its multi-turn category by executing state, not by AST matching."""
    if kind == "multi_turn":
        return [], "multi_turn: BFCL's multi-turn category is scored by execution"
    problem = kind_problem(trial) if kind != "single" else None  # multiple: the API must be the tool it chose
    if problem:
        return [], f"{kind}: {problem}"
    if kind in ("irrelevant", "clarify"):
        return [], None
    if kind == "parallel":
        return [{s.call.name: {k: [v] for k, v in s.call.args.items()}} for s in first_turn_calls(trial) if s.call], None
    turns, reason = example_turns(trial, "ok", False)
    if reason or not turns:
        return [], reason or "no call"
    call = turns[-1]
    return [{call.name: {k: [v] for k, v in json.loads(call.arguments).items()}}], None


class BfclConfig(Options):
    """Which trials become BFCL items, and how many tools each shows."""

    holdout: float = Field(0.1, gt=0.0, le=1.0, description=(
        "Fraction of the trials exported (by a stable hash of the query); `build sft --holdout` with the same "
        "value and --holdout-seed leaves them out of training."))
    holdout_seed: int = Field(0, ge=0, description="Seed of the hold-out hash (as in `build sft`).")
    seed: int = Field(0, ge=0, description="Seed of the shown tools' order.")
    max_tools: int = Field(1, ge=1, le=64, description=(
        "Tools per item: 1 gives BFCL's simple_python category; more gives `multiple` (the API among its nearest tools)."))
    embedding_model: str | None = Field(None, min_length=1, description=(
        "Embedding model choosing the nearest tools (default: the bundled all-MiniLM-L6-v2)."))


def bfcl_doc(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema function as a BFCL function doc (BFCL's type names, `dict` at the top)."""
    schema = _bfcl_schema(copy.deepcopy(parameters or {}))
    schema["type"] = "dict"
    schema.setdefault("properties", {})
    schema.setdefault("required", [])
    return {"name": name, "description": description, "parameters": schema}


def _bfcl_schema(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "any")
    schema["type"] = _TYPES.get(kind, kind) if isinstance(kind, str) else "any"
    for key in ("properties", "patternProperties"):
        if isinstance(schema.get(key), dict):
            schema[key] = {k: _bfcl_schema(v) for k, v in schema[key].items()}
    if isinstance(schema.get("items"), dict):
        schema["items"] = _bfcl_schema(schema["items"])
    elif schema["type"] == "array":
        schema["items"] = {"type": "any"}
    return schema


def build_bfcl(trials: str | Path, tools_path: str | Path, out: str | Path, config: BfclConfig | None = None) -> dict[str, Any]:
    """Write the held-out trials of `trials` (a stage directory) as BFCL files under `out`.

    Args:
        trials: episode trials (explore, filter or augment output).
        tools_path: tools.jsonl with every tool the trials use.
        out: the directory to write (created; files in it replaced one by one, atomically).
        config: hold-out fraction and seed, tools per item (default: BfclConfig()).

    Returns:
        The manifest: category, items, skipped (by reason), holdout, seed, files.

    Raises:
        InputError: a missing or malformed trials directory or tools file; no trial held out.
    """
    config = config or BfclConfig()
    table = read_table(trials)
    stored = table.to_pylist()
    check_trials(table.schema, stored, str(trials))
    records = [TrialRecord.from_row(row) for row in stored]
    tools = read_tools(tools_path)
    by_name = {tool.name: tool for tool in tools}
    single_category = "simple_python" if config.max_tools == 1 else "multiple"
    chosen = [trial for trial in records if held_out(trial, config.holdout, config.holdout_seed)]
    if not chosen:
        raise InputError(f"no trial is held out at --holdout {config.holdout} ({len(records)} trials)", where=str(trials))
    menu = ToolMenu(tools, max_tools=config.max_tools, model=config.embedding_model, seed=config.seed)
    questions: dict[str, list[dict[str, Any]]] = {}
    answers: dict[str, list[dict[str, Any]]] = {}
    skipped: dict[str, int] = {}
    for trial in chosen:
        kind = kind_of(trial)
        category = KIND_CATEGORIES.get(kind, single_category)
        golds, reason = _golds(trial, kind)
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        unknown = [name for gold in golds for name in gold if name not in by_name]
        if unknown:
            raise InputError(f"trial {trial.trial_id!r} calls {unknown[0]!r}, which is not in the tools file",
                             where=str(tools_path))
        called = [name for gold in golds for name in gold]
        shown = menu.shown(trial.api, called, f"{trial.trial_id}/{trial.query}")
        if kind == "multiple":  # the API among its neighbours, as the trial showed it
            shown = menu.entries(trial.tools_shown) or shown
        docs = [bfcl_doc(e["function"]["name"], e["function"]["description"], json.loads(e["function"]["parameters"]))
                for e in shown]
        rows = questions.setdefault(category, [])
        item_id = f"{category}_{len(rows)}"
        rows.append({"id": item_id, "question": [[{"role": "user", "content": trial.query}]], "function": docs})
        if category not in NO_ANSWER_CATEGORIES:
            answers.setdefault(category, []).append({"id": item_id, "ground_truth": golds})
    if not questions:
        raise InputError(f"none of the {len(chosen)} held-out trials makes a test item (a successful call, or a kind "
                         "kept to)", where=str(trials))
    out = Path(out)
    (out / "possible_answer").mkdir(parents=True, exist_ok=True)
    files = []
    for category, rows in questions.items():
        name = f"BFCL_v4_{category}.json"
        atomic_write_text(out / name, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        files.append(name)
        if category in answers:
            atomic_write_text(out / "possible_answer" / name,
                              "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in answers[category]))
            files.append(f"possible_answer/{name}")
    items = {category: len(rows) for category, rows in sorted(questions.items())}
    manifest = {"category": single_category if single_category in items else next(iter(items)), "categories": items,
                "items": sum(items.values()), "held_out_trials": len(chosen), "trials": len(records),
                "skipped": skipped, "holdout": config.holdout, "holdout_seed": config.holdout_seed,
                "max_tools": config.max_tools, "files": files, "source": str(trials)}
    atomic_write_text(out / "export.json", json.dumps(manifest, indent=2) + "\n")
    return manifest
