"""Chat rows for the scenario kinds beyond one call (schemas/kinds.py), and their preference pairs.

Rows (the same stored message shape as builders/chat.py):
- parallel: the calls of one turn in ONE assistant message (`tool_calls` with several entries),
  then one tool message per call;
- clarify: the assistant's question, the user's reply, then the call;
- irrelevant: the assistant's plain answer, no call;
- multi_turn: the first call, its result and answer, the user's follow-up, then the next call.
Without `with_tool_response` a row ends at its last assistant call message (the turn being
taught); an irrelevant row ends at its answer. A trial that breaks its kind's rule makes no row.

Preference pairs (When2Call's lesson: a model learns when not to call better from pairs than from
examples): for irrelevant and clarify trials the chosen reply is the right one (the plain answer,
the question) and the rejected one a plausible call the model made when a call was forced
(`scenario.rejected_call`, sampled during exploration); for the other kinds, as TRICE does with
execution feedback, the chosen reply is the turn's successful call and the rejected one a call of
the same trial that failed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from imaginarium.builders.chat import RowOptions, call_id, message
from imaginarium.errors import InputError
from imaginarium.schemas.kinds import kind_of, kind_problem, scenario
from imaginarium.schemas.rows import PreferenceRow, Step, TrialRecord


def _failed(step: Step, simulated_ok: bool) -> bool:
    observation = step.observation
    if observation is None:
        return False
    return not observation.ok or (observation.source == "simulated" and not simulated_ok)


def scenario_messages(trial: TrialRecord, *, policy: str, simulated_ok: bool, with_tool_response: bool,
                      system: str | None, key: str) -> tuple[list[dict[str, Any]] | None, str | None]:
    """(messages, None) for a trial of a scenario kind, or (None, why it makes no row)."""
    problem = kind_problem(trial, simulated_ok)
    if problem:
        return None, f"{kind_of(trial)}: {problem}"
    messages = [message("system", system)] if system else []
    messages.append(message("user", trial.query))
    index = 0
    last_call = -1  # the position of the last assistant message with tool calls
    tool_messages: list[dict[str, Any]] = []

    def flush() -> None:
        messages.extend(tool_messages)
        tool_messages.clear()

    for step in trial.steps:
        if step.action == "invalid":
            continue
        if step.is_call:
            assert step.call is not None
            if _failed(step, simulated_ok) and policy == "ok":
                continue
            identifier = call_id(key, index)
            index += 1
            entry = {"id": identifier, "type": "function", "function": {"name": step.call.name, "arguments": step.call.arguments}}
            if step.parallel and last_call >= 0 and last_call == len(messages) - 1:
                messages[last_call]["tool_calls"].append(entry)
            else:
                flush()
                messages.append(message("assistant", None, tool_calls=[entry]))
                last_call = len(messages) - 1
            observation = "[no execution feedback]" if step.observation is None else str(step.observation.content)
            tool_messages.append(message("tool", observation, tool_call_id=identifier, name=step.call.name))
            continue
        flush()
        if step.action == "ask":
            messages.append(message("assistant", step.text or ""))
        elif step.action == "user":
            messages.append(message("user", step.text or ""))
        elif step.action == "final_answer":
            messages.append(message("assistant", step.text if step.text is not None else trial.final_answer))
    flush()
    if not with_tool_response and last_call >= 0:
        messages = messages[: last_call + 1]
    if messages[-1]["role"] != "assistant":
        return None, f"{kind_of(trial)}: the conversation does not end with the assistant"
    return messages, None


def preference_pairs(trial: TrialRecord, tools: list[dict[str, Any]], *, system: str | None, key: str,
                     simulated_ok: bool = True) -> list[dict[str, Any]]:
    """Preference rows (schemas/records/preference_row.json) a trial of a scenario kind gives."""
    kind = kind_of(trial)
    prompt = ([message("system", system)] if system else []) + [message("user", trial.query)]
    if kind in ("irrelevant", "clarify"):
        if kind_problem(trial, simulated_ok):
            return []
        rejected_call = scenario(trial).get("rejected_call")
        if not isinstance(rejected_call, dict) or "name" not in rejected_call:
            return []
        if kind == "irrelevant":
            chosen_text = trial.final_answer or ""
        else:
            chosen_text = next((s.text or "" for s in trial.steps if s.action == "ask"), "")
        arguments = json.dumps(rejected_call.get("arguments", {}), ensure_ascii=False)
        rejected = [message("assistant", None, tool_calls=[{"id": call_id(key, 0), "type": "function",
                                                             "function": {"name": rejected_call["name"], "arguments": arguments}}])]
        chosen = [message("assistant", chosen_text)]
        return [_pair(trial, kind, prompt, tools, chosen, rejected)]
    good = [s for s in trial.calls if not _failed(s, simulated_ok) and s.observation is not None]
    bad = [s for s in trial.calls if _failed(s, simulated_ok)]
    if not good or not bad:
        return []
    pairs = []
    for failed in bad[:1]:  # one pair per trial: its first failure against its first success
        assert good[0].call is not None and failed.call is not None
        chosen = [message("assistant", None, tool_calls=[{"id": call_id(key, 0), "type": "function",
                  "function": {"name": good[0].call.name, "arguments": good[0].call.arguments}}])]
        rejected = [message("assistant", None, tool_calls=[{"id": call_id(key, 0), "type": "function",
                    "function": {"name": failed.call.name, "arguments": failed.call.arguments}}])]
        pairs.append(_pair(trial, kind, prompt, tools, chosen, rejected))
    return pairs


def _pair(trial: TrialRecord, kind: str, prompt: list[dict[str, Any]], tools: list[dict[str, Any]],
          chosen: list[dict[str, Any]], rejected: list[dict[str, Any]]) -> dict[str, Any]:
    return PreferenceRow(question_id=trial.trial_id, task=f"{kind}:{trial.api}", prompt=prompt, tools=tools,
                         chosen=chosen, rejected=rejected, chosen_score=1.0, rejected_score=0.0).to_row()


class PreferenceConfig(RowOptions):
    """How trials become preference pairs (the stage fingerprint); the shared fields are RowOptions'."""

    render_with: str | None = Field(None, min_length=1, description=(
        "Also write preference_text/: the pairs rendered with this model's chat template (what Axolotl's DPO trains on)."))


def build_preferences(trials: str | Path, tools: str | Path, out: str | Path, config: PreferenceConfig | None = None,
                      *, progress: bool = True) -> dict[str, Any]:
    """Preference pairs from explored trials: when not to call (irrelevant, clarify) and executed
    failures (the other kinds), into OUT/preference (and OUT/preference_text with `render_with`).

    Args:
        trials: episode trials (explore, filter or augment output).
        tools: tools.jsonl with every tool the trials use.
        out: the directory to write.
        config: the settings (default: PreferenceConfig()).

    Returns:
        The manifests by sub-directory (`preference`, and `preference_text` when rendered).

    Raises:
        InputError: malformed trials or tools; no trial gives a pair.
    """
    from imaginarium.builders.neighbours import ToolMenu
    from imaginarium.builders.preference_text import render_preference_stage
    from imaginarium.builders.trials import check_trials, held_out
    from imaginarium.schemas.records import arrow_schema
    from imaginarium.schemas.toolspec import read_tools
    from imaginarium.stage import StageWriter, read_table

    config = config or PreferenceConfig()
    out = Path(out)
    table = read_table(trials)
    stored = table.to_pylist()
    check_trials(table.schema, stored, str(trials))
    records = [TrialRecord.from_row(row) for row in stored]
    writer = StageWriter(out / "preference", "build-preference", {"build": config.fingerprint()},
                         {"trials": trials, "tools": tools}, schema=arrow_schema("preference_row"))
    manifests: dict[str, Any] = {}
    if writer.done:
        manifests["preference"] = writer.manifest or {}
    else:
        menu = ToolMenu(read_tools(tools), max_tools=config.max_tools, model=config.embedding_model, seed=config.seed,
                        progress=progress)
        rows: list[dict[str, Any]] = []
        per_kind: dict[str, int] = {}
        for trial in records:
            if held_out(trial, config.holdout, config.holdout_seed):
                continue
            key = f"{trial.trial_id}/{trial.query}"
            named = [s.call.name for s in trial.calls if s.call is not None]
            rejected = scenario(trial).get("rejected_call")
            if isinstance(rejected, dict) and isinstance(rejected.get("name"), str):
                named.append(rejected["name"])
            try:
                shown = menu.shown(trial.api, [n for n in named if n in menu.tools], key)
            except InputError as exc:
                raise InputError(str(exc), where=str(trials)) from None
            pairs = preference_pairs(trial, shown, system=config.system or None, key=key, simulated_ok=config.simulated_ok)
            if pairs:
                per_kind[kind_of(trial)] = per_kind.get(kind_of(trial), 0) + len(pairs)
            rows.extend(pairs)
        if not rows:
            raise InputError(f"none of the {len(records)} trials gives a preference pair (irrelevant or clarify trials "
                             "that kept to their kind, or trials with a failed and a successful call)", where=str(trials))
        with writer:
            writer.append(rows)
            manifests["preference"] = writer.finish(counts={"pairs": len(rows), "per_kind": dict(sorted(per_kind.items()))},
                                                    extra={"release_config": "preference"})
    if config.render_with:
        manifests["preference_text"] = render_preference_stage(out / "preference", out / "preference_text",
                                                               config.render_with)
    return manifests
