"""The STE paper's three metrics, overall, per API and per batch of APIs.

- well-formed % = items whose output parses into one call / all items
- API match %   = items whose (grounded) API name equals the gold API / well-formed items
- correct %     = items with the right API and correct arguments / all items
Each per-item result is a dict with `api`, `kind` (call | no_call | error), `api_match` and
`correct` (booleans).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def percent(part: int, whole: int) -> float:
    """`part / whole` in percent; 0.0 for an empty denominator (nothing to score)."""
    return 100.0 * part / whole if whole else 0.0


def summarize(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The three percentages and the counts behind them."""
    counts = {"items": 0, "wellformed": 0, "no_call": 0, "error": 0, "api_match": 0, "correct": 0}
    for row in results:
        counts["items"] += 1
        counts["wellformed"] += row["kind"] == "call"
        counts["no_call"] += row["kind"] == "no_call"
        counts["error"] += row["kind"] == "error"
        counts["api_match"] += bool(row["api_match"])
        counts["correct"] += bool(row["correct"])
    return {
        "wellformed": percent(counts["wellformed"], counts["items"]),
        "api_match": percent(counts["api_match"], counts["wellformed"]),
        "correct": percent(counts["correct"], counts["items"]),
        "counts": counts,
    }


def compute_metrics(
    results: Sequence[Mapping[str, Any]], batches: Mapping[str, list[str]] | None = None
) -> dict[str, Any]:
    """Overall metrics plus `by_api` and, given batches of API names, `by_batch`.

    Batches with no item in `results` are left out (a continual-learning round is scored on
    the APIs seen so far).
    """
    report = summarize(results)
    by_api: dict[str, list] = {}
    for row in results:
        by_api.setdefault(row["api"], []).append(row)
    report["by_api"] = {api: summarize(rows) for api, rows in sorted(by_api.items())}
    if batches is not None:
        report["by_batch"] = {}
        for name, apis in batches.items():
            members = set(apis)
            rows = [row for row in results if row["api"] in members]
            if rows:
                report["by_batch"][name] = summarize(rows)
    return report
