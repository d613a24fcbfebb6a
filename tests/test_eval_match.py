"""Argument matching: string (the STE paper's rule), AST (type-aware, schema-guided), LLM judge."""

from __future__ import annotations

import json

from imaginarium.evaluation.evaluate import EvalConfig, evaluate
from imaginarium.evaluation.match import JudgeCase, judge_prompt
from imaginarium.schemas.matching import ast_match, string_match

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "temperature": {"type": "number"},
        "zip": {"type": "string"},
        "metric": {"type": "boolean"},
        "units": {"type": "string", "enum": ["c", "f"]},
        "place": {
            "type": "object",
            "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}, "name": {"type": "string"}},
            "required": ["lat", "lon"],
        },
        "tags": {"type": "array", "items": {"type": "string"}},
        "points": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "integer"}}}},
    },
    "required": ["city"],
}


def ok(gold, pred, schema=SCHEMA):
    return ast_match(gold, pred, schema).correct


# -- string ---------------------------------------------------------------------------------
def test_string_match_strips_lowercases_and_ignores_extra_keys():
    assert string_match({"city": " Paris", "days": "3"}, {"city": "paris ", "days": 3, "extra": 1}).correct
    result = string_match({"city": "Paris"}, {"town": "Paris"})
    assert not result.correct and "missing key 'city'" in result.reason
    assert not string_match({"city": "Paris"}, {"city": "Lyon"}).correct
    assert not string_match({}, None).correct


# -- AST: types -----------------------------------------------------------------------------
def test_numbers_compare_by_value_across_int_and_float():
    assert ok({"city": "Paris", "days": 90}, {"city": "Paris", "days": 90.0})
    assert ok({"city": "Paris", "temperature": 21.5}, {"city": "Paris", "temperature": 21.5})
    assert not ok({"city": "Paris", "days": 90}, {"city": "Paris", "days": 90.5})
    assert not ok({"city": "Paris", "days": 90}, {"city": "Paris", "days": 91})


def test_a_numeric_string_counts_only_where_the_schema_says_string():
    assert not ok({"city": "Paris", "days": 90}, {"city": "Paris", "days": "90"})
    assert ok({"city": "Paris", "zip": "75001"}, {"city": "Paris", "zip": "75001"})
    assert ok({"city": "Paris", "zip": 75001}, {"city": "Paris", "zip": "75001"})  # gold written loosely
    reason = ast_match({"city": "Paris", "zip": "75001"}, {"city": "Paris", "zip": 75001}, SCHEMA).reason
    assert "zip: expected a string" in reason
    # without a schema the gold's own JSON type decides
    assert not ast_match({"n": 90}, {"n": "90"}).correct
    assert ast_match({"n": 90}, {"n": 90.0}).correct


def test_booleans_are_not_numbers_and_strings_ignore_case():
    assert ok({"city": "Paris", "metric": True}, {"city": "PARIS ", "metric": True})
    assert not ok({"city": "Paris", "metric": True}, {"city": "Paris", "metric": 1})
    assert not ok({"city": "Paris", "days": 1}, {"city": "Paris", "days": True})


# -- AST: keys ------------------------------------------------------------------------------
def test_missing_required_and_missing_gold_keys():
    result = ast_match({"city": "Paris"}, {"days": 3}, SCHEMA)
    assert not result.correct and result.reason == "city: missing required key"
    assert "days: missing key" in ast_match({"city": "Paris", "days": 3}, {"city": "Paris"}, SCHEMA).reason


def test_unexpected_keys_are_rejected():
    result = ast_match({"city": "Paris"}, {"city": "Paris", "country": "FR"}, SCHEMA)
    assert not result.correct and result.reason == "country: unexpected key"
    assert not ast_match({"city": "Paris"}, {"city": "Paris", "x": 1}).correct  # no schema: gold keys only
    open_schema = {**SCHEMA, "additionalProperties": True}
    assert ok({"city": "Paris"}, {"city": "Paris", "country": "FR"}, open_schema)


def test_optional_schema_keys_not_in_the_gold_are_accepted_when_valid():
    assert ok({"city": "Paris"}, {"city": "Paris", "units": "c"})
    result = ast_match({"city": "Paris"}, {"city": "Paris", "units": "kelvin"}, SCHEMA)
    assert not result.correct and result.reason.startswith("units:")
    assert not ok({"city": "Paris"}, {"city": "Paris", "days": "three"})


def test_gold_marks_a_key_optional():
    gold = {"city": "Paris", "units": {"$any": ["c"], "$optional": True}}
    assert ok(gold, {"city": "Paris"})
    assert ok(gold, {"city": "Paris", "units": "c"})
    assert not ok(gold, {"city": "Paris", "units": "f"})


def test_several_acceptable_gold_values():
    gold = {"city": {"$any": ["New York", "NYC", "New York City"]}, "days": {"$any": [7, 14]}}
    assert ok(gold, {"city": "nyc", "days": 14.0})
    result = ast_match(gold, {"city": "Boston", "days": 7}, SCHEMA)
    assert not result.correct and "none of" in result.reason


# -- AST: nesting ---------------------------------------------------------------------------
def test_nested_objects_check_types_required_and_extra_keys():
    gold = {"city": "Paris", "place": {"lat": 48.85, "lon": 2.35}}
    assert ok(gold, {"city": "Paris", "place": {"lat": 48.85, "lon": 2.35}})
    assert ok(gold, {"city": "Paris", "place": {"lat": 48.85, "lon": 2.35, "name": "centre"}})  # optional
    assert "place.lon: missing required key" in ast_match(gold, {"city": "Paris", "place": {"lat": 48.85}}, SCHEMA).reason
    assert "place.alt: unexpected key" in ast_match(
        gold, {"city": "Paris", "place": {"lat": 48.85, "lon": 2.35, "alt": 3}}, SCHEMA).reason
    assert not ok(gold, {"city": "Paris", "place": {"lat": "48.85", "lon": 2.35}})
    assert not ok(gold, {"city": "Paris", "place": [48.85, 2.35]})


def test_arrays_compare_in_order_with_item_schemas():
    gold = {"city": "Paris", "tags": ["a", "b"], "points": [{"x": 1}, {"x": 2}]}
    assert ok(gold, {"city": "Paris", "tags": ["A", "b"], "points": [{"x": 1.0}, {"x": 2}]})
    assert "tags: 1 items, expected 2" in ast_match(gold, {**gold, "tags": ["a"]}, SCHEMA).reason
    assert not ok(gold, {**gold, "tags": ["b", "a"]})
    assert "points[1].x" in ast_match(gold, {**gold, "points": [{"x": 1}, {"x": "2"}]}, SCHEMA).reason
    assert ok({"city": "Paris", "tags": [{"$any": ["a", "x"]}]}, {"city": "Paris", "tags": ["x"]})


# -- evaluate with ast and --tools -------------------------------------------------------------
def test_evaluate_ast_with_a_tools_file(tmp_path):
    from imaginarium.schemas.toolspec import ToolSource, ToolSpec, write_tools

    tools = tmp_path / "tools.jsonl"
    write_tools(tools, [ToolSpec(name="weather", source_name="weather", parameters=SCHEMA,
                                 source=ToolSource(format="openai"))])
    preds = tmp_path / "preds.jsonl"
    rows = [
        {"action": "weather", "action_input": {"city": "Paris", "days": 3}, "model_output": 'Action: weather\nAction Input: {"city": "paris", "days": 3.0}'},
        {"action": "weather", "action_input": {"city": "Paris", "days": 3}, "model_output": 'Action: weather\nAction Input: {"city": "Paris", "days": "3"}'},
        {"action": "weather", "action_input": {"city": "Paris"}, "model_output": "Final Answer: sunny"},
    ]
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "items.jsonl"
    report = evaluate(preds, EvalConfig(format="jsonl", args_match="ast", tools=tools), out=out)
    assert report["counts"] == {"items": 3, "wellformed": 2, "no_call": 1, "error": 0, "api_match": 2, "correct": 1}
    items = [json.loads(line) for line in out.read_text().splitlines()]
    assert [i["correct"] for i in items] == [True, False, False]
    assert items[1]["reason"] == "days: expected a number, got \"3\""
    assert items[2]["kind"] == "no_call"


# -- LLM judge ----------------------------------------------------------------------------------
def test_judge_prompt_shows_the_query_and_both_argument_sets():
    messages = judge_prompt(JudgeCase("weather in Paris?", "weather", "Weather by city", {"city": "Paris"}, {"city": "paris"}))
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "weather in Paris?" in messages[1]["content"] and '{"city": "paris"}' in messages[1]["content"]


def test_judge_with_the_tiny_model_keeps_a_constrained_verdict_and_reason(tiny_model, tmp_path):
    from imaginarium.models.factory import make_backend

    backend = make_backend("transformers", str(tiny_model))
    preds = tmp_path / "chat.jsonl"
    row = {
        "query": "weather in Paris?",
        "gold": {"name": "weather", "arguments": {"city": "Paris"}},
        "prediction": {"role": "assistant", "tool_calls": [{"function": {"name": "weather", "arguments": "{\"city\": \"paris\"}"}}]},
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather by city", "parameters": SCHEMA}}],
    }
    wrong_api = {**row, "prediction": {"role": "assistant", "tool_calls": [{"function": {"name": "news", "arguments": "{}"}}]}}
    preds.write_text(json.dumps(row) + "\n" + json.dumps(wrong_api) + "\n")
    out = tmp_path / "items.jsonl"
    report = evaluate(preds, EvalConfig(format="chat", args_match="judge"), judge=backend, out=out)
    assert report["judged"] == 1  # only the item with the right API goes to the judge
    first, second = [json.loads(line) for line in out.read_text().splitlines()]
    assert first["method"] == "judge" and first["reason"] and len(first["reason"]) <= 120
    assert not first["reason"].startswith("judge gave no valid verdict")
    assert second["method"] is None and second["correct"] is False
    assert report["counts"]["correct"] == int(first["correct"])


def test_items_that_need_a_judge_get_the_configured_one(tmp_path, tiny_model):
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"action": "f", "action_input": "{}", "model_output": "Action: f\nAction Input: {}"}) + "\n")
    config = EvalConfig.from_flat({"format": "jsonl", "args_match": "judge", "judge_model": str(tiny_model)})
    report = evaluate(preds, config)
    assert report["judged"] == 1 and report["counts"]["items"] == 1


def test_bad_prediction_rows_name_the_file_row_and_field(tmp_path):
    import subprocess
    import sys

    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"action": "f", "action_input": "{not json", "model_output": ""}) + "\n")
    run = subprocess.run([sys.executable, "-m", "imaginarium.cli", "eval", str(preds), "--format", "jsonl"],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert f"{preds}:1: field action_input: not JSON" in run.stderr
