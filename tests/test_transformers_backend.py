"""The transformers backend on the tiny model: constraints hold, seeds repeat, limits are reported."""

from __future__ import annotations

import json
import re

import pytest

from imaginarium.errors import InputError
from imaginarium.models.backend import Completion, Constraint, GenerationRequest
from imaginarium.models.factory import make_backend, resolve_model
from imaginarium.models.options import GenerationOptions
from imaginarium.models.transformers import TransformersBackend

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "days": {"type": "integer", "minimum": 1, "maximum": 5},
        "unit": {"enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "days", "unit"],
    "additionalProperties": False,
}
CHAT = [{"role": "user", "content": "What is the weather like?"}]


@pytest.fixture(scope="module")
def backend(tiny_model):
    return make_backend("transformers", str(tiny_model), num_threads=1)


def test_json_constraint_gives_valid_values(backend):
    import jsonschema

    requests = [GenerationRequest(messages=CHAT, constraint=Constraint.json(SCHEMA), seed=s, max_tokens=80) for s in range(12)]
    completions = backend.generate(requests)
    assert [c.request_index for c in completions] == list(range(12))
    valid = [c for c in completions if c.finish_reason == "stop"]
    assert len(valid) >= 9
    for c in completions:
        assert c.finish_reason in ("stop", "length")
        if c.finish_reason == "stop":
            jsonschema.validate(c.value, SCHEMA)
            assert json.loads(c.text) == c.value
            assert 1 <= c.value["days"] <= 5
        else:
            assert c.value is None


def test_regex_and_choice_constraints(backend):
    requests = [
        GenerationRequest(prompt="code:", constraint=Constraint.regex(r"[A-Z]{2}-[0-9]{3}"), seed=1, n=4),
        GenerationRequest(prompt="answer:", constraint=Constraint.choice(["yes", "no", "maybe so"]), seed=2, n=4),
    ]
    completions = backend.generate(requests)
    assert [(c.request_index, c.sample_index) for c in completions] == [(0, k) for k in range(4)] + [(1, k) for k in range(4)]
    for c in completions[:4]:
        assert c.ok and re.fullmatch(r"[A-Z]{2}-[0-9]{3}", c.value)
    for c in completions[4:]:
        assert c.ok and c.value in ("yes", "no", "maybe so") and c.text == c.value


def test_same_seed_same_output_whatever_the_batch(backend):
    request = GenerationRequest(messages=CHAT, constraint=Constraint.json(SCHEMA), seed=7, max_tokens=80)
    alone = backend.generate([request])[0]
    others = [GenerationRequest(prompt="filler " * k, seed=k, max_tokens=20) for k in range(1, 4)]
    in_batch = backend.generate([*others, request])[-1]
    assert alone.text == in_batch.text
    different = backend.generate([GenerationRequest(messages=CHAT, constraint=Constraint.json(SCHEMA), seed=8, max_tokens=80)])[0]
    assert different.text != alone.text


def test_n_samples_differ_and_greedy_repeats(backend):
    samples = backend.generate([GenerationRequest(prompt="Once upon a time", seed=3, n=3, max_tokens=12)])
    assert len({c.text for c in samples}) == 3
    greedy = backend.generate([GenerationRequest(prompt="Once upon a time", temperature=0, seed=s, max_tokens=12) for s in (1, 2)])
    assert greedy[0].text == greedy[1].text


def test_max_tokens_cut_is_length_and_never_valid(backend):
    long_schema = {"type": "object", "properties": {"text": {"type": "string", "minLength": 50, "maxLength": 60}}, "required": ["text"]}
    completions = backend.generate([GenerationRequest(prompt="x", constraint=Constraint.json(long_schema), seed=0, max_tokens=5)])
    assert completions[0].finish_reason == "length" and completions[0].error == "cut by max_tokens"
    assert completions[0].value is None
    assert completions[0].completion_tokens == 5


def test_stop_strings_cut_the_text(backend):
    plain = backend.generate([GenerationRequest(prompt="text", seed=5, max_tokens=40)])[0].text
    stop = plain[10:12]
    cut = backend.generate([GenerationRequest(prompt="text", seed=5, max_tokens=40, stop=[stop])])[0]
    assert cut.finish_reason == "stop"
    assert stop not in cut.text and plain.startswith(cut.text)


def test_tools_reach_the_chat_template(backend):
    tool = {"type": "function", "function": {"name": "lookup_zipcode", "parameters": {"type": "object"}}}
    with_tools = backend.generate([GenerationRequest(messages=CHAT, tools=[tool], max_tokens=1, seed=0)])[0]
    without = backend.generate([GenerationRequest(messages=CHAT, max_tokens=1, seed=0)])[0]
    assert with_tools.prompt_tokens > without.prompt_tokens + 5


def test_schema_compiled_once_and_cached(tiny_model):
    backend = TransformersBackend(str(tiny_model))
    request = GenerationRequest(prompt="x", constraint=Constraint.regex("[a-z]{4}"), seed=0)
    backend.generate([request, request])
    backend.generate([request])
    assert backend.stats.extra["constraints_compiled"] == 1
    assert backend.stats.extra["constraint_cache_hits"] == 1  # the second call found it compiled


def test_engine_that_ignores_bounds_is_caught_by_validation(tiny_model):
    """outlines_core does not enforce integer bounds: out-of-range values must end up invalid, never kept."""
    backend = TransformersBackend(str(tiny_model), structured_backend="outlines_core", max_retries=1)
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 3}}, "required": ["n"], "additionalProperties": False}
    completions = backend.generate([GenerationRequest(prompt="n:", constraint=Constraint.json(schema), seed=s, max_tokens=30) for s in range(8)])
    for c in completions:
        assert c.finish_reason in ("stop", "invalid", "length")
        if c.finish_reason == "stop":
            assert 1 <= c.value["n"] <= 3
        else:
            assert c.value is None
    assert any(c.finish_reason == "invalid" and "maximum" in c.error for c in completions)
    assert backend.stats.extra["retries"] > 0


@pytest.mark.parametrize("engine", ["outlines_core", "xgrammar"])
def test_other_structured_backends_work(tiny_model, engine):
    backend = TransformersBackend(str(tiny_model), structured_backend=engine)
    completions = backend.generate(
        [GenerationRequest(prompt="p", constraint=Constraint.choice(["alpha", "beta"]), seed=s) for s in range(4)]
    )
    assert all(c.ok and c.value in ("alpha", "beta") for c in completions)


def test_uncompilable_constraint_is_an_error_for_its_requests_only(backend):
    bad = GenerationRequest(prompt="x", constraint=Constraint.regex("(unclosed"), seed=0)
    good = GenerationRequest(prompt="x", constraint=Constraint.choice(["a", "b"]), seed=0)
    completions = backend.generate([bad, good])
    assert completions[0].finish_reason == "error" and "compiled" in completions[0].error
    assert completions[1].ok


def test_make_backend_names_and_tiny_models():
    with pytest.raises(InputError, match="unknown backend"):
        make_backend("nope", "tiny")
    with pytest.raises(InputError, match="seed"):
        resolve_model("tiny:abc")
    assert resolve_model("tiny") == resolve_model("tiny:0")
    assert resolve_model("org/model") == "org/model"


def test_defaults():
    defaults = GenerationOptions()
    assert defaults.backend == "transformers" and defaults.model == "smollm2-135m"
    assert defaults.structured_backend == "llguidance"


def test_generate_returns_completions(backend):
    assert backend.generate([]) == []
    assert isinstance(backend.generate([GenerationRequest(prompt="a", max_tokens=2, seed=0)])[0], Completion)







def _valid_or_truncated(completions, check) -> int:
    """Every completion is valid (checked by `check`) or cut by max_tokens; returns how many are valid."""
    for c in completions:
        assert c.finish_reason in ("stop", "length"), (c.finish_reason, c.error, c.text)
        if c.finish_reason == "stop":
            check(c)
        else:
            assert c.value is None
    return sum(c.finish_reason == "stop" for c in completions)


def test_toolbench_call_schemas_200_seeded_requests(backend, toolbench_call_requests):
    """The issue's acceptance test: 200 seeded calls over ToolBench call schemas from the tiny model."""
    import jsonschema

    picked, schemas, requests = toolbench_call_requests
    completions = backend.generate(requests)

    def check(c):
        jsonschema.validate(c.value, schemas[c.request_index])
        jsonschema.validate(c.value["arguments"], picked[c.request_index].parameters)
        assert c.value["name"] == picked[c.request_index].name
        assert json.loads(c.text) == c.value

    assert _valid_or_truncated(completions, check) >= 170


def test_toolbench_choice_and_regex_200_seeded_requests(backend, choice_and_regex_requests):
    requests, check = choice_and_regex_requests
    assert _valid_or_truncated(backend.generate(requests), check) == 400


def test_free_numbers_stay_in_float_range(backend):
    """A JSON grammar allows any exponent (1e-77752170793014479); bounded numbers never overflow."""
    schema = {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": ["number", "null"]}}, "required": ["x", "y"]}
    completions = backend.generate([GenerationRequest(prompt="x", constraint=Constraint.json(schema), seed=s, max_tokens=60) for s in range(30)])
    assert all(c.finish_reason in ("stop", "length") for c in completions), [c.error for c in completions if c.error]
    assert sum(c.ok for c in completions) >= 20


def test_bounded_numbers_only_narrows_free_numbers():
    from imaginarium.models.grammars import NUMBER_LIMIT, bounded_numbers

    schema = {
        "type": "object",
        "properties": {
            "free": {"type": "number"},
            "low": {"type": "number", "minimum": 0},
            "either": {"type": ["number", "string"]},
            "count": {"type": "integer"},
            "type": {"enum": [{"type": "number"}]},
        },
    }
    bounded = bounded_numbers(schema)
    assert bounded["properties"]["free"] == {"type": "number", "minimum": -NUMBER_LIMIT, "maximum": NUMBER_LIMIT}
    assert bounded["properties"]["low"] == {"type": "number", "minimum": 0, "maximum": NUMBER_LIMIT}
    assert bounded["properties"]["either"]["maximum"] == NUMBER_LIMIT
    assert bounded["properties"]["count"] == {"type": "integer"}
    assert bounded["properties"]["type"] == {"enum": [{"type": "number"}]}
    assert schema["properties"]["free"] == {"type": "number"}


def test_tiny_model_name_is_what_the_manifest_records():
    backend = make_backend("transformers", "tiny")
    assert backend.describe() == {"backend": "transformers", "model": "tiny", "revision": None, "structured_backend": "llguidance"}


def test_unknown_structured_backend_is_refused_up_front(tiny_model):
    with pytest.raises(InputError, match="structured_backend: unknown 'outlines'"):
        TransformersBackend(str(tiny_model), structured_backend="outlines")


def test_tiny_top_p_keeps_only_the_most_likely_token(backend):
    greedy = backend.generate([GenerationRequest(prompt="The tools", temperature=0, seed=0, max_tokens=10)])[0]
    nucleus = backend.generate([GenerationRequest(prompt="The tools", temperature=1.0, top_p=1e-6, seed=s, max_tokens=10) for s in (1, 2)])
    assert nucleus[0].text == nucleus[1].text == greedy.text
    sampled = backend.generate([GenerationRequest(prompt="The tools", temperature=1.0, top_p=1.0, seed=1, max_tokens=10)])[0]
    assert sampled.text != greedy.text


def test_empty_raw_prompt_generates(backend):
    completions = backend.generate([GenerationRequest(prompt="", max_tokens=3, seed=0), GenerationRequest(prompt="", max_tokens=3, seed=0, constraint=Constraint.choice(["x"]))])
    assert completions[0].finish_reason in ("stop", "length") and completions[0].prompt_tokens == 1
    assert completions[1].ok and completions[1].value == "x"


def test_unconstrained_rows_go_on_after_the_constrained_ones_finish(backend):
    completions = backend.generate(
        [GenerationRequest(prompt="a", constraint=Constraint.choice(["x"]), seed=0), GenerationRequest(prompt="b", seed=0, max_tokens=30, n=3)]
    )
    assert completions[0].ok and completions[0].value == "x"
    assert all(c.finish_reason in ("stop", "length") for c in completions[1:])
    assert max(c.completion_tokens for c in completions[1:]) > 2
