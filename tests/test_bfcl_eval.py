"""BFCL-compatible evaluation: decoding results, BFCL's AST rules, `eval --format bfcl` on a small
BFCL-shaped data directory written here (so these run without bfcl-eval), and items with several
gold calls or none in the chat format."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imaginarium.evaluation.bfcl.checker import check_call, check_calls, standardize
from imaginarium.evaluation.bfcl.decode import decode_result, has_call, python_calls
from imaginarium.evaluation.bfcl.java_js import DecodeError
from imaginarium.evaluation.bfcl.predict import parse_native

WEATHER = {"name": "weather.get", "description": "Weather in a city.", "parameters": {
    "type": "dict", "required": ["city"], "properties": {
        "city": {"type": "string"}, "days": {"type": "integer"}, "unit": {"type": "string", "enum": ["C", "F"]},
        "threshold": {"type": "float"}, "tags": {"type": "array", "items": {"type": "integer"}},
        "options": {"type": "dict", "properties": {"lang": {"type": "string"}}}}}}
STOCK = {"name": "stock_price", "description": "A company's stock price on a date.", "parameters": {
    "type": "dict", "required": ["company"], "properties": {"company": {"type": "string"}, "date": {"type": "string"}}}}


def gold(**params):
    return {"weather.get": params}


# -- decoding ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("[weather.get(city='Paris', days=3)]", [("weather.get", {"city": "Paris", "days": 3})]),
    ("weather.get(city='Paris')", [("weather.get", {"city": "Paris"})]),
    ("```\n[a(x=-2.5), b(y=[1, 2], z={'k': (1, 2)})]\n```", [("a", {"x": -2.5}), ("b", {"y": [1, 2], "z": {"k": (1, 2)}})]),
    ("[calc(n=3 * 4, unit=celsius)]", [("calc", {"n": 12, "unit": "celsius"})]),
    ("[outer(inner=f(a=1))]", [("outer", {"inner": {"f": {"a": 1}}})]),
    ("[run(cmd=__import__('os').system('echo hacked'))]", [("run", {"cmd": "__import__('os').system('echo hacked')"})]),
])
def test_python_call_text_decodes_like_bfcl_without_evaluating(text, expected):
    assert decode_result(text) == expected


@pytest.mark.parametrize("text", [
    "I cannot help with that.", "[f(a=]", "[1, 2]", "[f(**kw)]", "[f(a=x + 1)]", "[f(a=2 ** 100000)]",
    "[" * 5000 + "]" * 5000, "f(" + "a=1, " * 3 + ")" + "x" * 200_000,
])
def test_text_that_is_not_a_call_list_is_a_decode_error_never_a_crash(text):
    with pytest.raises(DecodeError):
        decode_result(text)
    assert not has_call(text)


def test_decoded_call_lists_take_objects_or_json_text_arguments():
    assert decode_result([{"f": {"a": 1}}, {"g": '{"b": "x"}'}]) == [("f", {"a": 1}), ("g", {"b": "x"})]
    for bad in ([{"f": "{not json"}], [{"f": 1}], [{}], [{"f": {}, "g": {}}], 7):
        with pytest.raises(DecodeError):
            decode_result(bad)
    assert not has_call([]) and not has_call([{}]) and has_call([{"f": {}}])


def test_native_tool_call_text_in_common_wrappers():
    assert parse_native('<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>\n'
                        '<tool_call>{"name": "g", "arguments": "{\\"b\\": 2}"}</tool_call>') == [("f", {"a": 1}), ("g", {"b": 2})]
    assert parse_native('[TOOL_CALLS] [{"name": "f", "arguments": {}}]') == [("f", {})]
    assert parse_native('<|python_tag|>{"name": "f", "parameters": {"x": "y"}}') == [("f", {"x": "y"})]
    assert parse_native("[f(a=1)]") == [("f", {"a": 1})]
    assert parse_native("The answer is {not json} and 42.") == []


# -- BFCL's rules -------------------------------------------------------------------------------
@pytest.mark.parametrize("args, answers, valid, code", [
    ({"city": "new-york."}, gold(city=["New York"]), True, ""),                       # normalisation
    ({"city": "Boston"}, gold(city=["New York"]), False, "value_error:string"),
    ({"city": "NYC", "days": 10.0}, gold(city=["NYC"], days=[10]), False, "type_error:simple"),  # 10.0 is no integer
    ({"city": "NYC", "days": True}, gold(city=["NYC"], days=[1]), False, "type_error:simple"),
    ({"city": "NYC", "threshold": 5}, gold(city=["NYC"], threshold=[5.0]), True, ""),  # int for float: accepted
    ({"city": "NYC", "days": "5"}, gold(city=["NYC"], days=[5]), False, "type_error:simple"),
    ({"city": "NYC"}, gold(city=["NYC"], days=[3, ""]), True, ""),                   # "" = may be omitted
    ({"city": "NYC"}, gold(city=["NYC"], days=[3]), False, "simple_function_checker:missing_optional"),
    ({"days": 3}, gold(city=["NYC"], days=[3]), False, "simple_function_checker:missing_required"),
    ({"city": "NYC", "unit": "C"}, gold(city=["NYC"]), False, "simple_function_checker:unexpected_param"),
    ({"city": "NYC", "nope": 1}, gold(city=["NYC"], nope=[1]), False, "simple_function_checker:unexpected_param"),
    ({"city": "NYC", "tags": [1, 2]}, gold(city=["NYC"], tags=[[1, 2]]), True, ""),
    ({"city": "NYC", "tags": [2, 1]}, gold(city=["NYC"], tags=[[1, 2]]), False, "value_error:list/tuple"),
    ({"city": "NYC", "tags": [1.0, 2]}, gold(city=["NYC"], tags=[[1, 2]]), False, "type_error:nested"),
    ({"city": "NYC", "options": {"lang": "EN"}}, gold(city=["NYC"], options=[{"lang": ["en"]}]), True, ""),
    ({"city": "NYC", "options": {"lang": "en", "x": 1}}, gold(city=["NYC"], options=[{"lang": ["en"]}]), False, "value_error:dict_key"),
    ({"city": "NYC", "options": {}}, gold(city=["NYC"], options=[{"lang": ["en", ""]}]), True, ""),
])
def test_one_call_follows_bfcl_rules(args, answers, valid, code):
    verdict = check_call(WEATHER, ("weather.get", args), answers)
    assert (verdict.valid, verdict.error_type) == (valid, code), verdict


def test_names_match_exactly_or_with_dots_as_underscores():
    assert check_call(WEATHER, ("weather_get", {"city": "x"}), gold(city=["x"])).valid
    verdict = check_call(WEATHER, ("weather", {"city": "x"}), gold(city=["x"]))
    assert verdict.error_type == "simple_function_checker:wrong_func_name"


def test_counts_per_category():
    one = [("weather.get", {"city": "x"})]
    assert check_calls([WEATHER], one, [gold(city=["x"])], "simple_python").valid
    assert check_calls([WEATHER], one * 2, [gold(city=["x"])], "simple_python").error_type == "simple_function_checker:wrong_count"
    assert check_calls([WEATHER], one * 2, [gold(city=["x"])], "multiple").error_type == "multiple_function_checker:wrong_count"
    assert check_calls([WEATHER], [], [gold(city=["x"])] * 2, "parallel").error_type == "parallel_function_checker_no_order:wrong_count"


def test_parallel_calls_match_by_assignment_not_first_fit():
    """Gold 0 accepts Microsoft or Apple; gold 1 only Apple. Read in this order, BFCL's greedy
    first fit gives the Apple call to gold 0 and then finds nothing for gold 1."""
    golds = [{"stock_price": {"company": ["Microsoft", "Apple"], "date": ["2022-01-01"]}},
             {"stock_price": {"company": ["Apple"], "date": ["2022-01-01"]}}]
    calls = [("stock_price", {"company": "Apple", "date": "2022-01-01"}),
             ("stock_price", {"company": "Microsoft", "date": "2022-01-01"})]
    assert check_calls([STOCK], calls, golds, "parallel").valid
    assert check_calls([STOCK], calls[::-1], golds, "parallel").valid
    dropped = check_calls([STOCK], [calls[1]] * 2, golds, "parallel")  # two Microsofts: gold 1 fits neither
    assert dropped.error_type == "parallel_function_checker_no_order:cannot_find_match"


def test_standardize_is_bfcls_normal_form():
    assert standardize("April 1, 2024") == standardize("april 1,2024") == standardize("April-1 2024.") == "april12024"
    assert standardize("it's") == 'it"s'


def test_raw_bfcl_docs_with_types_the_gold_does_not_list_never_crash():
    doc = {"name": "f", "parameters": {"type": "dict", "properties": {"x": {"type": "float"}, "y": {"type": "Hashtable"},
                                                                    "z": {"type": "array"}}}}  # no required, no items
    assert check_call(doc, ("f", {"x": 1.5, "y": "t", "z": [1]}), {"f": {"x": [1.5], "y": ["t"], "z": [[1]]}}).valid
    assert python_calls("[f(x=1.5)]") == [("f", {"x": 1.5})]


# -- eval --format bfcl on a data directory written here ------------------------------------------
def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def bfcl_dir(tmp_path):
    root = tmp_path / "bfcl"
    question = [[{"role": "user", "content": "Weather in Paris?"}]]
    write_jsonl(root / "BFCL_v4_simple_python.json", [
        {"id": f"simple_python_{i}", "question": question, "function": [WEATHER]} for i in range(2)])
    write_jsonl(root / "possible_answer" / "BFCL_v4_simple_python.json", [
        {"id": f"simple_python_{i}", "ground_truth": [gold(city=["Paris"], days=[3, ""])]} for i in range(2)])
    write_jsonl(root / "BFCL_v4_parallel.json", [{"id": "parallel_0", "question": question, "function": [STOCK]}])
    write_jsonl(root / "possible_answer" / "BFCL_v4_parallel.json", [{"id": "parallel_0", "ground_truth": [
        {"stock_price": {"company": ["Apple"]}}, {"stock_price": {"company": ["Microsoft"]}}]}])
    write_jsonl(root / "BFCL_v4_irrelevance.json", [
        {"id": f"irrelevance_{i}", "question": question, "function": [STOCK]} for i in range(2)])
    write_jsonl(root / "BFCL_v4_parallel_multiple.json", [])  # a longer name ending like another: not mixed up
    return root


def test_eval_bfcl_scores_every_category_and_writes_items(run, bfcl_dir, tmp_path):
    results = write_jsonl(tmp_path / "results.jsonl", [
        {"id": "simple_python_0", "result": "[weather.get(city='paris')]"},
        {"id": "simple_python_1", "result": [{"weather.get": {"city": "Paris", "days": 3.0}}]},
        {"id": "parallel_0", "result": [{"stock_price": '{"company": "Microsoft"}'}, {"stock_price": {"company": "apple"}}]},
        {"id": "irrelevance_0", "result": "Sorry, none of these tools can tell the weather."},
        {"id": "irrelevance_1", "result": [{"stock_price": {"company": "x"}}]},
    ])
    items = tmp_path / "items.jsonl"
    code, out, err = run("eval", results, "--format", "bfcl", "--bfcl-data", bfcl_dir, "--args-match", "bfcl",
                         "-o", items, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert {name: (c["items"], c["correct"]) for name, c in report["by_category"].items()} == {
        "simple_python": (2, 1), "parallel": (1, 1), "irrelevance": (2, 1)}
    summary = report["summary"]  # BFCL's columns need all their parts: N/A (None) otherwise
    assert summary["non_live"]["parallel"] == 100.0 and summary["non_live"]["irrelevance"] == 50.0
    assert summary["non_live"]["simple"] is None and summary["irrelevance"] is None
    rows = [json.loads(line) for line in items.read_text().splitlines()]
    assert [(r["id"], r["correct"]) for r in rows] == [
        ("simple_python_0", True), ("simple_python_1", False), ("parallel_0", True), ("irrelevance_0", True),
        ("irrelevance_1", False)]
    assert rows[1]["error_type"] == "type_error:simple" and "days" in rows[1]["reason"]
    code, out, _ = run("eval", results, "--format", "bfcl", "--bfcl-data", bfcl_dir)  # the table; bfcl implied
    assert code == 0 and "simple_python" in out and "irrelevance" in out


@pytest.mark.parametrize("line, message", [
    ({"id": "simple_python_9", "result": []}, "is not a simple_python item"),
    ({"id": "multi_turn_base_0", "result": []}, "scored by executing calls"),
    ({"id": "nonsense_0", "result": []}, "unknown BFCL category 'nonsense'"),
    ({"result": []}, "field id"),
    ({"id": "simple_python_0"}, "missing field result"),
])
def test_eval_bfcl_bad_lines_are_one_line_naming_the_line(run, bfcl_dir, tmp_path, line, message):
    results = write_jsonl(tmp_path / "results.jsonl", [{"id": "simple_python_1", "result": []}, line])
    items = tmp_path / "items.jsonl"
    code, _, err = run("eval", results, "--format", "bfcl", "--bfcl-data", bfcl_dir, "-o", items)
    assert code == 2 and message in err and "results.jsonl:2" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and not items.exists()


def test_eval_bfcl_refuses_other_argument_modes_and_broken_data(run, bfcl_dir, tmp_path):
    results = write_jsonl(tmp_path / "results.jsonl", [{"id": "simple_python_0", "result": []}])
    code, _, err = run("eval", results, "--format", "bfcl", "--bfcl-data", bfcl_dir, "--args-match", "ast")
    assert code == 2 and "--args-match bfcl" in err
    (bfcl_dir / "possible_answer" / "BFCL_v4_simple_python.json").write_text('{"id": "simple_python_0", "ground_truth": {"f": 1}}\n')
    code, _, err = run("eval", results, "--format", "bfcl", "--bfcl-data", bfcl_dir)
    assert code == 2 and "BFCL_v4_simple_python.json:1" in err and "ground_truth" in err
    code, _, err = run("eval", results, "--format", "bfcl", "--bfcl-data", tmp_path / "nowhere")
    assert code == 2 and "--bfcl-data" in err and "no such" in err


def test_grounding_belongs_to_the_ste_paper_protocol_only(run, tmp_path):
    predictions = write_jsonl(tmp_path / "p.jsonl", [{"gold": {"name": "get_weather", "arguments": {"city": "x"}},
                                                      "prediction": {"tool_calls": [{"name": "get_wether", "arguments": {"city": "x"}}]},
                                                      "tools": [{"name": "get_weather"}]}])
    code, _, err = run("eval", predictions, "--format", "chat", "--args-match", "ast", "--ground")
    assert code == 2 and "ste-paper" in err
    code, out, _ = run("eval", predictions, "--format", "chat", "--args-match", "ast", "--json")
    assert code == 0 and json.loads(out)["api_match"] == 0.0  # a misspelt name is wrong, not "closest"


# -- several gold calls, or none, in the chat format ---------------------------------------------
def chat_row(gold_calls, predicted, **extra):
    calls = [{"type": "function", "function": {"name": n, "arguments": json.dumps(a)}} for n, a in predicted]
    prediction = {"role": "assistant", "content": None if calls else "No tool fits.", "tool_calls": calls}
    return {"gold": [{"name": n, "arguments": a} for n, a in gold_calls], "prediction": prediction, **extra}


def test_several_gold_calls_match_one_to_one_in_any_order_unless_ordered(run, tmp_path):
    a, b = ("convert", {"amount": 5}), ("convert", {"amount": 7})
    rows = [
        chat_row([a, b], [b, a]),                       # unordered: right
        chat_row([a, b], [b, a], ordered=True),         # ordered: wrong
        chat_row([a, b], [a, a]),                       # a duplicate does not cover b
        chat_row([a, b], [a]),                          # a dropped call
        chat_row([], []),                               # no call expected, none made
        chat_row([], [a]),                              # a call where none is expected
        chat_row([a], [a]),
    ]
    predictions = write_jsonl(tmp_path / "p.jsonl", rows)
    items = tmp_path / "items.jsonl"
    code, out, err = run("eval", predictions, "--format", "chat", "--args-match", "ast", "-o", items, "--json")
    assert code == 0, err
    verdicts = [json.loads(line)["correct"] for line in items.read_text().splitlines()]
    assert verdicts == [True, False, False, False, True, False, True]
    assert json.loads(out)["correct"] == pytest.approx(300 / 7)


def test_bfcl_argument_rules_on_chat_items_with_possible_answer_golds(run, tmp_path):
    tools = [{"type": "function", "function": WEATHER}]  # a raw BFCL doc: its types read as JSON Schema
    rows = [
        {"gold": {"name": "weather.get", "arguments": {"city": ["New York", "NYC"], "days": [3, ""]}},
         "prediction": {"tool_calls": [{"name": "weather.get", "arguments": {"city": "new york"}}]}, "tools": tools},
        {"gold": {"name": "weather.get", "arguments": {"city": ["NYC"], "days": [3]}},
         "prediction": {"tool_calls": [{"name": "weather.get", "arguments": {"city": "NYC", "days": 3.0}}]}, "tools": tools},
    ]
    predictions = write_jsonl(tmp_path / "p.jsonl", rows)
    items = tmp_path / "items.jsonl"
    code, _, err = run("eval", predictions, "--format", "chat", "--args-match", "bfcl", "-o", items)
    assert code == 0, err
    assert [json.loads(line)["correct"] for line in items.read_text().splitlines()] == [True, False]
    code, _, err = run("eval", predictions, "--format", "chat", "--args-match", "ast")  # the old crash: UnknownType 'float'
    assert code == 0, err
    bad = write_jsonl(tmp_path / "bad.jsonl", [{**rows[0], "gold": {"name": "weather.get", "arguments": {"city": "NYC"}}}])
    code, _, err = run("eval", bad, "--format", "chat", "--args-match", "bfcl")
    assert code == 2 and "bad.jsonl:1" in err and "list of acceptable values" in err


# -- no traceback on any BFCL file -----------------------------------------------------------------
def test_every_file_bfcl_ships_is_read_without_a_traceback(run):
    from imaginarium.evaluation.bfcl.data import default_data_dir

    root = default_data_dir()
    if root is None:
        pytest.skip("bfcl-eval is not installed")
    files = sorted(root.rglob("*.json"))
    assert len(files) > 40
    for path in files:  # questions, possible answers, multi-turn docs given where results are expected
        code, _, err = run("eval", path, "--format", "bfcl")
        assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, (path, err)
    code, _, err = run("eval", files[0], "--format", "bfcl", "--bfcl-data", root / "multi_turn_func_doc")
    assert code == 2 and len(err.strip().splitlines()) == 1


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(result=JSON | st.text(max_size=200), category=st.sampled_from(["simple_python", "parallel", "multiple",
                                                                         "irrelevance", "simple_java", "simple_javascript"]))
def test_any_result_gets_a_verdict_never_an_exception(result, category):
    from imaginarium.evaluation.bfcl.data import BfclItem
    from imaginarium.evaluation.bfcl.score import score_item

    item = BfclItem("x_0", category, [[{"role": "user", "content": "q"}]], [WEATHER, STOCK],
                    golds=None if category == "irrelevance" else [gold(city=["Paris"], days=[3, ""])])
    verdict = score_item(item, result)
    assert isinstance(verdict.valid, bool)
