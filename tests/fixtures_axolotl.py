"""A release and a tiny model for the Axolotl recipe tests.

The release holds an `sft` config of chat rows with tools, made by the pipeline's own builder
(`build_sft` with the tool response turn, from episode trials written here), and a
`preference_text` config: preference rows (preference_row schema; hand-written in
tests/fixtures_release.py until the TRICE builder exists) rendered to text with the tiny model's
chat template.
"""

from __future__ import annotations

import json
from pathlib import Path

from fixtures_release import preference_rows

from imaginarium.builders.preference_text import ARROW_SCHEMA, render_preference_rows
from imaginarium.schemas.records import arrow_schema, validate_rows
from imaginarium.schemas.toolspec import ToolSource, ToolSpec, write_tools
from imaginarium.stage import write_stage

# name -> (description, parameter properties, a query, arguments, response content, final answer) per city
_APIS = {
    "city_weather": ("Current weather in a city: temperature and sky.", {"city": {"type": "string"}},
                     "What is the weather like in {city} right now?", lambda c: {"city": c},
                     lambda c: {"temp_c": 10 + len(c), "sky": "clear"}, lambda c: f"It is {10 + len(c)} degrees and clear in {c}."),
    "currency_convert": ("Convert an amount of money between currencies.",
                         {"amount": {"type": "number"}, "to": {"type": "string"}},
                         "How many yen is {n} euros?", lambda n: {"amount": n, "to": "JPY"},
                         lambda n: {"converted": n * 160}, lambda n: f"{n} euros is {n * 160} yen."),
}
_CITIES = ["Oslo", "Lima", "Porto", "Hanoi", "Quito", "Tunis", "Riga", "Perth"]


def make_tiny_model(directory: Path) -> Path:
    from imaginarium.models.tiny import build_tiny_model

    return build_tiny_model(directory, seed=0)


def _trials(count: int) -> list[dict]:
    """Successful episode trials (episode_trial schema): one call, its response, a final answer."""
    trials = []
    for index in range(count):
        api = "city_weather" if index % 2 == 0 else "currency_convert"
        _, _, query, arguments, response, answer = _APIS[api]
        value = _CITIES[index % len(_CITIES)] if api == "city_weather" else 5 * (index + 1)
        observation = {"content": json.dumps(response(value)), "status": "ok", "source": "cached", "latency_ms": 1.0,
                       "error_kind": None, "truncated": False, "untrusted": False}
        steps = [
            {"thought": "call the tool", "action": "call", "parse_error": None, "observation": json.dumps(observation),
             "call": {"name": api, "arguments": json.dumps(arguments(value))}},
            {"thought": "answer", "action": "final_answer", "call": None, "observation": None, "parse_error": None},
        ]
        trials.append({"trial_id": f"{api}/0/{index}", "api": api, "episode": 0, "slot": index,
                       "query": query.format(city=value, n=value), "tools_shown": [api], "steps": steps,
                       "final_answer": answer(value), "succeeded": True, "reflection": "yes", "model": "hand",
                       "backend": "none", "seed": 0})
    return trials


def make_sft_config(root: Path, rows: int) -> Path:
    """The `sft` stage built by `build_sft` (chat rows with the tool response) from hand-made trials."""
    from imaginarium.builders.sft import SftConfig, build_sft

    tools = [ToolSpec(name=name, source_name=name, description=description, source=ToolSource(format="openai"),
                      parameters={"type": "object", "properties": properties, "required": list(properties)})
             for name, (description, properties, *_rest) in _APIS.items()]
    write_tools(root / "tools.jsonl", tools)
    trials = _trials(rows)
    write_stage(root / "stages/trials", "explore", {"seed": 0}, {}, trials, schema=arrow_schema("episode_trial"))
    build_sft(root / "stages/trials", root / "tools.jsonl", root / "stages/sft", SftConfig.from_flat(dict(with_tool_response=True, max_tools=2)), progress=False)
    return root / "stages/sft"


def make_release(root: Path, model_dir: Path, *, rows: int = 8) -> Path:
    """A release directory with the `sft` and `preference_text` configs (version 1.0.0)."""
    from transformers import AutoTokenizer

    from imaginarium.hub_cards.release import build_release

    sft_dir = make_sft_config(root, rows)
    preferences = preference_rows(rows)
    validate_rows("preference_row", preferences)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    text_rows = render_preference_rows(preferences, tokenizer)
    text_dir = root / "stages/preference_text"
    write_stage(text_dir, "render-preference-text", {"model": str(model_dir)}, {}, text_rows, schema=ARROW_SCHEMA,
                extra={"release_config": "preference_text"})
    release = root / "release"
    build_release([sft_dir, text_dir], release, name="axolotl-test", version="1.0.0", repo_id="imaginarium/axolotl-test")
    return release
