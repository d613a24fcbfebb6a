"""Reading episode trials and choosing which of their steps become training turns.

Why one place: the chat and the ReAct builders must agree exactly on which calls a trial
teaches, so the choice is made once, here, as a list of `Turn`s.

The rule (see docs/training-data.md):
- `invalid` steps (output that did not parse) never become turns: there is no call to show.
- policy `ok` (default): only calls that executed without error (observation status `ok`, from
  any source: real, cached or simulated) are kept; failed attempts are dropped, so the model
  learns the successful call path. With `simulated_ok=False` (the filter's setting of the same
  name) a simulated response counts as a failure. A call with no observation (execution feedback withheld, the
  paper's no-exec ablation) has nothing saying it failed and is kept.
- policy `all`: calls that failed are kept too, each followed by its error observation, so the
  model also learns to recover from an error (error-and-retry turns).
- The *first turn* ends at the first call that did not fail: earlier failed calls (policy
  `all`) precede it. A trial with no such call cannot make an example and is skipped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from imaginarium.builders.checks import check_record_rows
from imaginarium.errors import InputError
from imaginarium.schemas.rows import TrialRecord

CALL_POLICIES = ("ok", "all")
ACTIONS = ("call", "final_answer", "invalid", "ask", "user")
NO_FEEDBACK = "[no execution feedback]"


@dataclass(frozen=True)
class Turn:
    """One call the example shows: name, arguments (JSON object text) and what came back."""

    name: str
    arguments: str
    observation: str  # the text the model saw (NO_FEEDBACK when withheld)
    failed: bool
    source: str | None  # real | cached | simulated, None when nothing ran or no feedback


def check_trials(schema: pa.Schema, rows: list[dict[str, Any]], where: str) -> None:
    """Raise InputError naming the row and field of the first malformed trial.

    The record's columns must follow its schema (`paraphrase_of` and `scores`, added by
    filter/augment, may be absent; builders/checks.py); columns it does not know are ignored;
    every call's arguments and every observation must be JSON objects.
    """
    check_record_rows("episode_trial", schema, rows, where)
    for index, row in enumerate(rows):
        for number, step in enumerate(row["steps"]):
            if step["action"] not in ACTIONS:
                raise InputError(f"row {index}, field steps/{number}/action: {step['action']!r} is not one of "
                                 f"{', '.join(ACTIONS)}", where=where)
            if step["action"] == "call" and step["call"] is None:
                raise InputError(f"row {index}, field steps/{number}/call: a call step without a call", where=where)
            texts = (("call/arguments", (step["call"] or {}).get("arguments")), ("observation", step["observation"]))
            for field, text in texts:
                if text is None:
                    continue
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise InputError(f"row {index}, field steps/{number}/{field}: not JSON ({exc.msg})",
                                     where=where) from None
                if not isinstance(value, dict):
                    raise InputError(f"row {index}, field steps/{number}/{field}: not a JSON object", where=where)


def call_turns(trial: TrialRecord, policy: str = "ok", simulated_ok: bool = True) -> list[Turn]:
    """The calls of a trial that the example shows, in order, under `policy` (see above)."""
    if policy not in CALL_POLICIES:
        raise ValueError(f"unknown call policy {policy!r}; known: {', '.join(CALL_POLICIES)}")
    turns = []
    for step in trial.calls:
        assert step.call is not None
        observation = step.observation
        if observation is None:
            turn = Turn(step.call.name, step.call.arguments, NO_FEEDBACK, False, None)
        else:
            simulated = observation.source == "simulated"
            failed = not observation.ok or (simulated and not simulated_ok)
            turn = Turn(step.call.name, step.call.arguments, str(observation.content), failed, observation.source)
        if turn.failed and policy == "ok":
            continue
        turns.append(turn)
    return turns


def first_turn(turns: list[Turn]) -> list[Turn]:
    """The turns up to and including the first call that did not fail ([] if there is none)."""
    for index, turn in enumerate(turns):
        if not turn.failed:
            return turns[: index + 1]
    return []


def example_turns(trial: TrialRecord, policy: str, with_tool_response: bool,
                  simulated_ok: bool = True) -> tuple[list[Turn], str | None]:
    """The turns one example of `trial` shows, or ([], reason) when the trial cannot make one."""
    turns = call_turns(trial, policy, simulated_ok)
    if not first_turn(turns):
        return [], "no successful call"
    if not with_tool_response:
        return first_turn(turns), None
    if trial.final_answer is None:
        return [], "no final answer"
    return turns, None


def held_out(trial: TrialRecord, fraction: float, seed: int = 0) -> bool:
    """Whether `trial` belongs to the held-out part: a stable hash of the seed and the query it
    stems from (a paraphrase: its seed query, `paraphrase_of`), so a paraphrase is held out with
    its original and no test query is seen in training in other words. `build sft --holdout`
    leaves out exactly the trials that `eval export --holdout` exports, for the same fraction and seed."""
    if fraction <= 0:
        return False
    root = trial.paraphrase_of or trial.query
    digest = hashlib.sha256(f"{seed}/{' '.join(root.split()).lower()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def row_source(trial: TrialRecord) -> str:
    """What made the row: `paraphrase` for a paraphrased query, `ste` for an explored one."""
    return "paraphrase" if trial.paraphrase_of is not None else "ste"


def count_sources(turns: Iterable[Turn], counts: dict[str, int]) -> None:
    """Add the response source of each turn that ran (`real`, `cached`, `simulated`) to `counts`."""
    for turn in turns:
        if turn.source is not None:
            counts[turn.source] = counts.get(turn.source, 0) + 1
