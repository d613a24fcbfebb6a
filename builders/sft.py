"""The `build sft` stage: a stage directory of episode trials -> a stage directory of SFT rows.

Input: episode-trial rows (explore, filter or augment output; augment's `paraphrase_of` and
`scores` columns are optional and carried over). Output: chat rows (schemas/records/sft_row.json)
or ReAct rows (builders/react.py), one stage directory, with the filter's funnel carried forward
and the response sources behind the rows counted for the dataset card.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from imaginarium.builders.chat import RowOptions, chat_messages
from imaginarium.builders.neighbours import ToolMenu
from imaginarium.builders.react import REACT_SCHEMA, react_examples
from imaginarium.builders.scenarios import scenario_messages
from imaginarium.builders.trials import call_turns, check_trials, count_sources, example_turns, held_out, row_source
from imaginarium.card_facts import CardFacts
from imaginarium.errors import InputError
from imaginarium.schemas.kinds import kind_of, kind_problem
from imaginarium.schemas.records import arrow_schema
from imaginarium.schemas.rows import SftRow, TrialRecord
from imaginarium.schemas.toolspec import read_tools
from imaginarium.stage import StageWriter, read_table

log = logging.getLogger(__name__)

# Keys of the input manifest's `extra` that describe the rows' history and travel with them.


class SftConfig(RowOptions):
    """How trials become SFT rows (the stage fingerprint); the shared fields are RowOptions'."""

    format: Literal["chat", "react"] = Field("chat", description=(
        "chat: OpenAI/HF tool-calling messages + tools; react: STE Action/Observation text."))
    with_tool_response: bool = Field(False, description=(
        "Add the second turn: the tool's response, then the final answer. Without it an example ends at the call."))
    calls: Literal["ok", "all"] = Field("ok", description=(
        "ok: only calls that ran without error; all: keep failed calls and their errors before the retry."))
    tool_token: bool = Field(False, description="ReAct: write the call name as <tool_NAME>.")
    release_config: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$", description=(
        "Config name in a release (default: sft or sft_react)."))


def build_sft(trials: str | os.PathLike, tools: str | os.PathLike, out: str | os.PathLike,
              config: SftConfig | None = None, *, progress: bool = True) -> dict[str, Any]:
    """Build SFT rows from the stage directory `trials` into the stage directory `out`.

    Args:
        trials: episode trials (explore, filter or augment output; `paraphrase_of` and `scores`
            are carried over).
        tools: the tools.jsonl the trials were explored with.
        out: the stage directory to write.
        config: the settings (default: `SftConfig()`: chat rows ending at the call).
        progress: show progress bars.

    Returns:
        The stage manifest (rows, skipped trials by reason, rows per API, response sources).

    Raises:
        InputError: a missing or malformed input, or a trial that calls a tool not in `tools`.

    Example:
        >>> from imaginarium import build_sft, SftConfig
        >>> manifest = build_sft("runs/augment", "tools.jsonl", "runs/sft", SftConfig(with_tool_response=True))
    """
    config = config or SftConfig()
    format, calls, system, seed = config.format, config.calls, config.system, config.seed
    with_tool_response, simulated_ok, tool_token = config.with_tool_response, config.simulated_ok, config.tool_token
    settings = {**config.fingerprint(), "system": system or None, "tool_token": tool_token if format == "react" else False,
                "release_config": config.release_config or ("sft" if format == "chat" else "sft_react")}
    schema = arrow_schema("sft_row") if format == "chat" else REACT_SCHEMA
    writer = StageWriter(Path(out), "build_sft", settings, {"trials": trials, "tools": tools}, schema=schema)
    if writer.done:
        log.info("%s: already built with these inputs and settings", out)
        return writer.manifest or {}
    where = str(trials)
    table = read_table(trials)
    stored = table.to_pylist()
    check_trials(table.schema, stored, where)
    records = [TrialRecord.from_row(row) for row in stored]
    menu = ToolMenu(read_tools(tools), max_tools=config.max_tools, model=config.embedding_model, seed=seed,
                    progress=progress)
    menu.prepare(trial.api for trial in records)

    rows: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    sources: dict[str, int] = {}
    called: set[str] = set()
    for index, trial in enumerate(_track(records, progress)):
        if held_out(trial, config.holdout, config.holdout_seed):
            skipped["held out (--holdout)"] += 1
            continue
        key = f"{trial.trial_id}/{trial.query}"
        kind = kind_of(trial)
        if kind not in ("single", "multiple"):  # the scenario kinds beyond one call: builders/scenarios.py
            if format != "chat":
                skipped[f"{kind}: chat rows only"] += 1
                continue
            messages, reason = scenario_messages(trial, policy=calls, simulated_ok=simulated_ok,
                                                 with_tool_response=with_tool_response, system=system or None, key=key)
            if messages is None:
                skipped[reason or kind] += 1
                continue
            names = [c["function"]["name"] for m in messages for c in m["tool_calls"] or []]
            try:
                shown = menu.shown(trial.api, names, key)
            except InputError as exc:
                raise InputError(f"row {index}: {exc}", where=where) from None
            count_sources(call_turns(trial, calls, simulated_ok), sources)
            called.update(names)
            rows.append(SftRow(messages=messages, tools=shown, api=trial.api, origin_trial=trial.trial_id,
                               paraphrase_of=trial.paraphrase_of, source=row_source(trial), scores=trial.scores,
                               kind=kind).to_row())
            continue
        problem = kind_problem(trial, simulated_ok) if kind == "multiple" else None
        if problem:  # a row must not teach the wrong tool
            skipped[f"multiple: {problem}"] += 1
            continue
        turns, reason = example_turns(trial, calls, with_tool_response, simulated_ok)
        if reason:
            skipped[reason] += 1
            continue
        try:
            shown = menu.shown(trial.api, [turn.name for turn in turns], key)
        except InputError as exc:
            raise InputError(f"row {index}: {exc}", where=where) from None
        count_sources(turns, sources)
        called.update(turn.name for turn in turns)
        meta = {"api": trial.api, "origin_trial": trial.trial_id, "paraphrase_of": trial.paraphrase_of,
                "source": row_source(trial), "scores": trial.scores}
        if format == "chat":
            messages = chat_messages(trial.query, turns, trial.final_answer, system=system or None, key=key,
                                     with_tool_response=with_tool_response)
            rows.append(SftRow(messages=messages, tools=shown, **meta, kind=kind if kind != "single" else None).to_row())
        else:
            examples = react_examples(trial.query, turns, trial.final_answer, shown,
                                      with_tool_response=with_tool_response, tool_token=tool_token)
            for turn, prompt, completion in examples:
                rows.append({"prompt": prompt, "completion": completion, "turn": turn, **meta})

    facts = CardFacts.read(trials).carried()
    facts.response_sources = sources
    extra = {**facts.extra(), "release_config": settings["release_config"],
             "response_sources": dict(sorted(sources.items()))}
    if format == "react" and tool_token:
        extra["tool_tokens"] = sorted(f"<tool_{name}>" for name in called)
    per_api = Counter(row["api"] for row in rows)
    counts = {"trials": len(records), "skipped": dict(sorted(skipped.items())),
              "per_api": dict(sorted(per_api.items()))}
    with writer:
        writer.append(rows)
        manifest = writer.finish(counts=counts, extra=extra, files=facts.files())
    log.info("%s: %d rows from %d trials (skipped: %s)", out, len(rows), len(records), dict(skipped) or "none")
    return manifest


def _track(items: list, progress: bool):
    if not progress or len(items) < 1000:
        return items
    from rich.progress import track

    return track(items, description="building rows")
