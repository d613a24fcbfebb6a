"""Stage directories shaped like the exploitation stages' output, for the release tests.

The stages that make SFT and preference datasets are built elsewhere; these helpers write stage
directories with `write_stage` from hand-written rows that follow the record schemas
(schemas/records/sft_row.json, preference_row.json), with the manifest keys the card reads.
"""

from __future__ import annotations

import json
from pathlib import Path

from imaginarium.schemas.records import arrow_schema
from imaginarium.stage import write_stage

TOOLS = {
    "get_weather": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "convert_currency": {"type": "object", "properties": {"amount": {"type": "number"}, "to": {"type": "string"}}},
}


def _message(role, content=None, tool_calls=None, tool_call_id=None, name=None):
    return {"role": role, "content": content, "tool_calls": tool_calls, "tool_call_id": tool_call_id, "name": name}


def _tools(api):
    return [{"type": "function", "function": {"name": api, "description": f"the {api} API",
                                              "parameters": json.dumps(TOOLS[api])}}]


def sft_row(api: str, query: str, arguments: dict, observation: dict, answer: str) -> dict:
    call = {"id": "call_0", "type": "function", "function": {"name": api, "arguments": json.dumps(arguments)}}
    return {
        "messages": [
            _message("system", "You can call tools."),
            _message("user", query),
            _message("assistant", None, [call]),
            _message("tool", json.dumps(observation), None, "call_0", api),
            _message("assistant", answer),
        ],
        "tools": _tools(api),
        "api": api,
        "origin_trial": f"{api}/0",
        "paraphrase_of": None,
        "source": "ste",
        "scores": json.dumps({"judge": 1}),
        "kind": None,
    }


def sft_rows(n: int, offset: int = 0) -> list[dict]:
    """`n` distinct SFT rows, alternating between the two APIs."""
    rows = []
    for i in range(offset, offset + n):
        if i % 3 == 2:
            rows.append(sft_row("convert_currency", f"How much is {i} EUR in USD?", {"amount": i, "to": "USD"},
                                {"result": i * 1.1}, f"{i} EUR is {i * 1.1:.2f} USD."))
        else:
            rows.append(sft_row("get_weather", f"Weather in city {i}?", {"city": f"City{i}"},
                                {"temp": 20 + i % 7}, f"It is {20 + i % 7} degrees in City{i}."))
    return rows


def preference_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        good = sft_row("get_weather", f"Weather in town {i}?", {"city": f"Town{i}"}, {"temp": 18}, "18 degrees.")
        bad = sft_row("get_weather", f"Weather in town {i}?", {"city": "Nowhere"}, {"error": "unknown"}, "No idea.")
        rows.append({"question_id": f"q{i}", "task": "tool_call", "prompt": good["messages"][:2], "tools": good["tools"],
                     "chosen": good["messages"][2:], "rejected": bad["messages"][2:],
                     "chosen_score": 1.0, "rejected_score": 0.0})
    return rows


SFT_EXTRA = {
    "release_config": "sft",
    "judge_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "response_sources": {"real": 6, "simulated": 2},
    "models": [{"id": "HuggingFaceTB/SmolLM2-135M-Instruct", "revision": "main", "role": "explorer"}],
}
SFT_CONFIG = {"explorer": {"model": "HuggingFaceTB/SmolLM2-135M-Instruct", "revision": "main", "seed": 7},
              "backend": "transformers", "paraphrases_per_api": 4}
FUNNEL = {"input": 14, "steps": [
    {"name": "well_formed", "kept": 12, "dropped": {"arguments not JSON": 2}},
    {"name": "judge", "kept": 10, "dropped": {"judge said the answer is wrong": 1, "no final answer": 1}},
]}


def make_sft_stage(directory: Path, rows: list[dict], *, extra: dict | None = None, funnel: dict | None = FUNNEL) -> Path:
    write_stage(directory, "build-sft", SFT_CONFIG, {}, rows, schema=arrow_schema("sft_row"),
                extra=SFT_EXTRA if extra is None else extra,
                files={"funnel.json": json.dumps(funnel)} if funnel else None,
                counts={"apis": len({r["api"] for r in rows})})
    return directory


def make_preference_stage(directory: Path, rows: list[dict]) -> Path:
    write_stage(directory, "build-preference", {"candidates": 4, "seed": 3}, {}, rows,
                schema=arrow_schema("preference_row"), extra={"release_config": "preference"})
    return directory
