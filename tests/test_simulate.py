"""Simulate mode with a real backend (transformers + Outlines on the tiny local model): misses
are written by the model in one batch, fit the tool's returns schema, are stored with
source=simulated and never come back as real."""

from __future__ import annotations

import json

import jsonschema
import pytest

from imaginarium.executor.cache import CacheEntry, ResponseCache
from imaginarium.executor.executor import Executor
from imaginarium.executor.simulate import Simulator
from imaginarium.models.factory import make_backend
from imaginarium.schemas.toolspec import HttpBinding, ToolSource, ToolSpec

RETURNS = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 10}, "temperature": {"type": "integer"}},
    "required": ["city", "temperature"],
    "additionalProperties": False,
}


def http_tool(name: str, returns=None) -> ToolSpec:
    return ToolSpec(
        name=name, source_name=name, description="Current weather in a city.", source=ToolSource(format="openapi"),
        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        returns=returns,
        http=HttpBinding(method="get", server_url="https://api.example.com", path="/weather",
                         locations={"city": ("query", "city")}),
    )


WEATHER = http_tool("get_weather", RETURNS)
FREE_TEXT = http_tool("get_notes")


@pytest.fixture(scope="module")
def backend(tiny_model):
    return make_backend("transformers", str(tiny_model))


@pytest.fixture
def cache(tmp_path):
    with ResponseCache(tmp_path / "cache.sqlite") as response_cache:
        yield response_cache


def test_prompt_holds_the_tool_the_call_and_real_examples():
    example = CacheEntry("get_weather", {"city": "Oslo"}, '{"city": "Oslo", "temperature": -4}')

    class Unused:  # the request is built without generating
        pass

    request = Simulator(Unused(), examples_k=1).request(WEATHER, {"city": "Lima"}, [example, example])
    system, user = request.messages[0]["content"], request.messages[1]["content"]
    assert "stand in for a software tool" in system
    assert "Tool name: get_weather" in user and '"temperature": -4' in user
    assert user.count("Call: ") == 1  # examples_k bounds the examples
    assert user.rstrip().endswith('New call: {"city":"Lima"}\nResponse:')
    assert request.constraint.kind == "json" and request.constraint.value["additionalProperties"] is False
    assert request.seed == Simulator(Unused()).request(WEATHER, {"city": "Lima"}, []).seed  # seed follows the call


def test_misses_are_simulated_in_one_batch_and_stored_as_simulated(backend, cache):
    cache.put(CacheEntry("get_weather", {"city": "Oslo"}, '{"city": "Oslo", "temperature": -4}'))
    executor = Executor([WEATHER, FREE_TEXT], cache, "simulate", simulator=Simulator(backend, max_tokens=48))
    calls_before = backend.stats.calls
    observations = executor.execute_many([
        {"name": "get_weather", "arguments": {"city": "Oslo"}},  # a real cached hit
        {"name": "get_weather", "arguments": {"city": "Lima"}},
        {"name": "get_weather", "arguments": {"city": "Kyiv"}},
        {"name": "get_notes", "arguments": {"city": "Rome"}},
        {"name": "get_weather", "arguments": {"town": "Rome"}},  # invalid: never reaches the model
    ])
    assert backend.stats.calls == calls_before + 1  # all misses in one generate call
    assert [o.source for o in observations] == ["cached", "simulated", "simulated", "simulated", None]
    assert any(o.ok for o in observations[1:3])
    for observation in observations[1:3]:
        if observation.ok:  # the tiny model is random: a response may fail, but never as a real one
            jsonschema.validate(json.loads(observation.content), RETURNS)
    assert observations[3].status == "ok"  # unconstrained text is accepted as the response
    assert observations[4].error_kind == "invalid_arguments"
    stats = cache.stats()
    assert stats["get_weather"]["real"] == 1
    simulated_ok = sum(o.ok for o in observations[1:4])
    assert stats["get_weather"]["simulated"] + stats.get("get_notes", {"simulated": 0})["simulated"] == simulated_ok
    for city in ("Lima", "Kyiv"):
        entry = cache.get("get_weather", {"city": city})
        assert entry is None or entry.source == "simulated"


def test_simulated_entries_replay_as_simulated(backend, cache):
    executor = Executor([FREE_TEXT], cache, "simulate", simulator=Simulator(backend, max_tokens=16))
    first = executor.execute({"name": "get_notes", "arguments": {"city": "Lima"}})
    assert first.source == "simulated" and first.ok
    replayed = Executor([FREE_TEXT], cache, "replay").execute({"name": "get_notes", "arguments": {"city": "Lima"}})
    assert replayed.source == "simulated" and replayed.content == first.content
    again = executor.execute({"name": "get_notes", "arguments": {"city": "Lima"}})
    assert again.content == first.content  # a hit: not simulated twice


def test_same_seed_simulates_the_same(backend, tmp_path):
    contents = []
    for run in range(2):
        with ResponseCache(tmp_path / f"c{run}.sqlite") as response_cache:
            executor = Executor([WEATHER], response_cache, "simulate", simulator=Simulator(backend, max_tokens=48, seed=7))
            contents.append(executor.execute({"name": "get_weather", "arguments": {"city": "Quito"}}).content)
    assert contents[0] == contents[1]
