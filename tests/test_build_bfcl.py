"""`build bfcl`: held-out trials as BFCL test files, the complement of `build sft --holdout`, read
back by `eval --format bfcl` (and by bfcl-eval's own checker when it is installed)."""

from __future__ import annotations

import json

import pytest
from test_build_sft import inputs  # noqa: F401  (the fixture: hand-made trials and their tools)

from imaginarium.builders.bfcl import BfclConfig, build_bfcl
from imaginarium.builders.sft import SftConfig, build_sft
from imaginarium.evaluation.bfcl.data import load_categories
from imaginarium.evaluation.bfcl.score import score_item
from imaginarium.stage import read_rows


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_held_out_trial_with_a_successful_call_becomes_an_item(inputs, tmp_path):  # noqa: F811
    manifest = build_bfcl(inputs["plain"], inputs["tools"], tmp_path / "bfcl", BfclConfig(holdout=1.0))
    assert manifest["category"] == "simple_python" and manifest["items"] == 5
    assert manifest["skipped"] == {"no successful call": 2}
    questions = lines(tmp_path / "bfcl" / "BFCL_v4_simple_python.json")
    answers = lines(tmp_path / "bfcl" / "possible_answer" / "BFCL_v4_simple_python.json")
    by_query = {q["question"][0][0]["content"]: (q, a) for q, a in zip(questions, answers)}
    question, answer = by_query["What date is 90 days after 2022-10-14?"]
    assert answer["ground_truth"] == [{"add_date": {"date": ["2022-10-14"], "days": [90]}}]  # the call that worked
    (doc,) = question["function"]
    assert doc["parameters"]["type"] == "dict" and doc["parameters"]["properties"]["days"]["type"] == "integer"
    data = load_categories(tmp_path / "bfcl", ["simple_python"])
    for item in data.items.values():  # the gold itself scores correct; another value does not
        (gold,) = item.golds
        name, params = next(iter(gold.items()))
        right = [{name: {key: values[0] for key, values in params.items()}}]
        assert score_item(item, right).valid
        wrong = [{name: {key: "zzz" if isinstance(values[0], str) else values[0] + 1 for key, values in params.items()}}]
        assert not score_item(item, wrong).valid


def test_bfcl_eval_reads_the_export(inputs, tmp_path):  # noqa: F811
    pytest.importorskip("bfcl_eval")
    from test_bfcl_oracle import load_oracle

    ast_checker, language = load_oracle()
    build_bfcl(inputs["plain"], inputs["tools"], tmp_path / "bfcl", BfclConfig(holdout=1.0, max_tools=3))
    data = load_categories(tmp_path / "bfcl", ["multiple"])
    assert len(data.items) == 5
    for item in data.items.values():
        assert len(item.functions) == 3
        (gold,) = item.golds
        name, params = next(iter(gold.items()))
        right = [{name: {key: values[0] for key, values in params.items()}}]
        assert ast_checker(item.functions, right, item.golds, language.PYTHON, "multiple", "m")["valid"]
        assert score_item(item, right).valid


def test_sft_holdout_leaves_out_exactly_what_is_exported(inputs, tmp_path):  # noqa: F811
    options = {"holdout": 0.5, "holdout_seed": 3}
    manifest = build_bfcl(inputs["augmented"], inputs["tools"], tmp_path / "bfcl", BfclConfig(**options))
    exported = {q["question"][0][0]["content"] for q in lines(tmp_path / "bfcl" / "BFCL_v4_simple_python.json")}
    build_sft(inputs["augmented"], inputs["tools"], tmp_path / "sft", SftConfig(**options, max_tools=1), progress=False)
    trained = {row["messages"][1]["content"] for row in read_rows(tmp_path / "sft")}
    build_sft(inputs["augmented"], inputs["tools"], tmp_path / "all", SftConfig(max_tools=1), progress=False)
    everything = {row["messages"][1]["content"] for row in read_rows(tmp_path / "all")}
    assert exported and trained and not exported & trained
    assert exported | trained == everything and manifest["items"] == len(exported)
    paris = {"How warm is it in Paris?", "What's the temperature in Paris right now?"}  # a paraphrase goes with its seed
    assert paris <= exported or paris <= trained


def test_build_bfcl_bad_inputs_are_one_line(run, inputs, tmp_path):  # noqa: F811
    code, _, err = run("build", "bfcl", inputs["plain"], "--tools", inputs["tools"], "--holdout", "0.000001",
                       "-o", tmp_path / "out")
    assert code == 2 and "no trial is held out" in err and not (tmp_path / "out").exists()
    code, out, err = run("build", "bfcl", inputs["plain"], "--tools", inputs["tools"], "--holdout", "1", "-o", tmp_path / "out")
    assert code == 0 and "5 simple_python items" in out, err
