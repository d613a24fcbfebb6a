"""`predict`: end to end with the tiny model (eval scores it), and demonstrations retrieval."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from imaginarium.cli import cli
from imaginarium.evaluation.predict import build_messages, call_regex, nearest_demos

STE_TEST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ste" / "test" / "tool_test.json"


def _pool():
    rows = [
        ("What is the weather in Paris tomorrow?", "forecast_weather", {"location": "Paris", "days": 1}),
        ("Convert 100 US dollars into euros", "convert", {"amount": 100, "from": "USD", "to": "EUR"}),
        ("Find recent papers on protein folding on arXiv", "search_arxiv", {"query": "protein folding"}),
        ("What date is it 30 days after 2023-01-01?", "add_date", {"date": "2023-01-01", "days": 30}),
        ("Give me the latest Formula 1 news", "f1_news", {}),
    ]
    return [{"query": q, "action": a, "action_input": json.dumps(args)} for q, a, args in rows]


def test_demos_are_the_nearest_training_examples():
    pool = _pool()
    queries = ["How many euros do I get for 250 dollars?", "Will it rain in Paris tomorrow?",
               "Latest F1 racing headlines?"]
    chosen = nearest_demos(queries, pool, k=2)
    assert [row[0] for row in chosen] == [1, 0, 4]
    assert all(len(row) == 2 and row[0] != row[1] for row in chosen)
    assert nearest_demos(queries, pool, k=0) == [[], [], []]


def test_prompt_shows_tools_and_demonstrations():
    pool = _pool()
    item = {"query": "Rain in Paris?", "action": "forecast_weather", "action_input": "{}"}
    messages = build_messages(item, [{"name": "forecast_weather", "description": "Weather forecast"}], "", pool[:1])
    system = messages[0]["content"]
    assert "- forecast_weather: Weather forecast" in system
    assert 'User Query: What is the weather in Paris tomorrow?\nAction: forecast_weather\nAction Input: {"location": "Paris", "days": 1}' in system
    assert messages[1] == {"role": "user", "content": "Rain in Paris?"}


def test_call_regex_admits_only_shown_tools_and_json_objects():
    pattern = call_regex(["BART%%Advisory information", "add_date"], max_args=2)
    assert re.fullmatch(pattern, 'Action: BART%%Advisory information\nAction Input: {"cmd": "bsa", "n": -2.5}')
    assert re.fullmatch(pattern, "Action: add_date\nAction Input: {}")
    assert not re.fullmatch(pattern, "Action: search\nAction Input: {}")
    assert not re.fullmatch(pattern, 'Action: add_date\nAction Input: {"a": 1, "b": 2, "c": 3}')
    assert not re.fullmatch(pattern, 'Action: add_date\nAction Input: {"a": 007}')


@pytest.mark.skipif(not STE_TEST.is_file(), reason="the STE test set (../shared/datasets/ste) is not here")
def test_predict_with_the_tiny_model_then_eval(tiny_model, tmp_path):
    """20 STE test items end to end; the demos come from a pool retrieved by embedding."""
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(_pool()))
    out = tmp_path / "pred.json"
    run = CliRunner().invoke(cli, [
        "predict", "--test", str(STE_TEST), "--backend", "transformers", "--model", str(tiny_model),
        "--limit", "20", "--demos", "1", "--demo-pool", str(pool), "--max-tokens", "160", "--max-args", "1",
        "-o", str(out)])
    assert run.exit_code == 0, run.output
    assert "20 predictions written" in run.output
    written = json.loads(out.read_text())
    rows = [row for group in written.values() for row in group]
    assert len(rows) == 20 and {row["action"] for row in rows} == {"add_date", "BART%%Advisory information"}
    assert all(row["demos"] and row["demos"][0] in {p["query"] for p in _pool()} for row in rows)
    # every output has the constrained shape, naming the one tool shown (API_name_list)
    for row in rows:
        assert row["finish_reason"] == "stop"
        assert row["model_output"].startswith(f"Action: {row['API_name_list'][0]}\nAction Input: {{")
    scored = CliRunner().invoke(cli, ["eval", str(out), "--format", "ste", "--args-match", "string", "--json"])
    assert scored.exit_code == 0, scored.output
    report = json.loads(scored.output)
    assert report["counts"]["items"] == 20
    assert report["wellformed"] == 100.0 and report["api_match"] == 100.0
    assert set(report["by_api"]) == {"add_date", "BART%%Advisory information"}


def test_tools_shown_follow_the_item_or_a_neighbours_file(tmp_path):
    from imaginarium.errors import InputError
    from imaginarium.evaluation.predict import _catalogue, shown_tools
    from imaginarium.schemas.toolspec import ToolSource, ToolSpec, safe_name, write_tools

    item = {"query": "q", "action": "A%%x", "action_input": "{}", "API_name_list": ["A%%x"],
            "api_descriptions": "API_name: A%%x\nDescription: does x"}
    names, tools, text = shown_tools(item, None, {})
    assert names == ["A%%x"] and tools == [] and text.startswith("API_name: A%%x")
    tools_file = tmp_path / "tools.jsonl"
    write_tools(tools_file, [ToolSpec(name=safe_name(n), source_name=n, description=f"does {n}",
                                      source=ToolSource(format="toolbench")) for n in ("A%%x", "B%%y")])
    catalogue = _catalogue(tools_file)
    names, tools, text = shown_tools(item, {"A%%x": ["B%%y", "A%%x"]}, catalogue)
    assert names == ["B%%y", "A%%x"] and text == ""
    assert tools[0]["name"] == "B%%y" and tools[0]["description"].startswith("does B%%y")
    with pytest.raises(InputError, match="needs --tools"):
        shown_tools(item, {"A%%x": ["B%%y"]}, {})
    with pytest.raises(InputError, match="not in the tools file"):
        shown_tools(item, {"A%%x": ["C%%z"]}, catalogue)
