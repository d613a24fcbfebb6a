"""TRICE ranking: scores, rankings and pairs on hand-written candidates; the `rank` stage end to end.

The exact tests drive the sampler with `ScriptedBackend`, a backend that answers each request
with a hand-written step (checked against the request's JSON Schema constraint), because the
tiny model's outputs are random: the calls still run through the real executor and the real
built-in calculator and lookup tools, so their executions are known. The end-to-end test uses
the tiny model itself on the 20 math questions of tests/data/trice_math.jsonl.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from imaginarium.errors import InputError
from imaginarium.executor.builtins import TOOLS
from imaginarium.executor.executor import Executor
from imaginarium.models.backend import Backend, Completion
from imaginarium.schemas.records import validate_rows
from imaginarium.trice.questions import questions_from_trials, read_questions
from imaginarium.trice.ranking import pairs, preference_rows, rank, sft_rows, task_stats
from imaginarium.trice.sampler import Question, Sampler, SamplerConfig, candidate_seed
from imaginarium.trice.scoring import Executed, Gold, last_number, normalise, score

DATA = Path(__file__).parent / "data"
CALC_SCHEMA = {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"],
               "additionalProperties": False}


def calc(expression: str, ok: bool = True) -> dict:
    return {"name": "calculator", "arguments": {"expression": expression}, "ok": ok}


# -- scoring -------------------------------------------------------------------------------------
def test_qa_scores_normalised_exact_match():
    gold = Gold("qa", "The Tokyo")
    assert normalise("  the  TOKYO!! ") == "tokyo"
    assert score(Executed([], "tokyo.", True), gold) == (
        1.1, "correct, well-formed, no successful execution: answer matches the gold after normalisation")
    assert score(Executed([calc("1")], "Kyoto", True), gold) == (
        0.11, "wrong, well-formed, executed: answer 'kyoto' != gold 'tokyo'")
    assert score(Executed([calc("x", ok=False)], None, False), gold) == (
        0.0, "wrong, malformed, no successful execution: no final answer")


def test_math_scores_by_the_last_number_within_tolerance():
    gold = Gold("math", "1234.5")
    assert last_number("it is -3 or 1,234.5") == 1234.5
    assert last_number("no digits here") is None
    assert score(Executed([calc("1234.5")], "The answer is 1,234.5000001.", True), gold, tolerance=1e-6)[0] == 1.11
    assert score(Executed([calc("1234.5")], "1234.6", True), gold, tolerance=1e-6) == (
        0.11, "wrong, well-formed, executed: 1234.6 != gold 1234.5")
    assert score(Executed([calc("1234.5")], "1234.6", True), gold, tolerance=1e-3)[0] == 1.11
    assert score(Executed([], "about twelve hundred", True), gold) == (
        0.1, "wrong, well-formed, no successful execution: no number in the answer")


def test_call_scores_by_ast_match_of_any_call():
    gold = Gold("call", None, {"name": "calculator", "arguments": {"expression": "17 * 23"}})
    # The second call matches (strings compare after strip + casefold); the first failed to run.
    value, reason = score(Executed([calc("17*", ok=False), calc(" 17 * 23 ")], "391", True), gold, schema=CALC_SCHEMA)
    assert (value, reason) == (1.1, "correct, well-formed, no successful execution: call of calculator matches "
                                    "the gold (arguments match)")
    assert score(Executed([calc("17 + 23")], "40", True), gold, schema=CALC_SCHEMA) == (
        0.11, "wrong, well-formed, executed: call of calculator does not match the gold: "
              "expression: '17 + 23' != '17 * 23'")
    other = {"name": "convert_units", "arguments": {"value": 1, "from_unit": "km", "to_unit": "m"}, "ok": True}
    assert score(Executed([other], "1000", True), gold, schema=CALC_SCHEMA) == (
        0.11, "wrong, well-formed, executed: no call of calculator")


# -- ranking and pairing ---------------------------------------------------------------------------
def cand(name: str, value: float) -> dict:
    return {"messages": [{"role": "assistant", "content": name}], "score": value, "name": name}


def test_rank_is_by_score_and_stable_for_ties():
    ranked = rank([cand("gold", 1.11), cand("a", 0.1), cand("b", 1.11), cand("c", 1.1), cand("d", 0.1)])
    assert [c["name"] for c in ranked] == ["gold", "b", "c", "a", "d"]


def test_pairs_best_vs_each_worse_and_all_above_a_margin():
    ranked = rank([cand("gold", 1.11), cand("b", 1.11), cand("c", 1.1), cand("a", 0.1), cand("d", 0.0)])
    names = lambda found: [(c["name"], r["name"]) for c, r in found]  # noqa: E731
    assert names(pairs(ranked, "best")) == [("gold", "c"), ("gold", "a"), ("gold", "d")]
    assert names(pairs(ranked, "best", margin=0.5)) == [("gold", "a"), ("gold", "d")]
    assert names(pairs(ranked, "all", margin=0.5)) == [
        ("gold", "a"), ("gold", "d"), ("b", "a"), ("b", "d"), ("c", "a"), ("c", "d")]
    assert names(pairs(ranked, "all", margin=0.05)) == [*names(pairs(ranked, "all", margin=0.5)), ("a", "d")]
    # Same messages, different scores: nothing to prefer.
    twin = [cand("x", 1.0), {**cand("x", 0.5), "name": "x2"}]
    assert pairs(twin, "all") == []
    with pytest.raises(ValueError, match="unknown pairing rule"):
        pairs(ranked, "worst")


# -- the sampler on hand-written candidates ---------------------------------------------------------
class ScriptedBackend(Backend):
    """Answers each request with the next hand-written step of its candidate (see module docstring).

    `script[question text][k]` lists candidate k's steps. A request's candidate is found from its
    seed: the sampler seeds step n of candidate k with `candidate_seed(seed, question id, k) + n`.
    """

    name = "scripted"

    def __init__(self, model: str, script: dict[str, list[list]], questions: list[Question]):
        super().__init__(model)
        self.script = script
        self.candidates = {candidate_seed(0, q.id, k): (q.question, k)
                           for q in questions for k in range(len(script[q.question]))}
        self.requests = []

    def _generate(self, requests):
        out = []
        for request in requests:
            self.requests.append(request)
            made = sum(1 for m in request.messages[2:] if m["role"] == "assistant")
            question, k = self.candidates[request.seed - made]
            assert request.messages[1]["content"] == question
            step = self.script[question][k][made]
            if isinstance(step, str):  # a broken output
                out.append(Completion(step, "invalid", error="not JSON"))
                continue
            jsonschema.validate(step, request.constraint.value)
            out.append(Completion(json.dumps(step), "stop", value=step))
        return out


def act(thought: str, *, call: str | None = None, answer: str | None = None) -> dict:
    if call is not None:
        return {"thought": thought, "call": {"name": "calculator", "arguments": {"expression": call}}}
    return {"thought": thought, "final_answer": answer}


MATH = Question("m1", "What is 17 times 23?", "math", "391", ["calculator"],
                {"name": "calculator", "arguments": {"expression": "17 * 23"}})
QA = Question("q1", "What is the capital of Japan?", "qa", "Tokyo", ["lookup_country"])
CALL = Question("c1", "Compute 2 to the 10th.", "call", None, ["calculator"],
                {"name": "calculator", "arguments": {"expression": "2 ** 10"}})
SCRIPT = {
    MATH.question: [
        [act("use it", call="17 * 23"), act("done", answer="391")],       # right, executed: 1.11
        [act("guess", answer="400")],                                       # wrong, no call: 0.1
        [act("try", call="17 x 23"), act("hm", answer="391")],             # right, call failed: 1.1
        ["{not json", act("ok", answer="391")],                             # right, malformed: 1.0
    ],
    QA.question: [
        [{"thought": "look", "call": {"name": "lookup_country", "arguments": {"country": "Japan"}}},
         act("found", answer="tokyo")],                                     # 1.11
        [act("know it", answer="Kyoto")],                                   # 0.1
        [{"thought": "look", "call": {"name": "lookup_country", "arguments": {"country": "Atlantis"}}},
         act("unsure", answer="The Tokyo.")],                               # 1.1
        [act("know it", answer="Tokyo")],                                   # 1.1 (same score: order kept)
    ],
    CALL.question: [
        [act("power", call="2**10"), act("done", answer="1024")],          # AST: "2**10" != "2 ** 10": 0.11
        [act("power", call="2 ** 10"), act("done", answer="1024")],        # 1.11
        [act("a", call="2 ** 10"), act("b", call="2 ** 10"), act("c", answer="1024")],  # 2 calls, then only an answer
        [act("skip", answer="1024")],                                       # no call: 0.1
    ],
}


@pytest.fixture(scope="module")
def ranked_rows():
    tools = TOOLS()
    backends = [ScriptedBackend("m-a", SCRIPT, [MATH, QA, CALL]), ScriptedBackend("m-b", SCRIPT, [MATH, QA, CALL])]
    sampler = Sampler(tools, backends, Executor(tools), SamplerConfig(candidates=4, temperatures=[0.5, 1.0],
                                                                      max_turns=2), system="Be brief.")
    rows = sampler.run_batch([MATH, QA, CALL])
    return rows, backends


def summary(row):
    return [(c["model"], c["score"], c["final_answer"]) for c in row["candidates"]]


def test_sampler_scores_and_ranks_executed_candidates_exactly(ranked_rows):
    rows, backends = ranked_rows
    validate_rows("ranking_row", rows)
    math_row, qa_row, call_row = rows
    assert summary(math_row) == [("gold", 1.11, "391"), ("m-a", 1.11, "391"), ("m-a", 1.1, "391"),
                                 ("m-b", 1.0, "391"), ("m-b", 0.1, "400")]
    assert summary(qa_row) == [("m-a", 1.11, "tokyo"), ("gold", 1.1, "Tokyo"), ("m-a", 1.1, "The Tokyo."),
                               ("m-b", 1.1, "Tokyo"), ("m-b", 0.1, "Kyoto")]
    assert summary(call_row) == [("m-b", 1.11, "1024"), ("m-a", 1.11, "1024"), ("gold", 1.01, None),
                                 ("m-a", 0.11, "1024"), ("m-b", 0.1, "1024")]
    assert math_row["gold"] == "391"
    assert call_row["gold"] == '{"arguments": {"expression": "2 ** 10"}, "name": "calculator"}'
    # Real executions: the gold call's observation and a failed call's error.
    gold = math_row["candidates"][0]["messages"]
    assert [m["role"] for m in gold] == ["assistant", "tool", "assistant"]
    assert json.loads(gold[1]["content"])["result"] == 391 and gold[1]["tool_call_id"] == gold[0]["tool_calls"][0]["id"]
    failed = math_row["candidates"][2]["messages"]
    assert failed[1]["content"].startswith("ValueError") and "17 x 23" in failed[1]["content"]
    assert math_row["candidates"][2]["reason"] == (
        "correct, well-formed, no successful execution: 391 equals the gold 391 within 1e-06")
    # Candidates take models and temperatures in turn: k even on m-a at 0.5, k odd on m-b at 1.0.
    assert {(b.model, r.temperature) for b in backends for r in b.requests} == {("m-a", 0.5), ("m-b", 1.0)}
    # After max_turns calls only an answer is allowed.
    third = [r for r in backends[0].requests if r.messages[1]["content"] == CALL.question][-1]
    assert "anyOf" not in third.constraint.value and "final_answer" in third.constraint.value["properties"]


def test_preference_and_sft_rows_from_ranked_candidates(ranked_rows):
    rows, _ = ranked_rows
    best = preference_rows(rows, "best")
    validate_rows("preference_row", best)
    assert [(p["question_id"], p["chosen_score"], p["rejected_score"]) for p in best] == [
        ("m1", 1.11, 1.1), ("m1", 1.11, 1.0), ("m1", 1.11, 0.1),
        ("q1", 1.11, 1.1), ("q1", 1.11, 1.1), ("q1", 1.11, 1.1), ("q1", 1.11, 0.1),
        ("c1", 1.11, 1.01), ("c1", 1.11, 0.11), ("c1", 1.11, 0.1)]
    assert best[0]["chosen"][0]["tool_calls"][0]["function"]["name"] == "calculator"
    assert best[0]["tools"][0]["function"]["name"] == "calculator"
    assert [m["role"] for m in best[0]["prompt"]] == ["system", "user"]
    margin = preference_rows(rows, "all", margin=0.5)
    assert [(p["question_id"], p["chosen_score"], p["rejected_score"]) for p in margin] == [
        ("m1", 1.11, 0.1), ("m1", 1.11, 0.1), ("m1", 1.1, 0.1), ("m1", 1.0, 0.1),
        ("q1", 1.11, 0.1), ("q1", 1.1, 0.1), ("q1", 1.1, 0.1), ("q1", 1.1, 0.1),
        ("c1", 1.11, 0.11), ("c1", 1.11, 0.1), ("c1", 1.11, 0.11), ("c1", 1.11, 0.1),
        ("c1", 1.01, 0.11), ("c1", 1.01, 0.1)]
    sft = sft_rows(rows, "best")
    validate_rows("sft_row", sft)
    assert [(r["origin_trial"], json.loads(r["scores"])["model"]) for r in sft] == [
        ("m1", "gold"), ("q1", "m-a"), ("c1", "m-b")]
    assert sft[0]["messages"][0] == {"role": "system", "content": "Be brief.", "tool_calls": None,
                                     "tool_call_id": None, "name": None}
    assert sft[1]["api"] == "lookup_country" and sft[0]["source"] == "trice"
    assert [r["origin_trial"] for r in sft_rows(rows, "gold")] == ["m1", "q1", "c1"]


def test_task_stats(ranked_rows):
    rows, _ = ranked_rows
    unpaired = {**rows[0], "question_id": "m2", "candidates": rows[0]["candidates"][:2]}  # both 1.11
    stats = task_stats([*rows, unpaired])
    assert stats["math"] == {
        "questions": 2, "candidates_per_question": {"mean": 3.5, "min": 2, "max": 5},
        "score_distribution": {"1.11": 4, "1.1": 1, "1": 1, "0.1": 1}, "share_with_preference_signal": 0.5}
    assert stats["qa"]["score_distribution"] == {"1.11": 1, "1.1": 3, "0.1": 1}
    assert stats["call"]["share_with_preference_signal"] == 1.0


# -- questions ---------------------------------------------------------------------------------------
def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(("row", "message"), [
    ({"answer": "1"}, "row 0, field question: missing or empty"),
    ({"question": "q?", "task": "math", "answer": "none"}, "row 0, field answer: a math answer needs a number"),
    ({"question": "q?", "task": "sum", "answer": "1"}, "row 0, field task: 'sum' is not one of qa, math, call"),
    ({"question": "q?", "task": "call"}, "row 0, field call: a call task needs the gold call"),
    ({"question": "q?", "answer": "1", "tools": ["nope"]}, "row 0, field tools: unknown tool(s) nope"),
    ({"question": "q?", "call": {"name": "calculator", "arguments": "[1]"}},
     "row 0, field call/arguments: must be a JSON object"),
    ({"question": "q?", "answer": "1", "tools": ["add_date"], "call": {"name": "calculator", "arguments": {}}},
     "row 0, field call: the gold call's tool calculator is not among the question's tools"),
])
def test_bad_questions_name_row_and_field(tmp_path, row, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        read_questions(write_jsonl(tmp_path / "q.jsonl", [row]), TOOLS())


def test_question_defaults(tmp_path):
    questions, _ = read_questions(write_jsonl(tmp_path / "q.jsonl", [
        {"question": "Capital of Peru?", "answer": "Lima"},
        {"id": "c", "question": "2+2?", "call": {"name": "calculator", "arguments": '{"expression": "2+2"}'}}]),
        TOOLS())
    assert questions[0].id == "0" and questions[0].task == "qa" and len(questions[0].tools) == len(TOOLS())
    assert questions[1].task == "call"
    assert questions[1].call == {"name": "calculator", "arguments": {"expression": "2+2"}}


def ste_trial(tid, succeeded, source, status="ok", answer="It is 391."):
    """An episode-trial record: a call of 17*23 (its response from `source`), a failed call, an answer."""
    def step(action, arguments=None, observation=None):
        call = {"name": "calculator", "arguments": json.dumps({"expression": arguments})} if arguments else None
        return {"thought": "t", "action": action, "call": call, "parse_error": None,
                "observation": json.dumps(observation) if observation else None}

    steps = [step("call", "17*23", {"content": '{"result": 391}', "status": status, "source": source}),
             step("call", "bad", {"content": "ValueError", "status": "error", "source": "real"}),
             step("final_answer")]
    return {"trial_id": tid, "api": "calculator", "episode": 0, "slot": 0, "query": f"query {tid}",
            "tools_shown": ["calculator", "add_date"], "steps": steps, "final_answer": answer,
            "succeeded": succeeded, "reflection": "yes", "model": "hand", "backend": "none", "seed": 0}


def test_successful_ste_trials_become_questions():
    rows = [ste_trial("a", True, "cached"), ste_trial("b", False, "real"), ste_trial("c", True, "simulated"),
            ste_trial("d", True, "real", answer=None), ste_trial("e", True, "real")]
    questions, counts = questions_from_trials(rows, TOOLS())
    assert counts == {"questions": 2, "trials_skipped": 3}
    assert [(q.id, q.task, q.answer, q.tools) for q in questions] == [
        ("a", "call", "It is 391.", ["calculator", "add_date"]),
        ("e", "call", "It is 391.", ["calculator", "add_date"])]
    assert questions[0].call == {"name": "calculator", "arguments": {"expression": "17*23"}}


def test_rank_reads_a_stage_directory_of_trials(tmp_path):
    """Trials in, call questions out; with no sampled candidates only the gold runs (no model)."""
    from imaginarium.schemas.records import arrow_schema
    from imaginarium.stage import read_rows, write_stage
    from imaginarium.trice.rank import RankConfig, rank

    trials = tmp_path / "trials"
    write_stage(trials, "explore", {}, {}, [ste_trial("a", True, "real"), ste_trial("b", False, "real")],
                schema=arrow_schema("episode_trial"))
    manifests = rank(trials, tmp_path / "out", RankConfig(candidates=0), progress=False)
    assert manifests["ranking"]["counts"] == {"rows": 1, "questions": 1, "trials_skipped": 1, "candidates": 1}
    (row,) = read_rows(tmp_path / "out" / "ranking")
    assert row["task"] == "call" and [t["function"]["name"] for t in row["tools"]] == ["calculator", "add_date"]
    (gold,) = row["candidates"]
    assert (gold["score"], gold["final_answer"]) == (1.11, "It is 391.")
    assert json.loads(gold["messages"][1]["content"]) == {"expression": "17*23", "result": 391}


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "q?", "task": "math", "answer": "x"}])
    result = subprocess.run([sys.executable, "-m", "imaginarium.cli", "rank", str(path), "-o", str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {path}: row 0, field answer: a math answer needs a number, got 'x'"
    assert not (tmp_path / "out").exists()


# -- end to end: the tiny model, the built-in calculator, 20 math questions ---------------------------
RUN_OPTIONS = dict(candidates=2, min_calls=1, max_turns=1, max_thought_chars=8, max_answer_chars=12,
                   max_argument_chars=16, max_tokens=96, batch_size=10)


@pytest.fixture(scope="module")
def math_run(tiny_model, tmp_path_factory):
    from imaginarium.trice.rank import RankConfig, rank

    out = tmp_path_factory.mktemp("trice") / "run"
    config = RankConfig.from_flat(dict(RUN_OPTIONS, model=str(tiny_model), render_with=str(tiny_model)))
    manifests = rank(DATA / "trice_math.jsonl", out, config, progress=False)
    return out, manifests


def load(directory: Path):
    import datasets

    return datasets.load_dataset("parquet", data_files=str(directory / "data" / "*.parquet"), split="train")


def test_rank_end_to_end_with_real_executions(math_run):
    out, manifests = math_run
    ranking = load(out / "ranking").to_list()
    validate_rows("ranking_row", ranking)
    assert [r["question_id"] for r in ranking] == [f"math-{i:02d}" for i in range(1, 21)]
    executor = Executor(TOOLS())
    for row in ranking:
        assert len(row["candidates"]) == 3 and [c["score"] for c in row["candidates"]] == sorted(
            (c["score"] for c in row["candidates"]), reverse=True)
        gold = [c for c in row["candidates"] if c["model"] == "gold"]
        assert len(gold) == 1 and gold[0]["score"] == 1.11, row["question_id"]  # the gold answers are right
        for candidate in row["candidates"]:
            call_message, tool_message = candidate["messages"][:2]
            (call,) = call_message["tool_calls"]
            assert call["function"]["name"] == "calculator"
            # The observation is what the calculator really returns for those arguments.
            again = executor.execute({"name": "calculator", "arguments": call["function"]["arguments"]})
            assert tool_message["content"] == again.content and tool_message["tool_call_id"] == call["id"]
    stats = manifests["ranking"]["extra"]["stats"]["math"]
    signal = sum(1 for r in ranking if len({c["score"] for c in r["candidates"]}) > 1) / 20
    assert stats["questions"] == 20 and stats["candidates_per_question"] == {"mean": 3, "min": 3, "max": 3}
    assert stats["share_with_preference_signal"] == signal
    assert sum(stats["score_distribution"].values()) == 60
    assert manifests["ranking"]["counts"] == {"rows": 20, "questions": 20, "candidates": 60}


def test_rank_outputs_load_with_datasets(math_run):
    out, manifests = math_run
    preference, sft, text = load(out / "preference"), load(out / "sft"), load(out / "preference_text")
    validate_rows("preference_row", preference.to_list())
    validate_rows("sft_row", sft.to_list())
    ranking = load(out / "ranking").to_list()
    assert len(preference) == len(preference_rows(ranking, "best")) > 0
    assert all(p["chosen_score"] > p["rejected_score"] for p in preference)
    assert all(m["tool_calls"] for p in preference for m in p["chosen"][:1])
    assert len(sft) == 20 and all(json.loads(r["scores"])["score"] >= 1 for r in sft)
    assert len(text) == len(preference) and set(text.column_names) >= {"prompt", "chosen", "rejected"}
    assert all('"calculator"' in row["prompt"] and "calculator" in row["chosen"] for row in text)
    assert {name: m["extra"]["release_config"] for name, m in manifests.items()} == {
        "ranking": "trice_ranking", "preference": "trice_preference", "sft": "trice_sft",
        "preference_text": "preference_text"}


def test_cli_rerun_is_a_no_op_and_prints_stats(math_run, tiny_model):
    from click.testing import CliRunner

    from imaginarium.trice.cli import rank_command

    out, manifests = math_run
    options = [f"--{key.replace('_', '-')}={value}" for key, value in RUN_OPTIONS.items()]
    result = CliRunner().invoke(rank_command, [str(DATA / "trice_math.jsonl"), "-o", str(out), "--model",
                                               str(tiny_model), "--render-with", str(tiny_model), *options])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"20 questions, 60 candidates -> {out}/ranking"
    assert lines[1].startswith("math: 20 questions, 3 candidates each (min 3, max 3), ")
    assert lines[-1] == f"{manifests['preference']['counts']['rows']} preference pairs, 20 SFT rows"
    for name, manifest in manifests.items():
        assert json.loads((out / name / "manifest.json").read_text())["created_at"] == manifest["created_at"]


def test_recipe_stage_kind_rank(tmp_path):
    """The runner chains `rank` like any stage (candidates 0: the gold only, so no model loads)."""
    from imaginarium.recipes.runner import run_recipe

    (tmp_path / "q.jsonl").write_text((DATA / "trice_math.jsonl").read_text())
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: t\nstages:\n  - name: trice\n    uses: rank\n"
                      "    with: {questions: q.jsonl, candidates: 0}\n")
    outputs = run_recipe(recipe, tmp_path / "run", progress=False, echo=lambda line: None)
    assert outputs["trice"] == tmp_path / "run" / "trice"
    rows = json.loads((tmp_path / "run/trice/sft/manifest.json").read_text())["counts"]["rows"]
    assert rows == 20 and not (tmp_path / "run/trice/preference_text").exists()


def test_sigkill_mid_run_then_resume_keeps_finished_batches(tiny_model, tmp_path):
    import os
    import signal
    import time

    import pyarrow.parquet as pq

    from imaginarium.stage import read_manifest, read_rows

    out = tmp_path / "run"
    options = [f"--{key.replace('_', '-')}={value}" for key, value in {**RUN_OPTIONS, "batch_size": 2}.items()]
    command = [sys.executable, "-m", "imaginarium.cli", "rank", str(DATA / "trice_math.jsonl"), "-o", str(out),
               "--model", str(tiny_model), *options]
    env = dict(os.environ, TORCHDYNAMO_DISABLE="1")
    progress = out / "ranking" / ".progress"
    with open(tmp_path / "log.txt", "w") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and len(list(progress.glob("chunk-*.parquet"))) < 2:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert read_manifest(out / "ranking") is None, "the run finished before it could be killed"
    before = [row for chunk in sorted(progress.glob("chunk-*.parquet")) for row in pq.read_table(chunk).to_pylist()]
    assert before, (tmp_path / "log.txt").read_text()[-3000:]

    subprocess.run(command, env=env, check=True, capture_output=True)
    rows = read_rows(out / "ranking")
    assert [r["question_id"] for r in rows] == [f"math-{i:02d}" for i in range(1, 21)]
    by_id = {r["question_id"]: r for r in rows}
    assert all(by_id[row["question_id"]] == row for row in before)  # finished batches kept, not redone


def test_run_directory_makes_a_release(math_run, tmp_path):
    import datasets

    from imaginarium.hub_cards.release import build_release

    out, manifests = math_run
    build_release([out], tmp_path / "release", name="trice-test", version="0.1.0")
    preference = datasets.load_dataset(str(tmp_path / "release"), "trice_preference", split="train")
    ranking = datasets.load_dataset(str(tmp_path / "release"), "trice_ranking", split="train")
    assert len(preference) == manifests["preference"]["counts"]["rows"] and len(ranking) == 20
    assert preference[0]["chosen"][0]["tool_calls"][0]["function"]["name"] == "calculator"
