"""The quality report of an exploration run: what a reader needs to judge the data at a glance.

Each figure answers one question about the trials, computed from the records alone:
- `trials`: how many;
- `with_ok_call`: the share of trials with at least one call that executed without error (the
  filter's `executed` check keeps exactly these, among trials with an answer);
- `grounding`: the share of call argument values that appear in the query (strings as whole
  words ignoring case and punctuation, numbers as written): a grounded call uses what the user
  said, an ungrounded one invents values;
- `distinct_queries` / `distinct_share`: queries left after exact dedupe (case and punctuation
  ignored), and `near_duplicates`: queries dropped by semantic dedupe among those (same API,
  sentence embeddings, the filter's threshold): what long-term memory is there to keep low;
- `reflection_yes`: the share of reflections that said yes, among trials that reflected.

The judge's funnel belongs to the filter stage (funnel.json); the release card shows both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from imaginarium.filters.dedupe import DEFAULT_THRESHOLD, dedupe
from imaginarium.schemas.rows import TrialRecord


def exploration_quality(trials: Sequence[TrialRecord | dict[str, Any]], *, semantic: bool = True,
                        embedding_model: str | None = None) -> dict[str, Any]:
    """The quality report of `trials` (episode trials, as records or stored rows); see the module docstring."""
    records = [t if isinstance(t, TrialRecord) else TrialRecord.from_row(t) for t in trials]
    n = len(records)
    report: dict[str, Any] = {"trials": n}
    if not n:
        return report
    with_ok = sum(1 for trial in records if any(o.ok for o in trial.observations))
    grounded = total = 0
    for trial in records:
        query = _words(trial.query or "")
        for step in trial.calls:
            assert step.call is not None
            for value in _leaves(_arguments(step.call.arguments)):
                total += 1
                grounded += _appears(value, query)
    reflected = [t for t in records if t.reflection is not None]
    rows = [{"query": t.query or "", "api": t.api, "trial_id": t.trial_id} for t in records]
    kept, _dropped = dedupe(rows, semantic=False)
    report.update({
        "with_ok_call": round(with_ok / n, 4),
        "argument_values": total,
        "grounding": round(grounded / total, 4) if total else None,
        "distinct_queries": len(kept),
        "distinct_share": round(len(kept) / n, 4),
    })
    if semantic and kept:
        _, near = dedupe(kept, semantic=True, threshold=DEFAULT_THRESHOLD, model=embedding_model)
        report["near_duplicates"] = len(near)
    report["reflection_yes"] = round(sum(t.reflection == "yes" for t in reflected) / len(reflected), 4) if reflected else None
    return report


def format_quality(report: dict[str, Any]) -> list[str]:
    """The report as short lines for a terminal."""
    if not report.get("trials"):
        return ["quality: no trials"]

    def share(key: str) -> str:
        value = report.get(key)
        return "n/a" if value is None else f"{value:.0%}"

    near = report.get("near_duplicates")
    return [
        f"quality: {report['trials']} trials; {share('with_ok_call')} with a successful call; "
        f"grounding {share('grounding')} of {report['argument_values']} argument values appear in the query",
        f"         {report['distinct_queries']} distinct queries ({share('distinct_share')})"
        + (f", {near} near-duplicates among them" if near is not None else "")
        + f"; reflection said yes for {share('reflection_yes')}",
    ]


def _arguments(text: str | None) -> Any:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}


def _leaves(value: Any) -> Iterable[Any]:
    """The scalar values of a call's arguments (booleans and nulls say nothing about the query)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
        yield value


def _words(text: str) -> str:
    return " " + " ".join(re.findall(r"[^\W_]+(?:[.,][0-9]+)*", text.lower())) + " "


def _appears(value: Any, query_words: str) -> bool:
    """Whether a value is in the query: as whole words (strings), or as a number written there."""
    if isinstance(value, str):
        words = _words(value).strip()
        return bool(words) and f" {words} " in query_words
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    candidates = {str(value), f"{value:,}" if isinstance(value, int) else str(value)}
    return any(f" {c.lower()} " in query_words for c in candidates)
