"""`evaluate`: score a predictions file (the function behind `imaginarium eval`).

Per item: parse the raw output into a call (never reading the stored no_call / err /
api_match fields), optionally ground an unknown API name to the closest known one, compare
the name with the gold API, then check the arguments with the chosen matcher:

- `string`: every gold key present with the same value (strip + lowercase);
- `ast`: type-aware, guided by the tool's parameters schema (`--tools` or the chat file's tools);
- `judge`: an LLM backend judges, its reason kept;
- `ste-paper`: the paper's protocol: string match for its 31 string-match APIs; for the other
  19 the judgment stored in the file (`args_correct`) when present, else the judge. Test items
  whose published gold was revised after the paper (evaluation/data/ste/revised_gold.json)
  are also scored with the stored judgment, since string match against the new gold does not
  measure what the paper measured. API names are grounded to the 50 STE APIs, as the paper did.

With `items_out`, one JSON line per item (parse, API match, correctness, method, reason) is
written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from imaginarium.atomic import atomic_path
from imaginarium.errors import InputError
from imaginarium.evaluation.bfcl.data import SCORED
from imaginarium.evaluation.items import (
    BadRows,
    EvalItem,
    ast_schema_problem,
    load_batches,
    load_predictions,
    ste_api_list,
    ste_revised_gold,
    ste_string_match_apis,
)
from imaginarium.evaluation.match import JudgeCase, judge_matches
from imaginarium.evaluation.metrics import compute_metrics
from imaginarium.evaluation.parse import ParsedCall, ParsedCalls, ground_name, parse_all, parse_output
from imaginarium.models.backend import Backend
from imaginarium.models.options import GenerationOptions, open_backend
from imaginarium.options import Options
from imaginarium.schemas.matching import MatchResult, assign_calls, ast_match, string_match


def tool_schemas(tools_path: str | Path) -> tuple[dict[str, dict], dict[str, str]]:
    """Parameters schemas and descriptions from a tools.jsonl, keyed by name and by source name."""
    from imaginarium.schemas.toolspec import read_tools

    schemas, descriptions = {}, {}
    for tool in read_tools(tools_path):
        for key in (tool.name, tool.source_name):
            schemas[key] = tool.parameters
            descriptions[key] = tool.description
    return schemas, descriptions


def _judge_generation() -> GenerationOptions:
    return GenerationOptions(temperature=0.0, max_tokens=256)  # a verdict per item: greedy


class EvalConfig(Options):
    """How predictions are read and scored."""

    judge: GenerationOptions = Field(default_factory=_judge_generation, json_schema_extra={"prefix": "judge_"})
    format: Literal["ste", "chat", "jsonl", "bfcl"] = Field("ste", description=(
        "ste: the STE results JSON; jsonl: STE-shaped items, one per line; chat: gold + OpenAI message per line; "
        "bfcl: a BFCL result file (JSON lines with id and result), scored against --bfcl-data."))
    args_match: Literal["string", "ast", "judge", "ste-paper", "bfcl"] = Field("string", description=(
        "How arguments are judged correct (ste-paper: the STE paper's protocol; judge: the LLM judge, "
        "the --judge-* options; bfcl: BFCL's AST checker, golds as possible-answer lists; "
        "default: bfcl for --format bfcl, else string)."))
    bfcl_data: Path | None = Field(None, json_schema_extra={"exists": True}, description=(
        "BFCL's data directory (questions and possible_answer/), or an `eval export` directory "
        "(default: the installed bfcl-eval package's data)."))
    category: Literal[SCORED] | None = Field(None, description=(  # type: ignore[valid-type]
        "The BFCL category of every result line (default: read from each line's id)."))
    batches: Path | None = Field(None, json_schema_extra={"exists": True},
                                 description="Batches of APIs (CL_batches.json's shape) for --by batch.")
    tools: Path | None = Field(None, json_schema_extra={"exists": True}, description=(
        "tools.jsonl whose parameter schemas guide --args-match ast (matched by name or source name)."))
    ground: bool | None = Field(None, json_schema_extra={"cli": False}, description=(
        "Map unknown API names to the closest known one: part of the ste-paper protocol only (its default)."))
    skip_invalid: bool = Field(False, description=(
        "Skip malformed rows (a count and the first reasons on stderr) instead of failing."))

    @model_validator(mode="after")
    def _modes_fit(self) -> Self:
        """`--format bfcl` is scored by BFCL's rules; grounding belongs to the ste-paper protocol:
        elsewhere it would count a wrong function name as the nearest right one."""
        if self.format == "bfcl":
            if "args_match" not in self.model_fields_set:
                self.args_match = "bfcl"
            elif self.args_match != "bfcl":
                raise ValueError("--format bfcl is scored with --args-match bfcl (BFCL's own rules)")
        if self.ground and self.args_match != "ste-paper":
            raise ValueError("--ground is part of the ste-paper protocol only (--args-match ste-paper); "
                             "elsewhere a wrong function name would count as the nearest right one")
        return self


def evaluate(predictions: str | Path, config: EvalConfig | None = None, *, out: str | Path | None = None,
             judge: Backend | None = None) -> dict[str, Any]:
    """Score a predictions file: well-formed %, API match %, correct %, overall, per API and batch.

    Args:
        predictions: the predictions file (its format is `config.format`).
        config: the settings (default: `EvalConfig()`: STE format, string matching).
        out: where to write one JSON line per item (parse, match, reason), atomically.
        judge: the judge's backend if already open (default: opened from `config.judge`, only
            when some item needs a judge).

    Returns:
        The metrics report (see metrics.compute_metrics), with `args_match` and `judged`.

    Raises:
        InputError: a missing or malformed predictions, batches or tools file; a malformed row
            (unless `config.skip_invalid`: then it is skipped and reported on stderr).

    Example:
        >>> from imaginarium import evaluate, EvalConfig
        >>> report = evaluate("mistral_FT.json", EvalConfig(args_match="ste-paper"))
    """
    config = config or EvalConfig()
    if config.format == "bfcl":
        from imaginarium.evaluation.bfcl.score import evaluate_bfcl

        return evaluate_bfcl(predictions, bfcl_data=config.bfcl_data, category=config.category, out=out,
                             skip_invalid=config.skip_invalid)
    fmt, args_match, batches, tools, ground = config.format, config.args_match, config.batches, config.tools, config.ground
    items_out = out
    bad = BadRows(config.skip_invalid)
    items = load_predictions(predictions, fmt, args_match=args_match, bad=bad)
    schemas, descriptions = tool_schemas(tools) if tools else ({}, {})
    if args_match in ("ast", "bfcl"):
        _check_ast_schemas(schemas, tools)
    if args_match in ("judge", "ste-paper"):
        multi = next((item for item in items if item.golds is not None), None)
        if multi is not None:
            raise InputError(f"item {multi.index}: several gold calls (or none) are scored with --args-match "
                             "string, ast or bfcl, not with a judge", where=str(predictions))
    batch_map = load_batches(batches) if batches else None
    bad.check()  # every row read and checked before any judge loads
    if bad and not items:
        raise bad.nothing_left("items", str(predictions))
    ground = (args_match == "ste-paper") if ground is None else ground
    known = _known_names(items, schemas, args_match)

    calls: list[ParsedCall] = []
    results: list[MatchResult | None] = []
    several: dict[int, ParsedCalls] = {}  # items with several gold calls (or none): all their calls
    to_judge: list[int] = []
    for item in items:
        if item.golds is not None:
            parsed = several[item.index] = parse_all(item.output)
            calls.append(ParsedCall(parsed.kind, error=parsed.error))
            results.append(_match_all(item, parsed, args_match, schemas))
            continue
        call = parse_output(item.output)
        if ground:
            call = ground_name(call, known)
        calls.append(call)
        result = None
        if call.kind == "call" and call.name == item.api:
            result = _match(item, call, args_match, schemas)
            if result is None:
                to_judge.append(item.index)
        results.append(result)

    if to_judge:
        judge = judge or open_backend(config.judge)
        cases = [_judge_case(items[i], calls[i], descriptions) for i in to_judge]
        verdicts = judge_matches(cases, judge, max_tokens=config.judge.max_tokens, seed=config.judge.seed)
        for i, verdict in zip(to_judge, verdicts):
            results[i] = verdict

    rows = [_row(item, call, result) if item.golds is None else _row_all(item, several[item.index], result)
            for item, call, result in zip(items, calls, results)]
    report = compute_metrics(rows, batch_map)
    report["args_match"] = args_match
    report["judged"] = len(to_judge)
    if bad:
        report["skipped_invalid"] = len(bad)
    if items_out:
        _write_items(items_out, items, rows)
    return report


def _check_ast_schemas(schemas: dict[str, dict], tools: str | Path | None) -> None:
    """The AST matcher reads each property's schema: one that is not an object is refused up front."""
    for name, schema in schemas.items():
        problem = ast_schema_problem(schema) if schema else None
        if problem:
            raise InputError(f"tool {name!r}: parameters: {problem}", where=str(tools))


def _known_names(items: list[EvalItem], schemas: dict[str, dict], args_match: str) -> list[str]:
    if args_match == "ste-paper":
        return list(ste_api_list())
    names = dict.fromkeys(item.api for item in items)
    for item in items:
        names.update(dict.fromkeys(item.tools))
    names.update(dict.fromkeys(schemas))
    return list(names)


def _match(item: EvalItem, call: ParsedCall, args_match: str, schemas: dict[str, dict]) -> MatchResult | None:
    """The verdict on the arguments, or None when an LLM judge must decide."""
    if args_match == "string":
        return string_match(item.gold, call.arguments)
    if args_match == "ast":
        schema = item.schemas.get(item.api) or schemas.get(item.api)
        return ast_match(item.gold, call.arguments, schema)
    if args_match == "bfcl":
        return bfcl_match(item.api, item.gold, call.arguments or {}, item.schemas.get(item.api) or schemas.get(item.api))
    if args_match == "ste-paper":
        revised = (item.api, item.query) in ste_revised_gold()
        if item.api in ste_string_match_apis() and not revised:
            return string_match(item.gold, call.arguments)
        stored = item.stored.get("args_correct")
        if stored is not None:
            why = "revised gold: the paper's stored judgment" if revised else "the paper's stored judgment"
            return MatchResult(bool(stored), why, "stored")
    return None


def bfcl_match(name: str, gold: dict[str, Any], arguments: dict[str, Any], schema: dict[str, Any] | None) -> MatchResult:
    """BFCL's rules for one call whose name is right: `gold` maps each parameter to its
    acceptable values; `schema` (JSON Schema or BFCL's) gives the types and required keys."""
    from imaginarium.evaluation.bfcl.checker import check_call

    doc = {"name": name, "parameters": schema or {"properties": {key: {} for key in gold}}}
    verdict = check_call(doc, (name, arguments), {name: gold})
    return MatchResult(verdict.valid, verdict.error or "arguments match", "bfcl")


def _match_all(item: EvalItem, parsed: ParsedCalls, args_match: str, schemas: dict[str, dict]) -> MatchResult:
    """Several gold calls (or none) against several predicted ones: a one-to-one assignment in
    which every pair has the same name and arguments that match (in order if `item.ordered`)."""
    golds = item.golds or []
    if parsed.kind == "error":
        return MatchResult(False, parsed.error or "unparsable output", args_match)
    if not golds:
        made = len(parsed.calls)
        return MatchResult(made == 0, "no call, as expected" if not made else f"{made} call(s) where none was expected",
                           args_match)
    preds = parsed.calls

    def fits(g: int, p: int) -> bool:
        name, gold = golds[g]
        if preds[p].name != name:
            return False
        fake = EvalItem(index=item.index, api=name, gold=gold, output=None, schemas=item.schemas)
        result = _match(fake, preds[p], args_match, schemas)
        return bool(result and result.correct)

    if assign_calls(len(golds), len(preds), fits, ordered=item.ordered) is not None:
        return MatchResult(True, "every gold call matched one-to-one", args_match)
    if len(golds) != len(preds):
        return MatchResult(False, f"{len(preds)} call(s); {len(golds)} expected", args_match)
    order = "in order " if item.ordered else ""
    return MatchResult(False, f"the calls do not match the gold calls one-to-one {order}(names or arguments)", args_match)


def _row_all(item: EvalItem, parsed: ParsedCalls, result: MatchResult | None) -> dict[str, Any]:
    """The item row for several gold calls: `api_match` when the names pair up one-to-one."""
    golds = item.golds or []
    gold_names = [name for name, _ in golds]
    names = [c.name for c in parsed.calls]
    paired = names == gold_names if item.ordered else sorted(map(str, names)) == sorted(gold_names)
    return {
        "index": item.index,
        "api": ",".join(gold_names) or "(no call)",
        "query": item.query,
        "kind": parsed.kind,
        "parse": parsed.to_dict(),
        "api_match": bool(parsed.calls) and paired,
        "correct": bool(result and result.correct),
        "method": result.method if result else None,
        "reason": result.reason if result else "",
    }


def _judge_case(item: EvalItem, call: ParsedCall, descriptions: dict[str, str]) -> JudgeCase:
    description = item.description or descriptions.get(item.api, "")
    return JudgeCase(item.query, item.api, description, item.gold, call.arguments)


def _row(item: EvalItem, call: ParsedCall, result: MatchResult | None) -> dict[str, Any]:
    api_match = call.kind == "call" and call.name == item.api
    return {
        "index": item.index,
        "api": item.api,
        "query": item.query,
        "kind": call.kind,
        "parse": call.to_dict(),
        "api_match": api_match,
        "correct": bool(api_match and result is not None and result.correct),
        "method": result.method if result else None,
        "reason": result.reason if result else _no_match_reason(item, call),
    }


def _no_match_reason(item: EvalItem, call: ParsedCall) -> str:
    if call.kind == "no_call":
        return "no call (final answer only)"
    if call.kind == "error":
        return call.error or "unparsable output"
    return f"API {call.name!r} is not the gold API {item.api!r}"


def _write_items(path: str | Path, items: list[EvalItem], rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for item, row in zip(items, rows):
            gold: Any = {"name": item.api, "arguments": item.gold}
            if item.golds is not None:
                gold = [{"name": name, "arguments": arguments} for name, arguments in item.golds]
            handle.write(json.dumps({**row, "gold": gold}, ensure_ascii=False) + "\n")
