"""The `build continual` stage: one round of continual learning over batches of tools.

Round N (0-based, as the paper's CL_round_0..3) holds
- every row whose API is in batch N,
- for each earlier batch b < N, a seeded sample of round-half-up(replay_ratio * rows of b)
  rows (the replay that keeps earlier tools from being forgotten),
- general instruction rows with no tools (e.g. the paper's flan_v2_2k.json), all of them or a
  seeded sample of `general_count`,
in that order (trainers shuffle). Rows of APIs in no batch are left out and counted.

Stable samples: the rows of a batch are put in the order of their content hash before the
sample is drawn with a seed made of `seed` and the batch index (not the round), so the same
input gives the same sample in every run and every round replays the same rows of a batch.

API names: the batches file lists *source* names (`BART%%Advisory information`), rows carry
tool names (ToolSpec.name, function-call safe). An entry maps to the tool whose `source_name`
it is when a tools file is given, else to `safe_name(entry)` (what the importers name a tool),
which is the entry itself when it is already a safe name.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import Field

from imaginarium.builders.chat import message
from imaginarium.builders.checks import check_record_rows
from imaginarium.card_facts import CardFacts
from imaginarium.errors import InputError
from imaginarium.jsonutil import content_hash
from imaginarium.options import Options
from imaginarium.schemas.records import arrow_schema
from imaginarium.schemas.toolspec import read_tools, safe_name
from imaginarium.stage import StageWriter, read_table

log = logging.getLogger(__name__)

GENERAL_ROLES = ("system", "user", "assistant")
CHAT_ROLES = (*GENERAL_ROLES, "tool")


def read_batches(path: str | os.PathLike) -> list[list[str]]:
    """A batches file: a JSON list of batches, each a list of API source names."""
    batches = _read_json(path)
    if not isinstance(batches, list) or not all(_is_batch(batch) for batch in batches):
        raise InputError("expected a JSON list of batches, each a list of API names", where=str(path))
    return batches


def batch_index(batches: list[list[str]], tools: str | os.PathLike | None = None, *,
                where: str = "") -> dict[str, int]:
    """Tool name -> the index of its batch (see the module doc for how names are mapped)."""
    by_source = {tool.source_name: tool.name for tool in read_tools(tools)} if tools else {}
    index: dict[str, int] = {}
    for number, batch in enumerate(batches):
        for entry in batch:
            name = by_source.get(entry) or safe_name(entry)
            if index.get(name, number) != number:
                raise InputError(f"API {entry!r} is in batch {index[name]} and in batch {number}", where=where)
            index[name] = number
    return index


def general_rows(path: str | os.PathLike, count: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """Chat rows with no tools from a file of `{dialog_history: [{role, content}], response}`."""
    items = _read_json(path)
    if not isinstance(items, list):
        raise InputError("expected a JSON list of {dialog_history, response} objects", where=str(path))
    rows = []
    for number, item in enumerate(items):
        at = f"{path}: item {number}"
        if not isinstance(item, dict) or not isinstance(item.get("response"), str):
            raise InputError("field response: expected a string", where=at)
        history = item.get("dialog_history")
        if not isinstance(history, list) or not history:
            raise InputError("field dialog_history: expected a non-empty list of messages", where=at)
        messages = []
        for turn, entry in enumerate(history):
            if (not isinstance(entry, dict) or entry.get("role") not in GENERAL_ROLES
                    or not isinstance(entry.get("content"), str)):
                expected = f"{{role: {'|'.join(GENERAL_ROLES)}, content: string}}"
                raise InputError(f"field dialog_history/{turn}: expected {expected}", where=at)
            messages.append(message(entry["role"], entry["content"]))
        messages.append(message("assistant", item["response"]))
        rows.append({"messages": messages, "tools": [], "api": "", "origin_trial": None, "paraphrase_of": None,
                     "source": "general", "scores": None})
    if count is None:
        return rows
    if not 0 <= count <= len(rows):
        raise InputError(f"{count} general rows asked, the file has {len(rows)}", where="--general-count")
    chosen = sorted(random.Random(f"{seed}/general").sample(range(len(rows)), count))
    return [rows[i] for i in chosen]


def check_chat_rows(schema, rows: list[dict[str, Any]], where: str) -> None:
    """Raise InputError naming the first row and field that is not a valid chat row."""
    check_record_rows("sft_row", schema, rows, where)
    for index, row in enumerate(rows):
        for number, entry in enumerate(row["messages"]):
            if entry["role"] not in CHAT_ROLES:
                raise InputError(f"row {index}, field messages/{number}/role: {entry['role']!r} is not one of "
                                 f"{', '.join(CHAT_ROLES)}", where=where)


def replay_count(rows: int, ratio: float) -> int:
    """How many rows of an earlier batch a round replays: ratio * rows, rounded half up."""
    return math.floor(rows * ratio + 0.5)


def replay_sample(rows: list[dict[str, Any]], ratio: float, seed: int, batch: int) -> list[dict[str, Any]]:
    """A seeded sample of `rows`, independent of their order and of the round (module doc)."""
    ordered = sorted(rows, key=content_hash)
    chosen = random.Random(f"{seed}/batch/{batch}").sample(range(len(ordered)), replay_count(len(ordered), ratio))
    return [ordered[i] for i in sorted(chosen)]


class ContinualConfig(Options):
    """One continual-learning round: which batch, how much replay, what general data."""

    batches: Path = Field(json_schema_extra={"exists": True},
                          description="JSON list of batches of API source names (e.g. STE's CL_batches.json).")
    round: int = Field(ge=0, le=10_000, description="The round to build (0-based).")
    replay_ratio: float = Field(0.1, ge=0, le=1, description="Share of each earlier batch's rows replayed (a seeded sample).")
    general: Path | None = Field(None, json_schema_extra={"exists": True},
                                 description="General instruction data with no tools: JSON list of {dialog_history, response}.")
    general_count: int | None = Field(None, ge=0, description="Use a seeded sample of this many general rows (default: all).")
    tools: Path | None = Field(None, json_schema_extra={"exists": True},
                               description="tools.jsonl to map the batches' source names to tool names (default: safe_name).")
    seed: int = Field(0, ge=0, description="Seed of the replay and general samples.")


def build_continual(rows: str | os.PathLike, out: str | os.PathLike, config: ContinualConfig, *,
                    progress: bool = True) -> dict[str, Any]:
    """Build one continual-learning round from chat rows (a `build sft --format chat` output).

    Args:
        rows: a stage directory of chat rows.
        out: the stage directory to write.
        config: the round, batches file, replay ratio and general data.
        progress: unused (the stage is fast); kept for the recipe runner's uniform call.

    Returns:
        The stage manifest (rows of the batch, replayed rows per earlier batch, general rows).

    Raises:
        InputError: a missing file, a round that does not exist, rows that are not chat rows.

    Example:
        >>> from imaginarium import build_continual, ContinualConfig
        >>> build_continual("runs/sft", "runs/round1", ContinualConfig(batches="CL_batches.json", round=1))
    """
    batches, round, replay_ratio, general = config.batches, config.round, config.replay_ratio, config.general
    general_count, tools, seed = config.general_count, config.tools, config.seed
    batch_lists = read_batches(batches)
    if not 0 <= round < len(batch_lists):
        raise InputError(f"round {round} does not exist: {batches} has batches 0..{len(batch_lists) - 1}",
                         where="--round")
    inputs: dict[str, Any] = {"rows": rows, "batches": batches}
    if general:
        inputs["general"] = general
    if tools:
        inputs["tools"] = tools
    settings = {"round": round, "replay_ratio": replay_ratio, "general_count": general_count, "seed": seed,
                "release_config": f"continual_round_{round}"}
    writer = StageWriter(Path(out), "build_continual", settings, inputs, schema=arrow_schema("sft_row"))
    if writer.done:
        return writer.manifest or {}

    table = read_table(rows)
    if "messages" not in table.column_names:
        raise InputError("expected chat rows (made by `build sft --format chat`)", where=str(rows))
    records = table.to_pylist()
    check_chat_rows(table.schema, records, str(rows))
    index = batch_index(batch_lists, tools, where=str(batches))
    by_batch: dict[int, list[dict[str, Any]]] = {}
    outside: Counter[str] = Counter()
    for row in records:
        if row["api"] in index:
            by_batch.setdefault(index[row["api"]], []).append(row)
        else:
            outside[row["api"]] += 1
    chosen = list(by_batch.get(round, []))
    replayed = {}
    for batch in range(round):
        sample = replay_sample(by_batch.get(batch, []), replay_ratio, seed, batch)
        replayed[str(batch)] = len(sample)
        chosen += sample
    general_part = general_rows(general, general_count, seed) if general else []
    chosen += general_part

    counts = {"batch": len(by_batch.get(round, [])), "replay": replayed, "general": len(general_part),
              "not_in_batches": sum(outside.values()),
              "per_api": dict(sorted(Counter(row["api"] for row in chosen).items()))}
    if outside:
        log.warning("%d rows of %d APIs in no batch were left out", sum(outside.values()), len(outside))
    facts = CardFacts.read(rows).carried()
    extra = {**facts.extra(), "release_config": settings["release_config"]}
    with writer:
        writer.append(chosen)
        return writer.finish(counts=counts, extra=extra, files=facts.files())


def _is_batch(batch: Any) -> bool:
    return isinstance(batch, list) and all(isinstance(name, str) for name in batch)


def _read_json(path: str | os.PathLike) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("no such file", where=str(path)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON ({exc.msg}, line {exc.lineno})", where=str(path)) from None
