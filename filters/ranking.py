"""TRICE ranking: score executed candidates against the gold, rank them, pair them, count.

Why a separate module from the sampler: scoring, ranking and pairing are pure functions of
executed candidates and the gold, so they are tested exactly on hand-written candidates and
re-run without a model.

Score of a candidate (a number, so RRHF-style trainers can rank by it and DPO pairs can use a
margin):

    score = CORRECT * correct + WELLFORMED * well_formed + EXECUTED * executed_ok

- correct, by task: `qa` normalised exact match of the final answer (lowercase, punctuation,
  articles and extra spaces removed); `math` the last number of the final answer equals the
  gold number within a tolerance (relative and absolute); `call` one of the candidate's calls
  names the gold tool and its arguments pass the evaluation's AST match (evaluation/match.py);
- well_formed: every step parsed and the candidate ended with a final answer;
- executed_ok: it made at least one call and every call executed without error.

So correctness decides; well-formedness and then execution success only break ties.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from imaginarium.evaluation.match import ast_match

TASKS = ("qa", "math", "call")
PAIR_RULES = ("best", "all")
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


def rank(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Candidates (each with `score`) best first; equal scores keep their order (gold first)."""
    return sorted(candidates, key=lambda c: -c["score"])


def pairs(ranked: list[dict[str, Any]], rule: str = "best", margin: float = 0.0) -> list[tuple[dict, dict]]:
    """(chosen, rejected) pairs from candidates ranked best first.

    `best`: the best candidate against each one scoring more than `margin` below it;
    `all`: every pair whose scores differ by more than `margin`, better one chosen.
    Pairs whose two sides say exactly the same are skipped (no preference to learn).
    """
    if rule not in PAIR_RULES:
        raise ValueError(f"unknown pairing rule {rule!r}; known: {', '.join(PAIR_RULES)}")
    chosen_side = ranked[:1] if rule == "best" else ranked
    out = []
    for i, chosen in enumerate(chosen_side):
        for rejected in ranked[i + 1:]:
            if chosen["score"] - rejected["score"] > margin + 1e-9 and chosen["messages"] != rejected["messages"]:
                out.append((chosen, rejected))
    return out


def preference_rows(ranking_rows: Iterable[dict[str, Any]], rule: str = "best",
                    margin: float = 0.0) -> list[dict[str, Any]]:
    """Chosen/rejected rows (schemas/records/preference_row.json) from ranking rows."""
    out = []
    for row in ranking_rows:
        for chosen, rejected in pairs(row["candidates"], rule, margin):
            out.append({"question_id": row["question_id"], "task": row["task"], "prompt": row["prompt"],
                        "tools": row["tools"], "chosen": chosen["messages"], "rejected": rejected["messages"],
                        "chosen_score": chosen["score"], "rejected_score": rejected["score"]})
    return out


SFT_SOURCES = ("best", "gold")


def sft_rows(ranking_rows: Iterable[dict[str, Any]], source: str = "best") -> list[dict[str, Any]]:
    """Stage-1 behaviour-cloning rows (schemas/records/sft_row.json), one per question at most.

    `best`: the top-ranked candidate when it is correct (the gold wins ties: it comes first);
    `gold`: the pseudo-expert's response. Questions without such a candidate give no row.
    """
    if source not in SFT_SOURCES:
        raise ValueError(f"unknown SFT source {source!r}; known: {', '.join(SFT_SOURCES)}")
    out = []
    for row in ranking_rows:
        if source == "best":
            picked = [c for c in row["candidates"][:1] if c["score"] >= CORRECT]
        else:
            picked = [c for c in row["candidates"] if c["model"] == "gold"][:1]
        if not picked:
            continue
        best = picked[0]
        called = [call["function"]["name"] for m in best["messages"] for call in m["tool_calls"] or []]
        out.append({"messages": row["prompt"] + best["messages"], "tools": row["tools"],
                    "api": called[0] if called else row["task"], "origin_trial": row["question_id"],
                    "paraphrase_of": None, "source": "trice",
                    "scores": json.dumps({"score": best["score"], "reason": best["reason"], "model": best["model"]},
                                         ensure_ascii=False)})
    return out


def task_stats(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task: questions, candidates per question, score distribution, and the share of
    questions with at least one better and one worse candidate (only those carry preference)."""
    groups: dict[str, list[list[float]]] = defaultdict(list)
    for row in rows:
        groups[row["task"]].append([c["score"] for c in row["candidates"]])
    stats = {}
    for task, scores in sorted(groups.items()):
        sizes = [len(s) for s in scores]
        distribution = Counter(f"{value:g}" for s in scores for value in s)
        signal = sum(1 for s in scores if s and max(s) > min(s))
        stats[task] = {
            "questions": len(scores),
            "candidates_per_question": {"mean": round(sum(sizes) / len(sizes), 3), "min": min(sizes),
                                        "max": max(sizes)},
            "score_distribution": dict(sorted(distribution.items(), key=lambda kv: -float(kv[0]))),
            "share_with_preference_signal": round(signal / len(scores), 4),
        }
    return stats


def canonical_call(call: dict[str, Any]) -> str:
    """The gold call as the ranking row's `gold` text."""
    return json.dumps({"name": call["name"], "arguments": call["arguments"]}, ensure_ascii=False, sort_keys=True)
