"""`build sft` on hand-made trials with known content, and on a real tiny-model exploration.

The chat rows are rendered through two real chat templates: the tiny model's own (a tokenizer
built locally) and a Hermes/Qwen-style tool template written here, which, unlike the tiny one,
only renders arguments and parameters right when they are objects.
"""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from imaginarium.builders.chat import to_template_messages
from imaginarium.builders.react import REACT_SCHEMA
from imaginarium.builders.sft import SftConfig, build_sft
from imaginarium.errors import InputError
from imaginarium.evaluation.parse import parse_react
from imaginarium.schemas.records import arrow_schema, features, validate_rows
from imaginarium.schemas.toolspec import ToolSource, ToolSpec, write_tools
from imaginarium.stage import data_files, read_manifest, read_rows, write_stage

ROOT = Path(__file__).resolve().parents[1]


def tool(name, description, properties):
    return ToolSpec(name=name, source_name=name, description=description, source=ToolSource(format="openai"),
                    parameters={"type": "object", "properties": properties, "required": list(properties)})


TOOLS = [
    tool("get_current_weather", "Current weather conditions (temperature, rain, wind) in a city.", {"city": {"type": "string"}}),
    tool("add_date", "Add a number of days to a calendar date given as yyyy-mm-dd.", {"date": {"type": "string"}, "days": {"type": "integer"}}),
    tool("calculator", "Evaluate an arithmetic expression and return the number.", {"expression": {"type": "string"}}),
    tool("forecast_weather", "Weather forecast (temperature, rain, wind) for a city over the next days.", {"city": {"type": "string"}, "days": {"type": "integer"}}),
    tool("translate", "Translate a text from one language to another.", {"text": {"type": "string"}, "target": {"type": "string"}}),
    tool("search_news", "Search recent news articles about a topic.", {"topic": {"type": "string"}}),
]


def obs(content, status="ok", source="cached"):
    return json.dumps({"content": content, "status": status, "source": source, "latency_ms": 1.0,
                       "error_kind": None if status == "ok" else "bad_arguments", "truncated": False, "untrusted": False})


def call(name, arguments, observation, thought="t"):
    return {"thought": thought, "action": "call", "call": {"name": name, "arguments": json.dumps(arguments)},
            "observation": observation, "parse_error": None}


def answer(thought="done"):
    return {"thought": thought, "action": "final_answer", "call": None, "observation": None, "parse_error": None}


INVALID = {"thought": "{\"cal", "action": "invalid", "call": None, "observation": None, "parse_error": "not JSON"}


def trial(trial_id, api, query, steps, final_answer, **extra):
    return {"trial_id": trial_id, "api": api, "episode": 0, "slot": int(trial_id[-1]), "query": query,
            "tools_shown": [api], "steps": steps, "final_answer": final_answer,
            "succeeded": final_answer is not None, "reflection": "yes", "model": "hand", "backend": "none",
            "seed": 0, **extra}


WEATHER = call("get_current_weather", {"city": "Paris"}, obs('{"temp": 21}'))
TRIALS = [
    trial("get_current_weather/0/0", "get_current_weather", "How warm is it in Paris?", [WEATHER, answer()], "21 degrees."),
    trial("add_date/0/1", "add_date", "What date is 90 days after 2022-10-14?", [
        call("add_date", {"date": "14/10/2022", "days": 90}, obs("date must be yyyy-mm-dd", "error", None)),
        call("add_date", {"date": "2022-10-14", "days": 90}, obs('"2023-01-12"', source="simulated")),
        answer()], "2023-01-12"),
    trial("calculator/0/2", "calculator", "What is (3+4)*2 and then squared?", [
        call("calculator", {"expression": "(3+4)*2"}, obs("14", source="real")),
        call("calculator", {"expression": "14**2"}, obs("196", source="real")),
        answer()], "196"),
    trial("translate/0/3", "translate", "Say hello in French", [answer()], "Bonjour"),
    trial("search_news/0/4", "search_news", "News about volcanoes", [
        call("search_news", {"topic": "volcanoes"}, obs('["Etna erupts"]'))], None),
    trial("get_current_weather/0/5", "get_current_weather", "Is it raining in Oslo?", [
        INVALID, call("get_current_weather", {"city": "Oslo"}, obs('{"rain": true}')), answer()], "Yes, it rains."),
    trial("add_date/0/6", "add_date", "Add 5 days to 2024-02-27", [
        call("add_date", {"date": "27.02.2024", "days": 5}, obs("bad date", "error", None))], None),
]
PARAPHRASE = dict(TRIALS[0], query="What's the temperature in Paris right now?")
EXPECTED_SOURCES_FIRST_TURN = {"cached": 3, "real": 1, "simulated": 1}


def write_trials(directory, trials, *, extra_columns):
    schema = arrow_schema("episode_trial")
    if not extra_columns:  # as written before filter/augment added them
        schema = pa.schema([field for field in schema if field.name not in ("paraphrase_of", "scores")])
    write_stage(directory, "augment", {}, {}, trials, schema=schema, files={"funnel.json": '{"input": 9, "steps": []}'},
                extra={"judge_model": "judge-x"})
    return directory


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    base = tmp_path_factory.mktemp("trials")
    tools_path = base / "tools.jsonl"
    write_tools(tools_path, TOOLS)
    seeds = [dict(t, paraphrase_of=None, scores=json.dumps({"judge": "yes"})) for t in TRIALS]
    augmented = [*seeds, dict(PARAPHRASE, paraphrase_of=TRIALS[0]["query"], scores=None)]
    return {"tools": tools_path, "plain": write_trials(base / "plain", TRIALS, extra_columns=False),
            "augmented": write_trials(base / "augmented", augmented, extra_columns=True)}


def built(inputs, out, which="plain", **options):
    options = dict({"max_tools": 3}, **options)
    manifest = build_sft(inputs[which], inputs["tools"], out, SftConfig.from_flat(options), progress=False)
    return read_rows(out), manifest


def by_trial(rows):
    return {row["origin_trial"]: row for row in rows}


def roles(row):
    return [m["role"] for m in row["messages"]]


def calls_of(row):
    return [c["function"] for m in row["messages"] if m["tool_calls"] for c in m["tool_calls"]]


# -- chat rows ----------------------------------------------------------------------------------
def test_first_turn_rows_end_at_the_first_successful_call(inputs, tmp_path):
    rows, manifest = built(inputs, tmp_path / "out")
    assert set(by_trial(rows)) == {"get_current_weather/0/0", "add_date/0/1", "calculator/0/2", "search_news/0/4",
                                   "get_current_weather/0/5"}
    assert manifest["counts"]["skipped"] == {"no successful call": 2}
    for row in rows:
        assert roles(row) == ["system", "user", "assistant"]
        assert row["messages"][-1]["content"] is None
    rows = by_trial(rows)
    assert calls_of(rows["add_date/0/1"]) == [{"name": "add_date", "arguments": '{"date": "2022-10-14", "days": 90}'}]
    assert calls_of(rows["calculator/0/2"]) == [{"name": "calculator", "arguments": '{"expression": "(3+4)*2"}'}]
    assert rows["get_current_weather/0/5"]["messages"][1]["content"] == "Is it raining in Oslo?"
    assert manifest["extra"]["response_sources"] == EXPECTED_SOURCES_FIRST_TURN
    assert manifest["extra"]["release_config"] == "sft"


def test_with_tool_response_adds_observations_and_the_final_answer(inputs, tmp_path):
    rows, manifest = built(inputs, tmp_path / "out", with_tool_response=True)
    assert manifest["counts"]["skipped"] == {"no final answer": 1, "no successful call": 2}
    rows = by_trial(rows)
    two_calls = rows["calculator/0/2"]
    assert roles(two_calls) == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert [m["content"] for m in two_calls["messages"] if m["role"] == "tool"] == ["14", "196"]
    assert two_calls["messages"][-1] == {"role": "assistant", "content": "196", "tool_calls": None,
                                         "tool_call_id": None, "name": None}
    for row in rows.values():
        for index, msg in enumerate(row["messages"]):
            if msg["role"] == "tool":  # answers the call just before it
                (asked,) = row["messages"][index - 1]["tool_calls"]
                assert (msg["tool_call_id"], msg["name"]) == (asked["id"], asked["function"]["name"])
    # the failed attempt is dropped under the default policy
    assert roles(rows["add_date/0/1"]) == ["system", "user", "assistant", "tool", "assistant"]
    assert manifest["extra"]["response_sources"] == {"cached": 2, "real": 2, "simulated": 1}


def test_policy_all_keeps_the_error_and_the_retry(inputs, tmp_path):
    rows, _ = built(inputs, tmp_path / "full", with_tool_response=True, calls="all")
    retry = by_trial(rows)["add_date/0/1"]
    assert roles(retry) == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert retry["messages"][3]["content"] == "date must be yyyy-mm-dd"
    assert [c["arguments"] for c in calls_of(retry)] == ['{"date": "14/10/2022", "days": 90}', '{"date": "2022-10-14", "days": 90}']
    rows, _ = built(inputs, tmp_path / "first", calls="all")
    retry = by_trial(rows)["add_date/0/1"]
    assert roles(retry) == ["system", "user", "assistant", "tool", "assistant"]
    assert json.loads(calls_of(retry)[-1]["arguments"])["date"] == "2022-10-14"


def test_simulated_responses_can_count_as_failures(inputs, tmp_path):
    rows, manifest = built(inputs, tmp_path / "out", simulated_ok=False)
    assert "add_date/0/1" not in by_trial(rows)  # its only successful call was simulated
    assert manifest["counts"]["skipped"] == {"no successful call": 3}
    assert "simulated" not in manifest["extra"]["response_sources"]


def test_system_message_is_configurable(inputs, tmp_path):
    rows, _ = built(inputs, tmp_path / "custom", system="Use tools wisely.")
    assert {row["messages"][0]["content"] for row in rows} == {"Use tools wisely."}
    rows, _ = built(inputs, tmp_path / "none", system="")
    assert {roles(row)[0] for row in rows} == {"user"}


def test_paraphrase_and_scores_columns_are_carried(inputs, tmp_path):
    rows, _ = built(inputs, tmp_path / "aug", which="augmented")
    paraphrases = [row for row in rows if row["source"] == "paraphrase"]
    assert len(paraphrases) == 1 and paraphrases[0]["paraphrase_of"] == "How warm is it in Paris?"
    assert paraphrases[0]["messages"][1]["content"] == PARAPHRASE["query"]
    assert {row["scores"] for row in rows if row["source"] == "ste"} == {'{"judge": "yes"}'}
    plain, _ = built(inputs, tmp_path / "plain")
    assert {(row["source"], row["paraphrase_of"], row["scores"]) for row in plain} == {("ste", None, None)}


def test_tools_shown_are_the_api_its_calls_and_nearest_neighbours_in_a_seeded_order(inputs, tmp_path):
    rows, _ = built(inputs, tmp_path / "a")
    specs = {t.name: t for t in TOOLS}
    for row in rows:
        names = [t["function"]["name"] for t in row["tools"]]
        assert len(names) == 3 == len(set(names)) and row["api"] in names
        for entry in row["tools"]:
            spec = specs[entry["function"]["name"]]
            assert json.loads(entry["function"]["parameters"]) == spec.parameters
            assert entry["function"]["description"] == spec.description
    weather = by_trial(rows)["get_current_weather/0/0"]
    assert "forecast_weather" in [t["function"]["name"] for t in weather["tools"]]  # its nearest by description
    again, _ = built(inputs, tmp_path / "b")
    assert [r["tools"] for r in again] == [r["tools"] for r in rows]
    other, _ = built(inputs, tmp_path / "c", seed=7)
    orders = lambda rs: [[t["function"]["name"] for t in r["tools"]] for r in rs]  # noqa: E731
    assert sorted(map(sorted, orders(other))) == sorted(map(sorted, orders(rows)))
    assert orders(other) != orders(rows)
    one, _ = built(inputs, tmp_path / "d", max_tools=1)
    assert {len(r["tools"]) for r in one} == {1}


def test_output_loads_with_datasets_and_keeps_the_schema(inputs, tmp_path):
    from datasets import load_dataset

    out = tmp_path / "out"
    rows, manifest = built(inputs, out, which="augmented", with_tool_response=True)
    dataset = load_dataset("parquet", data_files=[str(p) for p in data_files(out)], split="train")
    assert len(dataset) == len(rows) == manifest["counts"]["rows"] == 5
    assert dataset.features == features("sft_row")
    assert dataset[0]["messages"][0]["role"] == "system"
    assert json.loads((out / "funnel.json").read_text())["input"] == 9
    assert manifest["extra"]["judge_model"] == "judge-x"


def test_every_built_row_follows_the_record_schema(inputs, tmp_path):
    variants = [{}, {"with_tool_response": True}, {"calls": "all", "with_tool_response": True}, {"system": ""}]
    for number, options in enumerate(variants):
        rows, _ = built(inputs, tmp_path / str(number), which="augmented", **options)
        validate_rows("sft_row", rows, where=str(options))


def test_rerun_is_a_noop(inputs, tmp_path):
    _, first = built(inputs, tmp_path / "out")
    _, second = built(inputs, tmp_path / "out")
    assert second == first


# -- rendering through real chat templates ---------------------------------------------------------
HERMES_TEMPLATE = """\
{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}
{% endif %}# Tools
<tools>
{%- for tool in tools %}
{{ tool.function | tojson }}
{%- endfor %}
</tools>
{%- for tool in tools %}{% for key in tool.function.parameters.properties %}{% endfor %}{% endfor %}<|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'system' %}
{%- elif message.role == 'tool' %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% elif message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant
{{ message.content }}
{%- for call in message.tool_calls %}
<tool_call>
{"name": {{ call.function.name | tojson }}, "arguments": {{ call.function.arguments | tojson }}}
</tool_call>
{%- for key, value in call.function.arguments.items() %}{% endfor %}
{%- endfor %}<|im_end|>
{% else %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{%- endfor %}
"""


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model))


def assert_renders_every_call(tokenizer, rows):
    assert rows
    for template in (None, HERMES_TEMPLATE):
        for row in rows:
            messages, tools = to_template_messages(row)
            text = tokenizer.apply_chat_template(messages, tools=tools or None, chat_template=template, tokenize=False)
            for function in calls_of(row):
                assert json.dumps(function["name"]) in text
                assert json.dumps(json.loads(function["arguments"]), ensure_ascii=False) in text
            for msg in row["messages"]:
                assert (msg["content"] or "") in text
            for entry in tools:
                assert json.dumps(entry["function"]["parameters"], ensure_ascii=False) in text


def test_every_row_renders_through_real_chat_templates(inputs, tmp_path, tokenizer):
    for name, options in {"first": {}, "second": {"with_tool_response": True, "calls": "all"}}.items():
        rows, _ = built(inputs, tmp_path / name, which="augmented", **options)
        assert_renders_every_call(tokenizer, rows)


def test_to_template_messages_decodes_json_and_drops_nulls(inputs, tmp_path):
    rows, _ = built(inputs, tmp_path / "out", with_tool_response=True)
    messages, tools = to_template_messages(by_trial(rows)["add_date/0/1"])
    assert messages[2]["tool_calls"][0]["function"]["arguments"] == {"date": "2022-10-14", "days": 90}
    assert messages[2]["content"] == "" and "tool_call_id" not in messages[2]
    assert messages[3]["tool_call_id"] == messages[2]["tool_calls"][0]["id"] and messages[3]["name"] == "add_date"
    assert all(isinstance(t["function"]["parameters"], dict) for t in tools)


# -- ReAct rows ------------------------------------------------------------------------------------
def test_react_first_turn_is_one_parseable_action(inputs, tmp_path):
    rows, manifest = built(inputs, tmp_path / "out", format="react")
    assert manifest["extra"]["release_config"] == "sft_react"
    assert len(rows) == 5 and {row["turn"] for row in rows} == {0}
    from datasets import load_dataset

    dataset = load_dataset("parquet", data_files=[str(p) for p in data_files(tmp_path / "out")], split="train")
    assert dataset.column_names == REACT_SCHEMA.names and len(dataset) == 5
    retry = next(row for row in rows if row["origin_trial"] == "add_date/0/1")
    assert retry["completion"] == 'Action: add_date\nAction Input: {"date": "2022-10-14", "days": 90}\n'
    assert retry["prompt"].endswith("User Query: What date is 90 days after 2022-10-14?\n")
    assert "API_name: add_date" in retry["prompt"]
    for row in rows:
        parsed = parse_react(row["completion"])
        assert parsed.kind == "call" and parsed.name in row["completion"]


def test_react_with_tool_response_has_the_steps_in_order(inputs, tmp_path):
    rows, manifest = built(inputs, tmp_path / "out", format="react", with_tool_response=True, calls="all",
                           tool_token=True)
    retry = sorted((r for r in rows if r["origin_trial"] == "add_date/0/1"), key=lambda r: r["turn"])
    # the failed call (turn 0) is context only: rows for the retry (turn 1) and the answer (turn 2)
    assert [r["turn"] for r in retry] == [1, 2]
    assert retry[0]["completion"].startswith("Action: <tool_add_date>\nAction Input: {\"date\": \"2022-10-14\"")
    assert "Observation: date must be yyyy-mm-dd\n" in retry[0]["prompt"]
    text = (retry[1]["prompt"] + retry[1]["completion"]).split("User Query:")[1]  # after the instructions
    marks = [text.index(mark) for mark in ("Action: <tool_add_date>", "Action Input:", "Observation:", "Final Answer: 2023-01-12")]
    assert marks == sorted(marks)
    assert parse_react(retry[0]["completion"]).name == "add_date"
    assert set(manifest["extra"]["tool_tokens"]) == {"<tool_add_date>", "<tool_calculator>", "<tool_get_current_weather>"}
    final_rows = [r for r in rows if r["completion"].startswith("Final Answer:")]
    assert len(final_rows) == 4  # the trials with a successful call and a final answer


# -- bad input ---------------------------------------------------------------------------------------
def test_malformed_arguments_name_the_row_and_field(inputs, tmp_path):
    broken = [TRIALS[0], dict(TRIALS[1], steps=[dict(TRIALS[1]["steps"][0], call={"name": "add_date", "arguments": "{oops"})])]
    directory = write_trials(tmp_path / "broken", broken, extra_columns=False)
    with pytest.raises(InputError, match=r"row 1, field steps/0/call/arguments: not JSON"):
        build_sft(directory, inputs["tools"], tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_an_unknown_action_is_named_though_arrow_allows_it(inputs, tmp_path):
    odd = dict(TRIALS[0], steps=[dict(WEATHER, action="teleport")])
    directory = write_trials(tmp_path / "odd", [TRIALS[0], odd], extra_columns=True)
    with pytest.raises(InputError, match=r"row 1, field steps/0/action: 'teleport' is not one of"):
        build_sft(directory, inputs["tools"], tmp_path / "out", progress=False)


def test_rows_of_another_arrow_schema_get_the_full_validation(inputs, tmp_path):
    loose = [dict(t) for t in TRIALS[:2]]
    loose[1]["query"] = None  # a column with inferred types allows it; the record does not
    write_stage(tmp_path / "loose", "handmade", {}, {}, loose)
    with pytest.raises(InputError, match=r"row 1, field query: None is not of type 'string'"):
        build_sft(tmp_path / "loose", inputs["tools"], tmp_path / "out", progress=False)
    write_stage(tmp_path / "fine", "handmade", {}, {}, TRIALS)  # inferred types, valid content
    assert build_sft(tmp_path / "fine", inputs["tools"], tmp_path / "out", SftConfig.from_flat(dict(max_tools=1)), progress=False)["counts"]["rows"] == 5


def test_a_tool_missing_from_the_tools_file_is_named(inputs, tmp_path):
    stranger = dict(TRIALS[0], steps=[call("teleport", {"to": "Mars"}, obs("ok")), answer()])
    directory = write_trials(tmp_path / "stranger", [TRIALS[0], stranger], extra_columns=False)
    with pytest.raises(InputError, match=r"row 1: tool 'teleport'"):
        build_sft(directory, inputs["tools"], tmp_path / "out", progress=False)


def test_cli_builds_and_reports_bad_input_with_exit_2(inputs, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "imaginarium.cli", "build", "sft", str(inputs["plain"]), "-o", str(out),
               "--tools", str(inputs["tools"]), "--max-tools", "1", "--format", "react"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "5 rows from 7 trials" in done.stdout
    assert read_manifest(out)["config"]["format"] == "react"
    done = subprocess.run([*command[:4], str(tmp_path / "missing"), *command[5:]], capture_output=True, text=True)
    assert done.returncode == 2 and "missing" in done.stderr and "Traceback" not in done.stderr


def test_the_filter_stage_output_builds_with_its_funnel(inputs, tmp_path):
    from imaginarium.filters.filter import FilterConfig, filter_stage

    filter_stage(inputs["plain"], tmp_path / "filter", FilterConfig(judge=False), progress=False)
    kept = read_rows(tmp_path / "filter")
    manifest = build_sft(tmp_path / "filter", inputs["tools"], tmp_path / "sft", SftConfig.from_flat(dict(with_tool_response=True)), progress=False)
    assert manifest["counts"]["rows"] == len(kept) and manifest["counts"]["skipped"] == {}
    assert json.loads((tmp_path / "sft" / "funnel.json").read_text()) == json.loads(
        (tmp_path / "filter" / "funnel.json").read_text())
    assert manifest["extra"]["funnel"] == read_manifest(tmp_path / "filter")["extra"]["funnel"]


# -- a real exploration -------------------------------------------------------------------------------
def test_rows_from_a_real_tiny_model_exploration_render(tmp_path, tiny_model, tokenizer):
    """The random tiny model's calls almost never succeed when executed, so the run withholds
    execution (the paper's no-exec ablation): every call counts, with real, odd arguments."""
    from imaginarium.executor.cache import ResponseCache, import_cache
    from imaginarium.executor.executor import Executor
    from imaginarium.generators.explore import ExploreConfig, explore_stage
    from imaginarium.models.factory import make_backend
    from imaginarium.schemas.importers import import_files

    toolset = ROOT / "recipes" / "example_toolset"
    tools, _ = import_files([toolset / "python_tools.json", toolset / "openapi.yaml"])
    tools_path = tmp_path / "tools.jsonl"
    write_tools(tools_path, tools)
    import_cache(toolset / "cache.jsonl", tmp_path / "cache.sqlite")
    config = ExploreConfig.from_flat(dict(episodes=2, stm_slots=2, max_turns=2, max_query_chars=24, max_thought_chars=12,
                                          max_answer_chars=24, max_argument_chars=12, max_tokens=96, no_exec=True))
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        explore_stage(tmp_path / "explore", tools_path, tools, ["add_date", "calculator"],
                      make_backend("transformers", str(tiny_model)), Executor(tools, cache, "replay"), config,
                      progress=False)
    trials = read_rows(tmp_path / "explore")
    with_call = [t for t in trials if any(s["action"] == "call" for s in t["steps"])]
    answered = [t for t in with_call if t["final_answer"] is not None]
    assert answered, "the seeded run makes calls and answers"
    for name, expected, options in (("first", with_call, {}), ("second", answered, {"with_tool_response": True})):
        build_sft(tmp_path / "explore", tools_path, tmp_path / name, SftConfig.from_flat(dict(max_tools=3, **options)), progress=False)
        rows = read_rows(tmp_path / name)
        assert sorted(r["origin_trial"] for r in rows) == sorted(t["trial_id"] for t in expected)
        assert_renders_every_call(tokenizer, rows)
