"""Scenario kinds: what a trial teaches beyond one call, and the rule that says it succeeded.

Kinds (`explore --kinds single=0.5,parallel=0.15,...`; `single` alone is STE exactly):
- `single`: one API, one call at a time (the STE paper's trials);
- `parallel`: a query that needs several calls at once; the first act step holds a list of
  calls, executed together (steps flagged `parallel` after the first of the turn);
- `multiple`: the API is shown among its nearest tools; the right one must be chosen;
- `irrelevant`: a query none of the shown tools can serve; success is no call and an answer;
- `clarify`: a query that leaves out a required value (`scenario.missing`); success is a
  question naming that parameter (an `ask` step); a simulated user then gives the value (a
  `user` step) and the call follows;
- `multi_turn`: after the answer, the simulated user asks a follow-up (a `user` step) that needs
  another call using what the first returned.

Why here (schemas, the lowest layer that knows trials): exploration decides a trial's kind and
reflects with its rule, the filter drops trials that break it, the builders shape rows and
preference pairs by kind, and the card counts kinds; each imports this one definition.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imaginarium.schemas.rows import Step, TrialRecord

KINDS = ("single", "parallel", "multiple", "irrelevant", "clarify", "multi_turn")
DEFAULT_KINDS = {"single": 1.0}
# kinds whose right first answer is not a call: their rejected side of a preference pair is a call
NO_CALL_KINDS = ("irrelevant", "clarify")


def parse_kinds(value: Any) -> dict[str, float]:
    """`single=0.5,parallel=0.15` (or a mapping) -> {kind: weight}; weights normalised to sum 1.

    Raises:
        ValueError: an unknown kind, a weight that is not a positive number, or nothing given.
    """
    if isinstance(value, str):
        pairs: dict[str, Any] = {}
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            name, sep, weight = part.partition("=")
            pairs[name.strip()] = weight.strip() if sep else "1"
        value = pairs
    if not isinstance(value, Mapping) or not value:
        raise ValueError("give kinds as name=weight pairs, e.g. single=0.5,parallel=0.5")
    weights: dict[str, float] = {}
    for name, weight in value.items():
        if name not in KINDS:
            raise ValueError(f"unknown kind {name!r} (one of {', '.join(KINDS)})")
        try:
            number = float(weight)
        except (TypeError, ValueError):
            raise ValueError(f"kind {name}: weight {weight!r} is not a number") from None
        if not number > 0 or number == float("inf"):
            raise ValueError(f"kind {name}: weight must be a positive number, not {weight!r}")
        weights[name] = number
    total = sum(weights.values())
    return {name: weights[name] / total for name in KINDS if name in weights}


def assign_kinds(weights: Mapping[str, float], units: Sequence[str], seed: int) -> dict[str, str]:
    """The kind of each unit (an API's episode): exactly the asked shares, as near as whole units
    allow (largest remainders), spread over the units by a shuffle seeded with `seed`. So ten
    episodes and six kinds give every kind at least one episode, and a resumed or re-run
    exploration (same units, same seed) gives every episode the same kind. One kind: that kind
    for every unit, nothing shuffled (so `single` alone is exactly the STE run)."""
    if len(weights) == 1:
        only = next(iter(weights))
        return dict.fromkeys(units, only)
    total = sum(weights.values())
    exact = {kind: len(units) * weight / total for kind, weight in weights.items()}
    counts = {kind: int(share) for kind, share in exact.items()}
    by_remainder = sorted(weights, key=lambda kind: (-(exact[kind] - counts[kind]), KINDS.index(kind)))
    for kind in by_remainder[: len(units) - sum(counts.values())]:
        counts[kind] += 1
    kinds = [kind for kind in weights for _ in range(counts[kind])]
    random.Random(f"{seed}/kinds").shuffle(kinds)
    return dict(zip(units, kinds))


def scenario(trial: TrialRecord) -> dict[str, Any]:
    """The trial's kind-specific facts (`missing` for clarify, `rejected_call` for preference)."""
    text = trial.extra.get("scenario")
    return json.loads(text) if isinstance(text, str) and text else {}


def kind_of(trial: TrialRecord) -> str:
    kind = trial.extra.get("kind")
    return kind if isinstance(kind, str) and kind in KINDS else "single"


def kind_problem(trial: TrialRecord, simulated_ok: bool = True) -> str | None:
    """Why a trial does not show what its kind teaches, or None. `single` and `multiple` need a
    call of the API that ran without error; the others their own rule (module docstring)."""
    kind = kind_of(trial)
    calls = trial.calls

    def ran(step) -> bool:
        observation = step.observation
        if observation is None:
            return True  # feedback withheld (the no-exec ablation): nothing says it failed
        return observation.ok and (simulated_ok or observation.source != "simulated")

    if kind == "irrelevant":
        if calls:
            return f"made {len(calls)} call(s) where no shown tool fits"
        return None if trial.final_answer else "no answer saying that no tool fits"
    if kind == "parallel":
        first = first_turn_calls(trial)
        if len(first) < 2:
            return "fewer than two calls in one turn"
        if len({(s.call.name, json.dumps(s.call.args, sort_keys=True)) for s in first if s.call}) < len(first):
            return "the parallel calls repeat each other"
        return None if all(ran(step) for step in first) else "a parallel call failed"
    if kind == "clarify":
        asks = [step for step in trial.steps if step.action == "ask"]
        missing = scenario(trial).get("missing")
        if not asks:
            return "asked no clarifying question"
        if calls and trial.steps.index(calls[0]) < trial.steps.index(asks[0]):
            return "called before asking for the missing value"
        question = (asks[0].text or "").lower()
        if missing and missing.lower() not in question and missing.lower().replace("_", " ") not in question:
            return f"the question does not name the missing parameter {missing!r}"
        return None if any(ran(step) for step in calls) else "no call ran after the clarification"
    if kind == "multi_turn":
        users = [i for i, step in enumerate(trial.steps) if step.action == "user"]
        if not users:
            return "no follow-up turn"
        before = [s for s in trial.steps[: users[0]] if s.is_call and ran(s)]
        after = [s for s in trial.steps[users[0]:] if s.is_call and ran(s)]
        if not before or not after:
            return "the follow-up needs a call on each side of it"
        if " ".join((trial.steps[users[0]].text or "").lower().split()) == " ".join(trial.query.lower().split()):
            return "the follow-up repeats the first question"
        return None
    if not any(ran(step) for step in calls if step.call and step.call.name == trial.api):
        return f"no call of {trial.api} ran without error"
    return None


def first_turn_calls(trial: TrialRecord) -> list[Step]:
    """The calls of the trial's first act turn: the first call and those flagged parallel after it."""
    calls: list[Step] = []
    for step in trial.steps:
        if step.is_call:
            if calls and not step.parallel:
                break
            calls.append(step)
        elif calls:
            break
    return calls
