"""Score a BFCL result file the way BFCL does: per item a verdict, per category an accuracy, and
BFCL's summary scores for the AST categories (the function behind `eval --format bfcl`).

Per item, by category (checker.category_rule):
- irrelevance / live_irrelevance: correct when the result decodes to no call (decode.has_call);
- live_relevance: correct when it decodes to at least one call;
- the others: the result is decoded (decode.decode_result; a decode failure is
  `ast_decoder:decoder_failed`) and checked against the possible answers (checker.check_calls).

Summary (BFCL v4's leaderboard columns, in percent; None where a part was not scored):
non-live `simple` = unweighted mean of simple_python, simple_java, simple_javascript;
non-live `ast_summary` = unweighted mean of simple, multiple, parallel, parallel_multiple;
live `ast_summary` = live_simple, live_multiple, live_parallel, live_parallel_multiple weighted by
their item counts; `irrelevance` = unweighted mean of irrelevance and live_irrelevance;
`relevance` = live_relevance.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from imaginarium.atomic import atomic_path
from imaginarium.errors import InputError
from imaginarium.evaluation.bfcl.checker import Verdict, category_rule, check_calls, language_of
from imaginarium.evaluation.bfcl.data import (
    BfclItem,
    ResultLine,
    category_of,
    check_category,
    default_data_dir,
    load_categories,
    read_results,
)
from imaginarium.evaluation.bfcl.decode import decode_result, has_call
from imaginarium.evaluation.bfcl.java_js import DecodeError
from imaginarium.evaluation.metrics import percent
from imaginarium.trice.questions import BadRows


def data_root(bfcl_data: str | Path | None) -> Path:
    """`--bfcl-data`, or the installed bfcl-eval package's data directory."""
    if bfcl_data is not None:
        return Path(bfcl_data)
    found = default_data_dir()
    if found is None:
        raise InputError("no BFCL data: pass --bfcl-data DIR (BFCL's data directory or an `eval export`), "
                         "or install bfcl-eval (pip install --no-deps bfcl-eval)")
    return found


def score_item(item: BfclItem, result: Any) -> Verdict:
    """The verdict on one result for its test item."""
    rule = category_rule(item.category)
    if rule in ("irrelevance", "relevance"):
        called = has_call(result)
        if rule == "irrelevance":
            return Verdict(True) if not called else Verdict(
                False, "irrelevance_error:decoder_success", "a call was made where none was expected")
        return Verdict(True) if called else Verdict(False, "relevance_error:decoder_failed", "no call was made")
    language = language_of(item.category)
    try:
        calls = decode_result(result, language)
    except DecodeError as exc:
        return Verdict(False, "ast_decoder:decoder_failed", str(exc))
    return check_calls(item.functions, calls, item.golds or [], item.category, language)


def evaluate_bfcl(results: str | Path, *, bfcl_data: str | Path | None = None, category: str | None = None,
                  out: str | Path | None = None, skip_invalid: bool = False) -> dict[str, Any]:
    """Score a BFCL result file (or a directory of them) against BFCL's possible answers.

    Args:
        results: JSON lines with `id` and `result` (raw model text or `[{"func": {"arg": value}}]`).
        bfcl_data: BFCL's data directory (default: the installed bfcl-eval package's).
        category: every line's category (default: read from each id).
        out: where to write one JSON line per item: id, category, correct, error_type, reason.
        skip_invalid: leave malformed lines out (reported on stderr) instead of failing.

    Returns:
        `{"format": "bfcl", "args_match": "bfcl", "items", "correct", "accuracy", "by_category":
        {category: {"items", "correct", "accuracy", "not_in_results"}}, "summary": {...}}`.

    Raises:
        InputError: a missing or malformed results or data file, an unknown category or id.
    """
    bad = BadRows(skip_invalid)
    lines = read_results(results, bad)
    if category is not None:
        category = check_category(category)
    chosen: list[tuple[ResultLine, str]] = []
    seen: set[str] = set()
    for line in lines:
        try:
            line_category = category or check_category(category_of(line.id), where=line.where)
            if line.id in seen:
                raise InputError(f"field id: {line.id!r} appears twice", where=line.where)
        except InputError as exc:
            bad.add(exc)
            continue
        seen.add(line.id)
        chosen.append((line, line_category))
    root = data_root(bfcl_data)
    categories = sorted({c for _, c in chosen})
    data = load_categories(root, categories)
    pairs: list[tuple[ResultLine, BfclItem]] = []
    for line, line_category in chosen:
        item = data.items.get(line.id)
        if item is None or item.category != line_category:
            bad.add(InputError(f"field id: {line.id!r} is not a {line_category} item of {root}", where=line.where))
            continue
        pairs.append((line, item))
    bad.check()
    if not pairs:
        raise bad.nothing_left("results", str(results)) if bad else InputError("no results", where=str(results))

    rows = []
    for line, item in pairs:
        verdict = score_item(item, line.result)
        rows.append({"id": item.id, "category": item.category, "correct": verdict.valid,
                     "error_type": verdict.error_type or None, "reason": verdict.error or "correct"})
    report = bfcl_report(rows, {c: sum(1 for i in data.items.values() if i.category == c) for c in categories})
    if bad:
        report["skipped_invalid"] = len(bad)
    if out is not None:
        with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return report


def bfcl_report(rows: list[dict[str, Any]], in_data: dict[str, int] | None = None) -> dict[str, Any]:
    """Per-category accuracy and BFCL's summary from per-item rows (`category`, `correct`)."""
    by_category: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = by_category.setdefault(row["category"], {"items": 0, "correct": 0})
        entry["items"] += 1
        entry["correct"] += bool(row["correct"])
    for name, entry in by_category.items():
        entry["accuracy"] = percent(entry["correct"], entry["items"])
        if in_data is not None:
            entry["not_in_results"] = in_data.get(name, entry["items"]) - entry["items"]
    correct = sum(bool(row["correct"]) for row in rows)
    return {
        "format": "bfcl", "args_match": "bfcl", "items": len(rows), "correct": correct,
        "accuracy": percent(correct, len(rows)), "by_category": dict(sorted(by_category.items())),
        "summary": summary(by_category),
    }


def _mean(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) or not values else sum(values) / len(values)  # type: ignore[arg-type]


def summary(by_category: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """BFCL's summary columns (unweighted / weighted means, as its leaderboard computes them)."""
    def acc(name: str) -> float | None:
        entry = by_category.get(name)
        return entry["accuracy"] if entry else None

    simple = _mean([acc("simple_python"), acc("simple_java"), acc("simple_javascript")])
    non_live = {"simple": simple, "multiple": acc("multiple"), "parallel": acc("parallel"),
                "parallel_multiple": acc("parallel_multiple")}
    live_names = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")
    live_entries = [by_category.get(name) for name in live_names]
    live_ast = None
    if all(live_entries):
        total = sum(e["items"] for e in live_entries)  # type: ignore[index]
        live_ast = percent(sum(e["correct"] for e in live_entries), total)  # type: ignore[index]
    return {
        "non_live": {**non_live, "ast_summary": _mean(list(non_live.values())), "irrelevance": acc("irrelevance")},
        "live": {**{name.removeprefix("live_"): acc(name) for name in live_names}, "ast_summary": live_ast,
                 "irrelevance": acc("live_irrelevance"), "relevance": acc("live_relevance")},
        "irrelevance": _mean([acc("irrelevance"), acc("live_irrelevance")]),
        "relevance": acc("live_relevance"),
    }
