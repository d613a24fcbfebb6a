"""TRICE ranking: candidates (scored, trice/scoring.py) ranked best first and paired, and the
statistics of a run. Pure functions of the ranking rows; the rows they give are shaped in
builders/preference.py.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from imaginarium.builders.preference import candidate_sft_row, preference_row
from imaginarium.trice.scoring import CORRECT

PAIR_RULES = ("best", "all")


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
    """Chosen/rejected rows (builders/preference.py) for the pairs of every ranking row."""
    return [preference_row(row, chosen, rejected)
            for row in ranking_rows for chosen, rejected in pairs(row["candidates"], rule, margin)]


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
        if picked:
            out.append(candidate_sft_row(row, picked[0]))
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
