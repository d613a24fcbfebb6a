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
from typing import Any

from imaginarium.builders.chat import DEFAULT_SYSTEM, chat_messages
from imaginarium.builders.neighbours import ToolMenu
from imaginarium.builders.react import REACT_SCHEMA, react_examples
from imaginarium.builders.trials import CALL_POLICIES, check_trials, count_sources, example_turns, row_source
from imaginarium.errors import InputError
from imaginarium.schemas.records import arrow_schema
from imaginarium.schemas.toolspec import read_tools
from imaginarium.stage import StageWriter, carried_reports, read_manifest, read_table

log = logging.getLogger(__name__)

FORMATS = ("chat", "react")
# Keys of the input manifest's `extra` that describe the rows' history and travel with them.
CARRIED_EXTRA = ("funnel", "judge_model", "models")


def build_sft(
    trials: str | os.PathLike,
    out: str | os.PathLike,
    tools: str | os.PathLike,
    *,
    format: str = "chat",
    with_tool_response: bool = False,
    calls: str = "ok",
    simulated_ok: bool = True,
    system: str | None = DEFAULT_SYSTEM,
    max_tools: int = 5,
    embedding_model: str | None = None,
    seed: int = 0,
    tool_token: bool = False,
    release_config: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Build SFT rows from the stage directory `trials` into the stage directory `out`; `tools`
    is the tools.jsonl the trials were explored with.

    `format` chat (tool-calling messages) or react (STE text); `with_tool_response` adds the
    tool response and final answer after the call; `calls` ok | all and `simulated_ok` (whether
    a simulated response counts as a successful call) choose the calls shown (builders/trials.py);
    `system` the chat system message (None or "" for none); `max_tools` how many tools each
    example shows (its API, the tools it calls, nearest neighbours); `embedding_model` for the
    neighbours (default all-MiniLM-L6-v2); `seed` orders the tools; `tool_token` writes ReAct
    call names as `<tool_NAME>`. Returns the manifest.
    """
    if format not in FORMATS:
        raise InputError(f"unknown format {format!r}; known: {', '.join(FORMATS)}", where="--format")
    if calls not in CALL_POLICIES:
        raise InputError(f"unknown call policy {calls!r}; known: {', '.join(CALL_POLICIES)}", where="--calls")
    if max_tools < 1:
        raise InputError("must be at least 1", where="--max-tools")
    config = {
        "format": format, "with_tool_response": with_tool_response, "calls": calls,
        "simulated_ok": simulated_ok, "system": system or None, "max_tools": max_tools,
        "embedding_model": embedding_model,
        "seed": seed, "tool_token": tool_token if format == "react" else False,
        "release_config": release_config or ("sft" if format == "chat" else "sft_react"),
    }
    schema = arrow_schema("sft_row") if format == "chat" else REACT_SCHEMA
    writer = StageWriter(Path(out), "build_sft", config, {"trials": trials, "tools": tools}, schema=schema)
    if writer.done:
        log.info("%s: already built with these inputs and settings", out)
        return writer.manifest
    where = str(trials)
    table = read_table(trials)
    records = table.to_pylist()
    check_trials(table.schema, records, where)
    menu = ToolMenu(read_tools(tools), max_tools=max_tools, model=embedding_model, seed=seed, progress=progress)
    menu.prepare(trial["api"] for trial in records)

    rows: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    sources: dict[str, int] = {}
    called: set[str] = set()
    for index, trial in enumerate(_track(records, progress)):
        turns, reason = example_turns(trial, calls, with_tool_response, simulated_ok)
        if reason:
            skipped[reason] += 1
            continue
        key = f"{trial['trial_id']}/{trial['query']}"
        try:
            shown = menu.shown(trial["api"], [turn.name for turn in turns], key)
        except InputError as exc:
            raise InputError(f"row {index}: {exc}", where=where) from None
        count_sources(turns, sources)
        called.update(turn.name for turn in turns)
        meta = {"api": trial["api"], "origin_trial": trial["trial_id"], "paraphrase_of": trial.get("paraphrase_of"),
                "source": row_source(trial), "scores": trial.get("scores")}
        if format == "chat":
            messages = chat_messages(trial["query"], turns, trial["final_answer"], system=system or None, key=key,
                                     with_tool_response=with_tool_response)
            rows.append({"messages": messages, "tools": shown, **meta})
        else:
            examples = react_examples(trial["query"], turns, trial["final_answer"], shown,
                                      with_tool_response=with_tool_response, tool_token=tool_token)
            for turn, prompt, completion in examples:
                rows.append({"prompt": prompt, "completion": completion, "turn": turn, **meta})

    extra = carried_extra(trials)
    extra.update(release_config=config["release_config"], response_sources=dict(sorted(sources.items())))
    if format == "react" and tool_token:
        extra["tool_tokens"] = sorted(f"<tool_{name}>" for name in called)
    per_api = Counter(row["api"] for row in rows)
    counts = {"trials": len(records), "skipped": dict(sorted(skipped.items())),
              "per_api": dict(sorted(per_api.items()))}
    with writer:
        writer.append(rows)
        manifest = writer.finish(counts=counts, extra=extra, files=carried_reports(trials))
    log.info("%s: %d rows from %d trials (skipped: %s)", out, len(rows), len(records), dict(skipped) or "none")
    return manifest


def carried_extra(stage_dir) -> dict[str, Any]:
    """The input manifest's `extra` keys that describe the rows' history (CARRIED_EXTRA)."""
    extra = (read_manifest(stage_dir) or {}).get("extra") or {}
    return {key: extra[key] for key in CARRIED_EXTRA if key in extra}


def _track(items: list, progress: bool):
    if not progress or len(items) < 1000:
        return items
    from rich.progress import track

    return track(items, description="building rows")
