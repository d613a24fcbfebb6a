"""eval, predict and rank check every row of their inputs before any model loads or anything is
generated: a bad row is one line naming the file, the line (or the item's JSON pointer) and the
field, exit 2, nothing written; `--skip-invalid` goes on with the good rows and reports how many
were skipped and the first reasons on stderr."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REACT = 'Action: f\nAction Input: {"a": 1}'
STE_ROW = {"query": "q", "action": "f", "action_input": '{"a": 1}', "model_output": REACT, "API_name_list": ["f"]}
CHAT_ROW = {"gold": {"name": "f", "arguments": {"a": 1}},
            "prediction": {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": '{"a": 1}'}}]},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {
                "type": "object", "properties": {"a": {"type": "integer"}}}}}]}
TEST_ROW = {"query": "What is 2 + 2?", "action": "f", "action_input": '{"a": 1}', "API_name_list": ["f"],
            "api_descriptions": "f: adds"}
QUESTION = {"id": "q1", "question": "What is 17 times 23?", "answer": "391", "task": "math", "tools": ["calculator"],
            "call": {"name": "calculator", "arguments": {"expression": "17 * 23"}}}
DEEP = "[" * 150 + "]" * 150


@pytest.fixture(autouse=True)
def no_model(monkeypatch):
    """Validation comes first: opening a backend or embedding anything fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr("imaginarium.evaluation.predict.open_backend", refuse)
    monkeypatch.setattr("imaginarium.evaluation.evaluate.open_backend", refuse)
    monkeypatch.setattr("imaginarium.trice.rank.open_backend", refuse)
    monkeypatch.setattr("imaginarium.embeddings.embed", refuse)


def jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def command(kind: str, path: Path, tmp_path: Path, *extra: str) -> tuple[list[str], Path]:
    """The command line for `kind` on `path`, and what it would write."""
    if kind == "eval":
        out = tmp_path / "items.jsonl"
        return ["eval", str(path), "-o", str(out), *extra], out
    if kind == "predict":
        out = tmp_path / "pred.json"
        return ["predict", "--test", str(path), "-o", str(out), "--model", "tiny", *extra], out
    out = tmp_path / "out"
    return ["rank", str(path), "-o", str(out), "--model", "tiny", *extra], out


def refused(run, args: list[str], out: Path, *expected: str) -> str:
    """Exit 2, one line `error: ...` holding every `expected` text, no traceback, nothing written."""
    code, stdout, stderr = run(*args)
    assert code == 2, (stdout, stderr)
    assert "Traceback" not in stderr
    line = stderr.strip()
    assert "\n" not in line and line.startswith("error: "), stderr
    for text in expected:
        assert text in line, line
    assert not out.exists()
    return line


# -- one case per failure class and command ---------------------------------------------------------
def group_cases(tmp: Path):
    good = {"f": [STE_ROW]}
    for value, kind in ((5, "int"), (None, "null")):
        path = tmp / f"groups_{kind}.json"
        path.write_text(json.dumps({**good, "g": value}))
        yield "eval", path, ["--format", "ste"], [f"{path}#/g", "group 'g': must be a list of items, not " + kind]
        path = tmp / f"test_{kind}.json"
        path.write_text(json.dumps({"f": [TEST_ROW], "g": value}))
        yield "predict", path, [], [f"{path}#/g", "must be a list of items"]
    path = jsonl(tmp / "q_number.jsonl", [QUESTION, 5])
    yield "rank", path, [], [str(path), "row 1, field (row): not a JSON object"]


def tool_calls_cases(tmp: Path):
    for value, label in ((5, "number"), ({"function": {"name": "f"}}, "object")):
        path = jsonl(tmp / f"chat_{label}.jsonl", [CHAT_ROW, {**CHAT_ROW, "prediction": {"tool_calls": value}}])
        yield "eval", path, ["--format", "chat"], [f"{path}:2", "field prediction.tool_calls: must be a list"]
        path = jsonl(tmp / f"ste_{label}.jsonl", [STE_ROW, {**STE_ROW, "model_output": {"tool_calls": value}}])
        yield "eval", path, ["--format", "jsonl"], [f"{path}:2", "field model_output.tool_calls: must be a list"]


def tool_name_cases(tmp: Path):
    for value, label in ((["f"], "list"), ({"name": "f"}, "dict")):
        path = jsonl(tmp / f"names_{label}.jsonl", [STE_ROW, {**STE_ROW, "API_name_list": [value]}])
        yield "eval", path, ["--format", "jsonl"], [f"{path}:2", "field API_name_list[0]: must be a non-empty string"]
        tools = [{"type": "function", "function": {"name": value}}]
        path = jsonl(tmp / f"chat_{label}.jsonl", [CHAT_ROW, {**CHAT_ROW, "tools": tools}])
        yield "eval", path, ["--format", "chat"], [f"{path}:2", "field tools[0].name: must be a non-empty string"]
        path = jsonl(tmp / f"gold_{label}.jsonl", [{**CHAT_ROW, "gold": {"name": value}}])
        yield "eval", path, ["--format", "chat"], [f"{path}:1", "field gold"]
        path = jsonl(tmp / f"test_action_{label}.jsonl", [TEST_ROW, {**TEST_ROW, "action": value}])
        yield "predict", path, [], [f"{path}:2", "field action: must be a non-empty string"]
        path = jsonl(tmp / f"test_names_{label}.jsonl", [TEST_ROW, {**TEST_ROW, "API_name_list": ["f", value]}])
        yield "predict", path, [], [f"{path}:2", "field API_name_list[1]: must be a non-empty string"]
        path = jsonl(tmp / f"q_call_{label}.jsonl", [QUESTION, {**QUESTION, "id": "q2", "call": {"name": value}}])
        yield "rank", path, [], [str(path), "row 1, field call: must be an object {name, arguments}"]
        path = jsonl(tmp / f"q_tools_{label}.jsonl", [QUESTION, {**QUESTION, "id": "q2", "tools": [value]}])
        yield "rank", path, [], [str(path), "row 1, field tools: must be a non-empty list of tool names"]


def ast_parameters_cases(tmp: Path):
    for parameters, expected in (('{"type": "object"}', "must be a JSON Schema object"),
                                 ({"type": "object", "properties": {"a": True}}, "property /properties/a"),
                                 ({"type": "object", "properties": "a"}, "invalid JSON Schema")):
        tools = [{"type": "function", "function": {"name": "f", "parameters": parameters}}]
        path = jsonl(tmp / f"ast_{len(tmp.name)}_{expected[:8].replace(' ', '_')}.jsonl",
                     [CHAT_ROW, {**CHAT_ROW, "tools": tools}])
        yield "eval", path, ["--format", "chat", "--args-match", "ast"], [f"{path}:2", "field tools[0].parameters", expected]
    path = jsonl(tmp / "ast_any.jsonl", [{**CHAT_ROW, "gold": {"name": "f", "arguments": {"a": {"$any": 1}}}}])
    yield "eval", path, ["--format", "chat", "--args-match", "ast"], [f"{path}:1", "field gold.arguments.a: $any must be a list"]


def non_utf8_cases(tmp: Path):
    bad = '{"query": "caf\xe9"}'.encode("latin-1")
    for kind, fmt, row, name in (("eval", "jsonl", STE_ROW, "p.jsonl"), ("eval", "chat", CHAT_ROW, "c.jsonl"),
                                 ("predict", None, TEST_ROW, "t.jsonl"), ("rank", None, QUESTION, "q.jsonl")):
        path = tmp / f"latin1_{name}"
        path.write_bytes(json.dumps(row).encode() + b"\n" + bad + b"\n")
        yield kind, path, ["--format", fmt] if fmt else [], [f"{path}:2", "not UTF-8"]
    path = tmp / "latin1.json"
    path.write_bytes(b'{"f": [\n' + json.dumps(STE_ROW).encode() + b",\n" + bad + b"\n]}")
    yield "eval", path, ["--format", "ste"], [f"{path}:3", "not UTF-8"]
    path = tmp / "latin1_test.json"
    path.write_bytes(b'[\n' + json.dumps(TEST_ROW).encode() + b",\n" + bad + b"\n]")
    yield "predict", path, [], [f"{path}:3", "not UTF-8"]


def deep_cases(tmp: Path):
    expected = "nested deeper than 100 levels"
    path = jsonl(tmp / "deep.jsonl", [STE_ROW, json.dumps({**STE_ROW, "action_input": "X"}).replace('"X"', DEEP)])
    yield "eval", path, ["--format", "jsonl"], [f"{path}:2", expected]
    path = jsonl(tmp / "deep_text.jsonl", [STE_ROW, {**STE_ROW, "action_input": "[" * 100_000 + "]" * 100_000}])
    yield "eval", path, ["--format", "jsonl"], [f"{path}:2", "field action_input", expected]
    path = jsonl(tmp / "deep_chat.jsonl", [CHAT_ROW, json.dumps({**CHAT_ROW, "prediction": "X"}).replace('"X"', DEEP)])
    yield "eval", path, ["--format", "chat"], [f"{path}:2", expected]
    path = tmp / "deep.json"
    path.write_text('{"f": [\n' + json.dumps(STE_ROW) + ",\n" + "[" * 100_000 + "]" * 100_000 + "\n]}")
    yield "eval", path, ["--format", "ste"], [f"{path}:3", expected]
    path = tmp / "deep_test.json"
    path.write_text("[\n" + json.dumps(TEST_ROW) + ",\n" + DEEP + "\n]")
    yield "predict", path, [], [f"{path}:3", expected]
    path = jsonl(tmp / "deep_test.jsonl", [TEST_ROW, "[" * 100_000 + "]" * 100_000])
    yield "predict", path, [], [f"{path}:2", expected]
    path = jsonl(tmp / "deep_q.jsonl", [QUESTION, "[" * 100_000 + "]" * 100_000])
    yield "rank", path, [], [f"{path}:2", expected]
    arguments = json.dumps({"expression": "X"}).replace('"X"', DEEP)
    path = jsonl(tmp / "deep_q_args.jsonl", [{**QUESTION, "call": {"name": "calculator", "arguments": arguments}}])
    yield "rank", path, [], [str(path), "row 0, field call/arguments", expected]


CLASSES = {"group": group_cases, "tool_calls": tool_calls_cases, "tool_name": tool_name_cases,
           "ast_parameters": ast_parameters_cases, "non_utf8": non_utf8_cases, "deep": deep_cases}


@pytest.mark.parametrize("failure", list(CLASSES))
def test_each_failure_class_is_one_line_exit_2_and_nothing_written(run, tmp_path, failure):
    cases = list(CLASSES[failure](tmp_path))
    assert cases
    for kind, path, extra, expected in cases:
        args, out = command(kind, path, tmp_path, *extra)
        refused(run, args, out, *expected)


def test_several_bad_rows_name_the_first_and_count_the_rest(run, tmp_path):
    path = jsonl(tmp_path / "p.jsonl", [STE_ROW, {**STE_ROW, "action": ["f"]}, "{not json", {"query": "q"}])
    args, out = command("eval", path, tmp_path, "--format", "jsonl")
    line = refused(run, args, out, f"{path}:2: field action: must be a non-empty string")
    assert line.endswith("(and 2 more bad rows; --skip-invalid skips them)")


def test_predict_checks_neighbours_and_pool_rows_before_any_model(run, tmp_path):
    test = jsonl(tmp_path / "t.jsonl", [TEST_ROW, {**TEST_ROW, "action": "g"}])
    neighbours = tmp_path / "n.json"
    neighbours.write_text(json.dumps({"f": ["f"]}))
    tools = tmp_path / "tools.jsonl"
    from imaginarium.schemas.toolspec import ToolSource, ToolSpec, write_tools

    write_tools(tools, [ToolSpec(name="f", source_name="f", description="adds", source=ToolSource(format="openai"))])
    args, out = command("predict", test, tmp_path, "--neighbours", str(neighbours), "--tools", str(tools))
    refused(run, args, out, f"{test}:2", "no neighbours for API 'g'")
    pool = jsonl(tmp_path / "pool.jsonl", [TEST_ROW, {**TEST_ROW, "action_input": "[1]"}])
    args, out = command("predict", jsonl(tmp_path / "ok.jsonl", [TEST_ROW]), tmp_path, "--demos", "1",
                        "--demo-pool", str(pool))
    refused(run, args, out, f"{pool}:2", "field action_input: must be a JSON object")
    neighbours.write_text(json.dumps({"f": "f"}))
    args, out = command("predict", test, tmp_path, "--neighbours", str(neighbours), "--tools", str(tools))
    refused(run, args, out, f"{neighbours}#/f", "must be a list of tool names")


def test_rank_refuses_a_gold_call_its_tool_schema_refuses(run, tmp_path):
    rows = [QUESTION, {**QUESTION, "id": "q2", "call": {"name": "calculator", "arguments": {"expression": 17}}}]
    args, out = command("rank", jsonl(tmp_path / "q.jsonl", rows), tmp_path)
    refused(run, args, out, f"{tmp_path / 'q.jsonl'}: row 1, field call/arguments: not valid for calculator",
            "expression: 17 is not of type 'string'")
    rows = [QUESTION, {**QUESTION, "id": "q2", "call": {"name": "calculator", "arguments": {"expr": "1"}}}]
    args, out = command("rank", jsonl(tmp_path / "q2.jsonl", rows), tmp_path)
    refused(run, args, out, "row 1, field call/arguments: not valid for calculator")
    rows = [{**QUESTION, "call": {"name": "abacus", "arguments": {}}}]
    args, out = command("rank", jsonl(tmp_path / "q3.jsonl", rows), tmp_path)
    refused(run, args, out, "row 0, field call/name: unknown tool 'abacus'")


def test_rank_trials_with_a_gold_call_the_schema_refuses_are_skipped():
    from test_trice import ste_trial

    from imaginarium.executor.builtins import TOOLS
    from imaginarium.trice.questions import questions_from_trials

    bad = ste_trial("b", True, "real")
    bad["steps"][0]["call"]["arguments"] = json.dumps({"expression": 17})
    questions, counts = questions_from_trials([ste_trial("a", True, "real"), bad], TOOLS())
    assert [q.id for q in questions] == ["a"] and counts == {"questions": 1, "trials_skipped": 1}


# -- --skip-invalid ------------------------------------------------------------------------------------
def skipped_report(stderr: str, count: int, *reasons: str) -> None:
    lines = stderr.strip().splitlines()
    head = [i for i, line in enumerate(lines) if line.startswith("warning: skipped")]
    assert len(head) == 1, stderr
    assert re.match(rf"warning: skipped {count} invalid rows? \(--skip-invalid\)", lines[head[0]]), stderr
    listed = [line.strip() for line in lines[head[0] + 1:] if line.startswith("  ")]
    assert len(listed) == min(count, 5), stderr
    for reason, line in zip(reasons, listed):
        assert reason in line, (reason, line)
    assert "Traceback" not in stderr


def test_eval_skip_invalid_scores_the_good_rows_and_reports_the_first_five(run, tmp_path):
    bad = [{**STE_ROW, "action": ["f"]}, {**STE_ROW, "model_output": {"tool_calls": 5}}, "{not json",
           {**STE_ROW, "API_name_list": [{"a": 1}]}, {"query": "q"}, 7]
    path = jsonl(tmp_path / "p.jsonl", [STE_ROW, *bad, {**STE_ROW, "model_output": "Final Answer: no"}])
    code, out, err = run("eval", str(path), "--format", "jsonl", "--json", "--skip-invalid")
    assert code == 0, err
    report = json.loads(out)
    assert report["counts"]["items"] == 2 and report["counts"]["correct"] == 1
    assert report["skipped_invalid"] == 6
    skipped_report(err, 6, f"{path}:2: field action", f"{path}:3: field model_output.tool_calls", f"{path}:4: not JSON",
                   f"{path}:5: field API_name_list[0]", f"{path}:6: missing field action")
    assert f"{path}:7" not in err  # the sixth reason is counted, not listed


def test_eval_skip_invalid_with_nothing_left_fails(run, tmp_path):
    path = jsonl(tmp_path / "p.jsonl", [{"query": "q"}])
    code, _, err = run("eval", str(path), "--format", "jsonl", "--skip-invalid")
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"error: {path}: no valid items left (1 invalid skipped")


def test_predict_skip_invalid_generates_for_the_good_rows_only(run, tmp_path, tiny_model, monkeypatch):
    monkeypatch.undo()  # this one loads the tiny model
    rows = [TEST_ROW, {**TEST_ROW, "action": ["f"]}, {**TEST_ROW, "query": "What is 3 + 4?"}, 5]
    test = tmp_path / "t.json"
    test.write_text(json.dumps({"f": rows[:3], "g": None, "h": rows[3:]}))
    out = tmp_path / "pred.json"
    code, stdout, err = run("predict", "--test", str(test), "-o", str(out), "--backend", "transformers",
                            "--model", str(tiny_model), "--max-tokens", "24", "--max-args", "1", "--skip-invalid")
    assert code == 0, err
    assert "2 predictions written" in stdout
    written = json.loads(out.read_text())
    assert [row["query"] for row in written["f"]] == ["What is 2 + 2?", "What is 3 + 4?"]
    skipped_report(err, 3, f"{test}#/f/1: field action", f"{test}#/g: group 'g'", f"{test}#/h/0: an item must be")


def test_rank_skip_invalid_ranks_the_good_questions(run, tmp_path):
    rows = [QUESTION, {**QUESTION, "id": "q2", "call": {"name": "calculator", "arguments": {"expression": 17}}},
            "{oops", {**QUESTION, "id": "q1"}, {**QUESTION, "id": "q3", "question": "What is 2 plus 2?", "answer": "4",
                                               "call": {"name": "calculator", "arguments": {"expression": "2 + 2"}}}]
    path = jsonl(tmp_path / "q.jsonl", rows)
    out = tmp_path / "out"
    code, stdout, err = run("rank", str(path), "-o", str(out), "--candidates", "0", "--skip-invalid")
    assert code == 0, err
    assert stdout.startswith("2 questions, 2 candidates")
    skipped_report(err, 3, f"{path}: row 1, field call/arguments", f"{path}:3: not JSON", f"{path}: row 3, field id: duplicate")
    manifest = json.loads((out / "ranking" / "manifest.json").read_text())
    assert manifest["counts"]["invalid_skipped"] == 3


def test_skip_invalid_is_an_option_everywhere():
    from imaginarium.evaluation.evaluate import EvalConfig
    from imaginarium.evaluation.predict import PredictConfig
    from imaginarium.trice.rank import RankConfig

    for cls in (EvalConfig, PredictConfig, RankConfig):
        assert cls.from_flat({"skip_invalid": True}).skip_invalid is True
        assert cls().skip_invalid is False
    assert "skip_invalid" not in RankConfig().fingerprint()  # skipping does not shape the data
