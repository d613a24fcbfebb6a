"""The served-model path: every command that generates runs against an OpenAI-compatible server.

The server is tests/openai_server.py on 127.0.0.1, serving the tiny model (a real HTTP server
speaking the API subset `vllm serve` speaks) and requiring an API key, which the commands read
from the environment variable named by --api-key-env and which never appears in their output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from paths import ROOT, STE

from imaginarium.stage import read_manifest, read_rows

KEY = "sk-served-model-test-key"
TOOLSET = ROOT / "recipes" / "example_toolset"
DATA = ROOT / "tests" / "data"


@pytest.fixture(scope="module")
def server(tiny_model):
    from openai_server import OpenAITestServer

    from imaginarium.models.factory import make_backend

    with OpenAITestServer(make_backend("transformers", str(tiny_model)), model_name="tiny", api_key=KEY) as served:
        yield served


@pytest.fixture
def served(server, monkeypatch):
    monkeypatch.setenv("SERVED_KEY", KEY)
    return ["--backend", "openai", "--base-url", server.base_url, "--model", "tiny", "--api-key-env", "SERVED_KEY"]


@pytest.fixture(scope="module")
def toolset(tmp_path_factory):
    from imaginarium.executor.cache import import_cache
    from imaginarium.executor.tools_import import import_tools

    root = tmp_path_factory.mktemp("served")
    import_tools([TOOLSET / "python_tools.json", TOOLSET / "openapi.yaml"], root / "tools.jsonl")
    import_cache(TOOLSET / "cache.jsonl", root / "cache.sqlite")
    return root


SMALL = ["--max-query-chars", "24", "--max-thought-chars", "8", "--max-answer-chars", "16",
         "--max-argument-chars", "8", "--max-tokens", "64"]


def no_key(*texts: str) -> None:
    for text in texts:
        assert KEY not in text


def test_explore_then_filter_with_the_judge_then_augment(run, served, toolset, tmp_path):
    code, out, err = run("explore", "--tools", toolset / "tools.jsonl", "--apis", "add_date,get_current_weather",
                         "--episodes", "1", "--stm-slots", "2", "--max-turns", "1", "--cache", toolset / "cache.sqlite",
                         "--cache-mode", "replay", *SMALL, "-o", tmp_path / "explore", *served)
    assert code == 0, err
    rows = read_rows(tmp_path / "explore")
    assert len(rows) == 4 and {r["model"] for r in rows} == {"tiny"} and {r["backend"] for r in rows} == {"openai"}
    code, out2, err2 = run("filter", tmp_path / "explore", "-o", tmp_path / "filter", "--no-semantic",
                           "--max-tokens", "200", *served)
    assert code == 0, err2
    manifest = read_manifest(tmp_path / "filter")
    assert [s["name"] for s in manifest["extra"]["funnel"]["steps"]] == ["final_answer", "executed", "judge", "dedupe"]
    # every trial that reached the judge has a verdict (or the judge's named failure)
    for row in read_rows(tmp_path / "filter"):
        assert json.loads(row["scores"])["judge"]
    write_kept(tmp_path)
    code, out3, err3 = run("augment", tmp_path / "kept", "-o", tmp_path / "augment", "--target-per-api", "3",
                           "--max-query-chars", "24", "--no-semantic", *served)
    assert code == 0, err3
    assert read_manifest(tmp_path / "augment")["counts"]["paraphrases_generated"] == 2
    no_key(out, err, out2, err2, out3, err3)


def write_kept(tmp_path: Path) -> None:
    """One kept trial for augment (the tiny model's judge keeps trials at random)."""
    from imaginarium.schemas.records import arrow_schema
    from imaginarium.stage import write_stage

    row = {**read_rows(tmp_path / "explore")[0], "query": "What date is 3 days after 2024-05-01?"}
    write_stage(tmp_path / "kept", "filter", {}, {}, [row], schema=arrow_schema("episode_trial"))


def test_rank(run, served, tmp_path):
    code, out, err = run("rank", DATA / "trice_math.jsonl", "-o", tmp_path / "rank", "--candidates", "1",
                         "--max-turns", "1", "--min-calls", "1", "--max-thought-chars", "8", "--max-answer-chars", "12",
                         "--max-argument-chars", "16", "--max-tokens", "96", "--batch-size", "20", *served)
    assert code == 0, err
    ranking = read_rows(tmp_path / "rank" / "ranking")
    assert len(ranking) == 20 and all(len(r["candidates"]) == 2 for r in ranking)
    assert {c["model"] for r in ranking for c in r["candidates"]} == {"tiny", "gold"}
    no_key(out, err)


@pytest.mark.skipif(not (STE / "test" / "tool_test.json").is_file(), reason="the STE test set is not here")
def test_predict_then_eval_with_the_judge(run, served, server, tmp_path):
    code, out, err = run("predict", "--test", STE / "test" / "tool_test.json", "--limit", "4", "--max-tokens", "96",
                         "--max-args", "1", "-o", tmp_path / "pred.json", *served)
    assert code == 0, err
    written = json.loads((tmp_path / "pred.json").read_text())
    assert sum(len(v) for v in written.values()) == 4
    judge = ["--judge-backend", "openai", "--judge-base-url", server.base_url, "--judge-model", "tiny",
             "--judge-api-key-env", "SERVED_KEY"]
    code, out2, err2 = run("eval", tmp_path / "pred.json", "--args-match", "judge", "--json", *judge)
    assert code == 0, err2
    report = json.loads(out2)
    assert report["counts"]["items"] == 4 and report["judged"] == report["counts"]["api_match"]
    no_key(out, err, out2, err2)


def test_tools_call_in_simulate_mode(run, served, toolset, tmp_path):
    cache = tmp_path / "cache.sqlite"
    code, out, err = run("tools", "call", toolset / "tools.jsonl", "get_current_weather", '{"city": "Lima"}',
                         "--cache", cache, "--cache-mode", "simulate", *served)
    assert code == 0, err
    observation = json.loads(out)
    assert observation["source"] == "simulated" or observation["status"] == "error"
    no_key(out, err)


def test_generate(run, served):
    code, out, err = run("generate", "--choice", "yes,no", "--n", "3", *served)
    assert code == 0, err
    assert [json.loads(line)["value"] for line in out.splitlines()] and all(
        json.loads(line)["value"] in ("yes", "no") for line in out.splitlines())
    no_key(out, err)


def test_a_wrong_key_is_refused_by_the_server(run, server, monkeypatch):
    monkeypatch.setenv("SERVED_KEY", "sk-wrong")
    _code, out, err = run("generate", "--choice", "yes,no", "--n", "1", "--backend", "openai", "--base-url",
                         server.base_url, "--model", "tiny", "--api-key-env", "SERVED_KEY")
    result = json.loads(out)
    assert result["finish_reason"] == "error" and "sk-wrong" not in out + err
