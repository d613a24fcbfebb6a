"""`predict --format bfcl` with the tiny model over BFCL's non-live, live and irrelevance categories,
then `eval --format bfcl` on what it wrote: end to end, both call formats."""

from __future__ import annotations

import json

import pytest

from imaginarium.evaluation.bfcl.data import CATEGORIES, default_data_dir, load_categories
from imaginarium.evaluation.bfcl.predict import item_tools, to_result

DATA = default_data_dir()
pytestmark = pytest.mark.skipif(DATA is None, reason="bfcl-eval (BFCL's data) is not installed")


@pytest.mark.parametrize("call_format", ["json", "native"])
def test_predict_then_eval_on_every_category_with_the_tiny_model(run, tiny_model, tmp_path, call_format):
    results, items = tmp_path / "results.jsonl", tmp_path / "items.jsonl"
    code, out, err = run("predict", "--format", "bfcl", "--category", ",".join(CATEGORIES), "--limit", "1",
                         "--call-format", call_format, "--backend", "transformers", "--model", tiny_model,
                         "--max-tokens", "48", "-o", results)
    assert code == 0, err
    assert f"{len(CATEGORIES)} predictions written" in out
    data = load_categories(DATA, list(CATEGORIES))
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert [line["category"] for line in lines] == list(CATEGORIES)
    for line in lines:
        item = data.items[line["id"]]
        assert set(line) >= {"id", "category", "result", "raw", "finish_reason"}
        if isinstance(line["result"], list):  # decoded calls carry BFCL's own names
            assert {name for call in line["result"] for name in call} <= {doc["name"] for doc in item.functions}
        else:
            assert line["result"] == line["raw"]
    code, out, err = run("eval", results, "--format", "bfcl", "--args-match", "bfcl", "-o", items, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert set(report["by_category"]) == set(CATEGORIES) and report["items"] == len(CATEGORIES)
    scored = [json.loads(line) for line in items.read_text().splitlines()]
    assert [row["id"] for row in scored] == [line["id"] for line in lines]
    assert all(isinstance(row["correct"], bool) and row["reason"] for row in scored)


def test_shown_names_map_back_to_bfcls_names():
    """BFCL names with dots are shown call-safe (`math.factorial` -> `math_factorial_<hash>`);
    the result file carries BFCL's name again."""
    data = load_categories(DATA, ["simple_python", "simple_java"])
    item = data.items["simple_python_1"]
    tools = item_tools(item)
    (tool,) = tools
    assert tool.source_name == item.functions[0]["name"] and "." not in tool.name
    assert to_result([(tool.name, {"number": 5})], {t.name: t.source_name for t in tools}) == [{tool.source_name: {"number": 5}}]
    java = item_tools(data.items["simple_java_0"])[0]  # Java parameters: shown as source text
    assert {schema["type"] for schema in java.parameters["properties"].values()} == {"string"}


def test_predict_bfcl_bad_inputs_are_one_line(run, tmp_path):
    code, _, err = run("predict", "--format", "bfcl", "--category", "multi_turn_base", "-o", tmp_path / "r.jsonl")
    assert code == 2 and "--category" in err and len(err.strip().splitlines()) == 1
    code, _, err = run("predict", "--format", "bfcl", "--test", tmp_path, "-o", tmp_path / "r.jsonl")
    assert code == 2 and "--test" in err
    code, _, err = run("predict", "-o", tmp_path / "r.jsonl")
    assert code == 2 and "--test" in err
    assert not (tmp_path / "r.jsonl").exists()
