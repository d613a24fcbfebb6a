"""TRICE scoring: each executed candidate against the gold.

Why a separate module from the sampler: scoring is a pure function of an executed candidate and
the gold, so it is tested exactly on hand-written candidates and re-run without a model.

Score of a candidate (a number, so RRHF-style trainers can rank by it and DPO pairs can use a
margin):

    score = CORRECT * correct + WELLFORMED * well_formed + EXECUTED * executed_ok

- correct, by task: `qa` normalised exact match of the final answer (lowercase, punctuation,
  articles and extra spaces removed); `math` the last number of the final answer equals the
  gold number within a tolerance (relative and absolute); `call` one of the candidate's calls
  names the gold tool and its arguments pass the AST match (schemas/matching.py);
- well_formed: every step parsed and the candidate ended with a final answer;
- executed_ok: it made at least one call and every call executed without error.

So correctness decides; well-formedness and then execution success only break ties.
"""

from __future__ import annotations

import json
import math
import re
import string
from dataclasses import dataclass
from typing import Any

from imaginarium.schemas.matching import ast_match

TASKS = ("qa", "math", "call")
CORRECT, WELLFORMED, EXECUTED = 1.0, 0.1, 0.01
DEFAULT_TOLERANCE = 1e-6

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass
class Executed:
    """What a candidate did, as the scorer needs it.

    `calls`: each `{"name", "arguments" (object), "ok" (bool)}` in order; `final_answer` None
    when it gave none; `wellformed` False when a step did not parse or no answer came.
    """

    calls: list[dict[str, Any]]
    final_answer: str | None
    wellformed: bool

    @property
    def executed_ok(self) -> bool:
        return bool(self.calls) and all(call["ok"] for call in self.calls)


@dataclass
class Gold:
    """The gold of one question: its task, answer text and (for `call`) the gold call."""

    task: str
    answer: str | None
    call: dict[str, Any] | None = None  # {"name", "arguments" (object)}


def normalise(text: str) -> str:
    """QA normalisation: lowercase, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def last_number(text: str) -> float | None:
    """The last number written in `text` (thousands separators allowed), or None."""
    found = [m.group(0) for m in _NUMBER.finditer(text) if any(ch.isdigit() for ch in m.group(0))]
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def correctness(candidate: Executed, gold: Gold, *, schema: dict[str, Any] | None = None,
                tolerance: float = DEFAULT_TOLERANCE) -> tuple[bool, str]:
    """(correct, reason) of a candidate against the gold of its task."""
    if gold.task == "call":
        return _call_correct(candidate, gold.call or {}, schema)
    answer = candidate.final_answer
    if answer is None:
        return False, "no final answer"
    if gold.task == "qa":
        if normalise(answer) == normalise(gold.answer or ""):
            return True, "answer matches the gold after normalisation"
        return False, f"answer {normalise(answer)[:60]!r} != gold {normalise(gold.answer or '')[:60]!r}"
    expected, got = last_number(gold.answer or ""), last_number(answer)
    if expected is None:
        raise ValueError(f"math gold {gold.answer!r} has no number")
    if got is None:
        return False, "no number in the answer"
    if math.isclose(got, expected, rel_tol=tolerance, abs_tol=tolerance):
        return True, f"{got:g} equals the gold {expected:g} within {tolerance:g}"
    return False, f"{got:g} != gold {expected:g}"


def _call_correct(candidate: Executed, gold_call: dict[str, Any], schema: dict[str, Any] | None) -> tuple[bool, str]:
    named = [call for call in candidate.calls if call["name"] == gold_call.get("name")]
    if not named:
        return False, f"no call of {gold_call.get('name')}"
    reasons = []
    for call in named:
        result = ast_match(gold_call.get("arguments") or {}, call["arguments"], schema)
        if result.correct:
            return True, f"call of {call['name']} matches the gold ({result.reason})"
        reasons.append(result.reason)
    return False, f"call of {gold_call['name']} does not match the gold: {reasons[-1]}"


def score(candidate: Executed, gold: Gold, *, schema: dict[str, Any] | None = None,
          tolerance: float = DEFAULT_TOLERANCE) -> tuple[float, str]:
    """(score, reason): see the module docstring for the formula."""
    correct, why = correctness(candidate, gold, schema=schema, tolerance=tolerance)
    value = CORRECT * correct + WELLFORMED * candidate.wellformed + EXECUTED * candidate.executed_ok
    flags = [("correct" if correct else "wrong"), ("well-formed" if candidate.wellformed else "malformed"),
             ("executed" if candidate.executed_ok else "no successful execution")]
    return round(value, 6), f"{', '.join(flags)}: {why}"


def canonical_call(call: dict[str, Any]) -> str:
    """The gold call as the ranking row's `gold` text."""
    return json.dumps({"name": call["name"], "arguments": call["arguments"]}, ensure_ascii=False, sort_keys=True)
