"""Parsing model outputs into calls: ReAct text, <tool_NAME> tokens, tool_calls, JSON calls."""

from imaginarium.evaluation.parse import (
    ParsedCall,
    ground_name,
    parse_json_call,
    parse_output,
    parse_react,
    parse_tool_calls,
)


def test_react_plain_call():
    call = parse_react('Action: add_date\nAction Input: {"date": "2022-10-14", "days": 90}')
    assert call == ParsedCall("call", name="add_date", arguments={"date": "2022-10-14", "days": 90})


def test_react_tool_token_is_unwrapped():
    call = parse_react('Action:  <tool_BART%%Advisory information> \nAction Input: {"cmd": "bsa"}')
    assert call.kind == "call" and call.name == "BART%%Advisory information"


def test_final_answer_without_call_is_no_call():
    assert parse_react("Final Answer: It is sunny.").kind == "no_call"
    # a final answer that comes before the action wins, as in the paper's results
    assert parse_react('Final Answer:\nAction: search\nAction Input: {"query": "x"}').kind == "no_call"


def test_text_without_action_is_an_error():
    assert parse_react("Sure, I'd be happy to help you with that!").kind == "error"
    # "Action Input" with no "Action:" before it
    assert parse_react('Action Input: {"text": "9"}\nFinal Answer: nine').kind == "error"


def test_explanations_and_observation_around_the_json_are_ignored():
    text = 'Sure!\nAction: search\nAction Input: {\n"query": "Nobel"\n}\n\nThis returns a list.\n\nObservation'
    assert parse_react(text).arguments == {"query": "Nobel"}


def test_hallucinated_json_observation_makes_it_an_error():
    text = 'Action: Car database%%Makes\nAction Input: {}\nObservation:\n{\n "makes": [1, 2]\n}'
    call = parse_react(text)
    assert call.kind == "error" and call.name == "Car database%%Makes"


def test_arguments_end_at_the_final_answer():
    text = 'Action: Password Generator API%%Base\nAction Input: {}\n\nFinal Answer: {\n "password": "x",\n}'
    assert parse_react(text) == ParsedCall("call", name="Password Generator API%%Base", arguments={})


def test_second_action_input_is_an_error():
    text = 'Action: a\nAction Input: {}\n---\nAction: b\nAction Input: {"x": 1}\nObservation'
    assert parse_react(text).kind == "error"


def test_doubled_braces_are_accepted_and_bad_json_is_not():
    assert parse_react('Action: search\nAction Input: {{"entity" : "dance"}}').arguments == {"entity": "dance"}
    assert parse_react('Action: s\nAction Input: {"date": "2023-03-06",}').kind == "error"
    assert parse_react('Action: s\nAction Input: {"date": "2023').kind == "error"


def test_openai_tool_calls():
    message = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
    assert parse_tool_calls(message) == ParsedCall("call", name="get_weather", arguments={"city": "Paris"})
    assert parse_tool_calls({"role": "assistant", "content": "It is sunny."}).kind == "no_call"
    two = {"tool_calls": [message["tool_calls"][0], message["tool_calls"][0]]}
    assert parse_tool_calls(two).kind == "error"
    bad = {"tool_calls": [{"function": {"name": "f", "arguments": "{not json"}}]}
    assert parse_tool_calls(bad).kind == "error"


def test_json_calls():
    assert parse_json_call('{"name": "f", "arguments": {"a": [1, 2]}}').arguments == {"a": [1, 2]}
    assert parse_json_call('<call>{"name": "f", "arguments": {}}</call>').name == "f"
    assert parse_json_call('{"arguments": {}}').kind == "error"
    assert parse_output('{"name": "f", "arguments": "{\\"x\\": 1}"}').arguments == {"x": 1}
    assert parse_output({"name": "f", "arguments": {"x": 1}}).name == "f"
    assert parse_output("").kind == "error"


def test_grounding_maps_unknown_names_to_the_closest_known_one():
    known = ["Token API%%generate", "colegiosantaana%%Evaluaciones-1", "colegiosantaana%%Mensajes-1"]
    call = ground_name(ParsedCall("call", name="colegiosantaana%Evaluaciones-1", arguments={}), known)
    assert call.name == "colegiosantaana%%Evaluaciones-1" and call.raw_name == "colegiosantaana%Evaluaciones-1"
    exact = ParsedCall("call", name="Token API%%generate", arguments={})
    assert ground_name(exact, known) is exact
    assert ground_name(ParsedCall("no_call"), known).kind == "no_call"
