"""Record schemas: valid JSON Schemas, one Arrow schema per record, real rows round-trip."""

import json

import jsonschema
import pyarrow as pa
import pytest

from imaginarium.errors import InputError
from imaginarium.schemas.records import RECORDS, arrow_schema, features, record_schema, validate_rows
from imaginarium.stage import data_files, write_stage

CALL = {"name": "add_date", "arguments": json.dumps({"date": "2024-01-01", "days": 3})}
TOOL = {"type": "function", "function": {"name": "add_date", "description": "Add days to a date.",
                                          "parameters": json.dumps({"type": "object", "properties": {}})}}


def message(role, content=None, tool_calls=None, tool_call_id=None, name=None):
    return {"role": role, "content": content, "tool_calls": tool_calls, "tool_call_id": tool_call_id, "name": name}


CHAT = [
    message("system", "You can call tools."),
    message("user", "What is the date 3 days after 2024-01-01?"),
    message("assistant", None, [{"id": "call_0", "type": "function", "function": CALL}]),
    message("tool", "2024-01-04", tool_call_id="call_0", name="add_date"),
    message("assistant", "It is 2024-01-04."),
]

EXAMPLES = {
    "episode_trial": {
        "trial_id": "add_date/0/0", "api": "add_date", "episode": 0, "slot": 0,
        "query": "What is the date 3 days after 2024-01-01?", "tools_shown": ["add_date", "get_today_date"],
        "steps": [
            {"thought": "I should add days.", "action": "call", "call": CALL,
             "observation": json.dumps({"content": "2024-01-04", "status": "ok", "source": "real"}), "parse_error": None,
             "text": None, "parallel": None},
            {"thought": None, "action": "final_answer", "call": None, "observation": None, "parse_error": None,
             "text": None, "parallel": None},
        ],
        "final_answer": "2024-01-04", "succeeded": True, "reflection": "yes",
        "model": "tiny", "backend": "transformers", "seed": 0,
    },
    "sft_row": {"messages": CHAT, "tools": [TOOL], "api": "add_date", "origin_trial": "add_date/0/0",
                "paraphrase_of": None, "source": "ste", "scores": json.dumps({"judge": "yes"})},
    "preference_row": {"question_id": "q1", "task": "math", "prompt": CHAT[:2], "tools": [TOOL],
                       "chosen": CHAT[2:], "rejected": [message("assistant", "I don't know.")],
                       "chosen_score": 1.0, "rejected_score": 0.0},
    "ranking_row": {"question_id": "q1", "task": "math", "prompt": CHAT[:2], "tools": [TOOL], "gold": "2024-01-04",
                    "candidates": [{"messages": CHAT[2:], "score": 1.0, "reason": "exact match",
                                    "final_answer": "2024-01-04", "model": "tiny", "seed": 1}]},
    "eval_item": {"item_id": "add_date/0", "api": "add_date", "query": "q", "tools_shown": ["add_date"],
                  "gold_call": CALL, "output": "Action: add_date\nAction Input: {}", "parsed_kind": "call",
                  "parsed_call": {"name": "add_date", "arguments": "{}"}, "parse_error": None, "wellformed": True,
                  "api_match": True, "args_correct": False, "correct": False, "match_mode": "ast",
                  "reason": "missing key date"},
}


@pytest.mark.parametrize("name", RECORDS)
def test_record_schema_is_valid_and_example_conforms(name):
    jsonschema.Draft202012Validator.check_schema(record_schema(name))
    validate_rows(name, [EXAMPLES[name]])


@pytest.mark.parametrize("name", RECORDS)
def test_rows_round_trip_through_a_stage_with_one_arrow_schema(tmp_path, name):
    from datasets import load_dataset

    write_stage(tmp_path / name, name, {}, {}, [EXAMPLES[name]], schema=arrow_schema(name))
    files = [str(p) for p in data_files(tmp_path / name)]
    dataset = load_dataset("parquet", data_files=files, split="train")
    assert dataset.features == features(name)
    optional_absent = {key: None for key in arrow_schema(name).names if key not in EXAMPLES[name]}
    assert dataset[0] == EXAMPLES[name] | optional_absent


def test_per_tool_shapes_are_json_strings():
    trial = arrow_schema("episode_trial")
    step = trial.field("steps").type.value_type
    assert step.field("call").type.field("arguments").type == pa.string()
    assert step.field("observation").type == pa.string()
    tool = arrow_schema("sft_row").field("tools").type.value_type
    assert tool.field("function").type.field("parameters").type == pa.string()


def test_validate_rows_names_row_and_field():
    broken = dict(EXAMPLES["sft_row"], messages=[message("robot", "hi")])
    with pytest.raises(InputError, match=r"row 1, field messages/0/role"):
        validate_rows("sft_row", [EXAMPLES["sft_row"], broken], where="sft.parquet")
