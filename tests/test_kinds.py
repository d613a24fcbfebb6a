"""Scenario kinds beyond one call (schemas/kinds.py): exploration with the tiny model, the kinds'
rules, chat rows rendered through real chat templates, when-not-to-call preference pairs, the
card's kind mix and BFCL export per kind."""

from __future__ import annotations

import json
from collections import Counter

import jsonschema
import pytest
from test_build_sft import TOOLS, answer, assert_renders_every_call, call, obs, tokenizer, trial, write_trials  # noqa: F401
from test_explore import backend, toolset  # noqa: F401
from test_explore import run as explore_run

from imaginarium.builders.bfcl import BfclConfig, build_bfcl
from imaginarium.builders.scenarios import PreferenceConfig, build_preferences
from imaginarium.builders.sft import SftConfig, build_sft
from imaginarium.evaluation.bfcl.data import load_categories
from imaginarium.evaluation.bfcl.score import score_item
from imaginarium.schemas.kinds import KINDS, assign_kinds, kind_problem, parse_kinds
from imaginarium.schemas.records import validate_rows
from imaginarium.schemas.rows import TrialRecord
from imaginarium.schemas.toolspec import write_tools
from imaginarium.stage import read_rows

ALL_KINDS = "single=1,parallel=1,multiple=1,irrelevant=1,clarify=1,multi_turn=1"


# -- the kinds and their rules --------------------------------------------------------------------
def test_weights_parse_and_kinds_are_assigned_in_the_asked_shares():
    assert parse_kinds("single=0.5,parallel=0.5") == {"single": 0.5, "parallel": 0.5}
    assert parse_kinds({"clarify": 2, "single": 2}) == {"single": 0.5, "clarify": 0.5}
    for bad in ("bogus=1", "single=-1", "single=x", "", "single=inf"):
        with pytest.raises(ValueError):
            parse_kinds(bad)
    units = [f"api{a}/{e}" for e in range(4) for a in range(5)]
    assigned = assign_kinds(parse_kinds("single=0.7,irrelevant=0.3"), units, seed=0)
    assert Counter(assigned.values()) == {"single": 14, "irrelevant": 6}
    assert assigned == assign_kinds(parse_kinds("single=0.7,irrelevant=0.3"), units, seed=0)  # resume: the same
    assert assigned != assign_kinds(parse_kinds("single=0.7,irrelevant=0.3"), units, seed=1)
    ten = assign_kinds(parse_kinds(ALL_KINDS), units[:10], seed=0)  # six kinds, ten episodes: each at least once
    assert set(ten.values()) == set(KINDS)
    assert set(assign_kinds({"single": 1.0}, units, 0).values()) == {"single"}


def test_a_bad_kinds_option_is_one_line(run, tmp_path):
    code, _, err = run("explore", "--tools", tmp_path, "--kinds", "single=1,teleport=2", "-o", tmp_path / "out")
    assert code == 2 and "teleport" in err and len(err.strip().splitlines()) == 1


def ask(text, thought="need it"):
    return {"thought": thought, "action": "ask", "call": None, "observation": None, "parse_error": None, "text": text}


def user(text):
    return {"thought": None, "action": "user", "call": None, "observation": None, "parse_error": None, "text": text}


def parallel(step):
    return dict(step, thought=None, parallel=True)


WEATHER_PARIS = call("get_current_weather", {"city": "Paris"}, obs('{"temp": 21}'))
KIND_TRIALS = [
    trial("get_current_weather/1/0", "get_current_weather", "How warm is it in Paris and in Oslo?", [
        WEATHER_PARIS, parallel(call("get_current_weather", {"city": "Oslo"}, obs('{"temp": 9}'))), answer()],
        "Paris 21, Oslo 9.", kind="parallel"),
    trial("translate/1/0", "translate", "Book me a flight to Rome tomorrow", [answer()],
          "I cannot book flights: the tools here only translate text.", kind="irrelevant",
          scenario=json.dumps({"rejected_call": {"name": "translate", "arguments": {"text": "flight to Rome", "target": "it"}}})),
    trial("add_date/1/0", "add_date", "What date is 90 days after my birthday?", [
        ask("What is the date of your birthday?"), user("It is 2022-10-14."),
        call("add_date", {"date": "2022-10-14", "days": 90}, obs('"2023-01-12"')), answer()], "2023-01-12",
        kind="clarify", scenario=json.dumps({"missing": "date", "rejected_call": {"name": "add_date", "arguments": {"date": "2000-01-01", "days": 90}}})),
    trial("calculator/1/0", "calculator", "What is 6*7?", [
        call("calculator", {"expression": "6x7"}, obs("syntax error", "error", None)),
        call("calculator", {"expression": "6*7"}, obs("42", source="real")), dict(answer(), text="It is 42."),
        user("And that number squared?"), call("calculator", {"expression": "42**2"}, obs("1764", source="real")), answer()],
        "1764", kind="multi_turn"),
    trial("forecast_weather/1/0", "forecast_weather", "Will it rain in Lyon over the next 3 days?", [
        call("forecast_weather", {"city": "Lyon", "days": 3}, obs('{"rain": [true, false, false]}')), answer()],
        "Rain tomorrow only.", kind="multiple", tools_shown=["forecast_weather", "get_current_weather", "search_news"]),
    # each breaks its kind's rule: no rows, no pairs
    trial("translate/1/1", "translate", "Order a pizza for me", [
        call("translate", {"text": "pizza", "target": "it"}, obs('"pizza"')), answer()], "Done.", kind="irrelevant",
        scenario=json.dumps({"rejected_call": {"name": "translate", "arguments": {"text": "x", "target": "y"}}})),
    trial("get_current_weather/1/1", "get_current_weather", "Weather in Rome and Milan?", [
        call("get_current_weather", {"city": "Rome"}, obs('{"temp": 25}')), answer()], "25.", kind="parallel"),
    trial("add_date/1/1", "add_date", "Add some days to my date", [
        ask("Which days do you mean?"), user("Five."), call("add_date", {"date": "2024-01-01", "days": 5}, obs('"2024-01-06"')),
        answer()], "2024-01-06", kind="clarify", scenario=json.dumps({"missing": "date"})),
]
KIND_TRIALS.append(trial("forecast_weather/1/1", "forecast_weather", "Weather in Lyon tomorrow?", [
    call("get_current_weather", {"city": "Lyon"}, obs('{"temp": 12}')), answer()], "12.", kind="multiple",
    tools_shown=["forecast_weather", "get_current_weather", "search_news"]))  # the wrong one of the tools shown
BROKEN = {"forecast_weather/1/1": "multiple: no call of forecast_weather ran without error",
          "translate/1/1": "irrelevant: made 1 call(s) where no shown tool fits",
          "get_current_weather/1/1": "parallel: fewer than two calls in one turn",
          "add_date/1/1": "clarify: the question does not name the missing parameter 'date'"}


@pytest.fixture(scope="module")
def kind_inputs(tmp_path_factory):
    base = tmp_path_factory.mktemp("kinds")
    tools_path = base / "tools.jsonl"
    write_tools(tools_path, TOOLS)
    return {"tools": tools_path, "trials": write_trials(base / "trials", KIND_TRIALS, extra_columns=True)}


def test_each_kind_is_held_to_its_rule():
    records = {t["trial_id"]: TrialRecord.from_row(t) for t in KIND_TRIALS}
    for trial_id, record in records.items():
        problem = kind_problem(record)
        expected = BROKEN.get(trial_id)
        assert (f"{record.extra['kind']}: {problem}" if problem else None) == expected, trial_id


def test_chat_rows_per_kind_render_through_real_chat_templates(kind_inputs, tmp_path, tokenizer):  # noqa: F811
    for with_tool_response in (False, True):
        out = tmp_path / f"sft-{with_tool_response}"
        manifest = build_sft(kind_inputs["trials"], kind_inputs["tools"], out,
                             SftConfig(max_tools=3, with_tool_response=with_tool_response), progress=False)
        rows = {row["origin_trial"]: row for row in read_rows(out)}
        assert set(rows) == {t["trial_id"] for t in KIND_TRIALS} - set(BROKEN)
        assert manifest["counts"]["skipped"] == dict.fromkeys(BROKEN.values(), 1)
        assert_renders_every_call(tokenizer, list(rows.values()))
        shape = {trial_id: [(m["role"], len(m["tool_calls"] or [])) for m in row["messages"][1:]] for trial_id, row in rows.items()}
        if not with_tool_response:
            assert shape["get_current_weather/1/0"] == [("user", 0), ("assistant", 2)]  # both calls in one message
            assert shape["translate/1/0"] == [("user", 0), ("assistant", 0)]
            assert shape["add_date/1/0"] == [("user", 0), ("assistant", 0), ("user", 0), ("assistant", 1)]
            assert shape["calculator/1/0"] == [("user", 0), ("assistant", 1), ("tool", 0), ("assistant", 0), ("user", 0),
                                               ("assistant", 1)]
            assert rows["calculator/1/0"]["messages"][4]["content"] == "It is 42."
            assert rows["add_date/1/0"]["messages"][2]["content"] == "What is the date of your birthday?"
        else:
            assert shape["get_current_weather/1/0"] == [("user", 0), ("assistant", 2), ("tool", 0), ("tool", 0), ("assistant", 0)]
            assert shape["calculator/1/0"][-3:] == [("assistant", 1), ("tool", 0), ("assistant", 0)]
        assert {row["kind"] for row in rows.values()} == {"parallel", "irrelevant", "clarify", "multi_turn", "multiple"}


def test_preference_pairs_teach_when_not_to_call(kind_inputs, tmp_path, tiny_model):
    manifests = build_preferences(kind_inputs["trials"], kind_inputs["tools"], tmp_path / "pref",
                                  PreferenceConfig(max_tools=3, render_with=str(tiny_model)), progress=False)
    rows = {row["question_id"]: row for row in read_rows(tmp_path / "pref" / "preference")}
    validate_rows("preference_row", list(rows.values()))
    assert manifests["preference"]["counts"]["per_kind"] == {"clarify": 1, "irrelevant": 1, "multi_turn": 1}
    irrelevant = rows["translate/1/0"]
    assert irrelevant["chosen"][0]["tool_calls"] is None and "cannot book" in irrelevant["chosen"][0]["content"]
    assert irrelevant["rejected"][0]["tool_calls"][0]["function"]["name"] == "translate"
    clarify = rows["add_date/1/0"]
    assert clarify["chosen"][0]["content"] == "What is the date of your birthday?"
    failure = rows["calculator/1/0"]  # executed failure: the good call against the one that failed
    assert json.loads(failure["chosen"][0]["tool_calls"][0]["function"]["arguments"]) == {"expression": "6*7"}
    assert json.loads(failure["rejected"][0]["tool_calls"][0]["function"]["arguments"]) == {"expression": "6x7"}
    texts = read_rows(tmp_path / "pref" / "preference_text")
    assert len(texts) == 3 and all(t["prompt"] and t["chosen"] != t["rejected"] for t in texts)


def test_the_card_shows_the_kind_mix(kind_inputs, tmp_path):
    from imaginarium.hub_cards.release import build_release

    build_sft(kind_inputs["trials"], kind_inputs["tools"], tmp_path / "sft", SftConfig(max_tools=3), progress=False)
    release = tmp_path / "release"
    build_release([tmp_path / "sft"], release, name="kinds", version="1.0.0", repo_id="me/kinds")
    card = (release / "README.md").read_text()
    assert "### Scenario kinds in `sft`" in card
    for kind in ("parallel", "irrelevant", "clarify", "multi_turn", "multiple"):
        assert f"| {kind} | 1 |" in card
    assert "| `add_date` | " in card


def test_held_out_trials_of_each_kind_export_as_the_matching_bfcl_category(kind_inputs, tmp_path):
    manifest = build_bfcl(kind_inputs["trials"], kind_inputs["tools"], tmp_path / "bfcl", BfclConfig(holdout=1.0))
    assert manifest["categories"] == {"clarify": 1, "irrelevance": 1, "multiple": 1, "parallel": 1}
    assert manifest["skipped"]["multi_turn: BFCL's multi-turn category is scored by execution"] == 1
    data = load_categories(tmp_path / "bfcl", list(manifest["categories"]))
    parallel_item = data.items["parallel_0"]
    assert len(parallel_item.golds) == 2
    calls = [{name: {k: v[0] for k, v in params.items()}} for gold in parallel_item.golds for name, params in gold.items()]
    assert score_item(parallel_item, calls[::-1]).valid and not score_item(parallel_item, calls[:1]).valid
    for category in ("irrelevance", "clarify"):  # no call is right first; a call is wrong
        item = data.items[f"{category}_0"]
        assert score_item(item, "Sorry, none of these tools can do that.").valid
        assert not score_item(item, [{item.functions[0]["name"]: {}}]).valid
    assert len(data.items["multiple_0"].functions) == 3


# -- exploration with the tiny model --------------------------------------------------------------
@pytest.fixture(scope="module")
def explored(tmp_path_factory, backend, toolset):  # noqa: F811
    return explore_run(tmp_path_factory.mktemp("kinds"), backend, toolset, episodes=6, stm_slots=1, max_tokens=200,
               kinds=ALL_KINDS)


def test_every_kind_yields_well_formed_trials(explored, toolset):  # noqa: F811
    rows, _ = explored
    tools = {t.name: t for t in toolset[0]}
    by_kind: dict[str, list[dict]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)
    assert set(by_kind) >= {"parallel", "multiple", "irrelevant", "clarify", "multi_turn"}
    for row in rows:
        for step in row["steps"]:
            if step["action"] == "call":
                jsonschema.validate(json.loads(step["call"]["arguments"]), tools[step["call"]["name"]].parameters)
    assert any(sum(bool(s["parallel"]) for s in row["steps"]) >= 1 for row in by_kind["parallel"])
    for row in by_kind["parallel"]:  # the first turn's calls never repeat each other (repeats are replaced or dropped)
        turn = []
        for step in row["steps"]:
            if step["action"] != "call" or (turn and not step["parallel"]):
                break
            turn.append((step["call"]["name"], step["call"]["arguments"]))
        assert len(set(turn)) == len(turn)
    for row in by_kind["multiple"]:
        assert len(row["tools_shown"]) > 1 and row["tools_shown"][0] == row["api"]
    for row in by_kind["irrelevant"]:
        rejected = json.loads(row["scenario"])["rejected_call"]
        assert rejected["name"] in row["tools_shown"]
        jsonschema.validate(rejected["arguments"], tools[rejected["name"]].parameters)
    for row in by_kind["clarify"]:
        facts = json.loads(row["scenario"])
        required = tools[row["api"]].parameters["required"]
        assert facts["missing"] in required
        first, second = row["steps"][0], row["steps"][1]
        assert first["action"] == "ask" and first["text"].endswith("?")
        assert any(name.replace("_", " ") in first["text"] for name in required)
        assert second["action"] in ("user", "invalid")
    for row in by_kind["multi_turn"]:
        actions = [s["action"] for s in row["steps"]]
        if "user" in actions:
            answer_step = row["steps"][actions.index("user") - 1]
            assert answer_step["action"] == "final_answer" and answer_step["text"] is not None


def test_long_term_memory_is_kept_per_api_and_kind(explored):
    rows, recording = explored
    kind_of_query = {row["query"]: row["kind"] for row in rows}
    for request in recording.requests:
        text = request.messages[-1]["content"] if request.messages else ""
        if "Users already asked" not in text:
            continue
        listed = [line[2:].rsplit(" (", 1)[0] for line in text.splitlines() if line.startswith("- ")]
        kinds = {kind_of_query[q] for q in listed if q in kind_of_query}
        assert len(kinds) <= 1, kinds


def test_single_alone_reproduces_ste_records_exactly(tmp_path, backend, toolset):  # noqa: F811
    default, _ = explore_run(tmp_path / "default", backend, toolset)
    single, _ = explore_run(tmp_path / "single", backend, toolset, kinds="single=1")

    def comparable(rows):
        out = []
        for row in rows:
            steps = [{**s, "observation": _without_latency(s["observation"])} for s in row["steps"]]
            out.append({**row, "steps": steps})
        return out

    assert comparable(default) == comparable(single)
    assert {row["kind"] for row in single} == {"single"} and all(row["scenario"] is None for row in single)
    assert all(s["text"] is None and s["parallel"] is None for row in single for s in row["steps"])
    assert json.loads((tmp_path / "default" / "out" / "manifest.json").read_text())["fingerprint"] == \
        json.loads((tmp_path / "single" / "out" / "manifest.json").read_text())["fingerprint"]


def _without_latency(observation):
    if observation is None:
        return None
    data = json.loads(observation)
    data.pop("latency_ms", None)
    return data




def test_a_repeated_parallel_call_is_asked_for_again_constrained_to_other_values(backend):  # noqa: F811
    """The decoder itself keeps the replacement from repeating: a string parameter gets a pattern
    excluding the values given, an integer ranges around them (llguidance enforces both)."""
    import re

    from imaginarium.models.backend import Constraint, GenerationRequest
    from imaginarium.schemas.constraints import other_than

    narrowed = other_than({"type": "string", "maxLength": 6}, ["abc", "ab"])
    for text, allowed in [("abc", False), ("ab", False), ("", True), ("abd", True), ("abcd", True), ("abcdefg", False)]:
        assert (re.fullmatch(narrowed["pattern"].strip("^$"), text) is not None) == allowed, text
    assert other_than({"type": "integer", "minimum": 0, "maximum": 4}, [2]) == {"anyOf": [
        {"type": "integer", "minimum": 0, "maximum": 1}, {"type": "integer", "minimum": 3, "maximum": 4}]}
    assert other_than({"type": "number"}, [1.5]) is None
    patterned = other_than({"type": "string", "pattern": "^[0-9]{3}$"}, ["123"])  # both patterns hold (allOf)
    assert patterned["allOf"][0]["pattern"] == "^[0-9]{3}$"
    assert re.fullmatch(patterned["allOf"][1]["pattern"].strip("^$"), "123") is None
    schema = {"type": "object", "properties": {"city": other_than({"type": "string", "maxLength": 8}, ["Paris"]),
                                               "n": other_than({"type": "integer", "minimum": 0, "maximum": 3}, [1]),
                                               "isbn": other_than({"type": "string", "pattern": "^[0-9]{4}$"}, ["1234"])},
              "required": ["city", "n", "isbn"], "additionalProperties": False}
    requests = [GenerationRequest(messages=[{"role": "user", "content": "Paris"}], constraint=Constraint.json(schema),
                                  max_tokens=40, temperature=1.0, seed=seed) for seed in range(8)]
    values = [c.value for c in backend.generate(requests) if c.ok]
    assert values and all(v["city"] != "Paris" and v["n"] != 1 and v["isbn"] != "1234" for v in values)
    assert all(re.fullmatch("[0-9]{4}", v["isbn"]) for v in values)
