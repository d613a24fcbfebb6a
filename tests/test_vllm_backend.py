"""The vllm backend: request building against vLLM's real classes, where vLLM imports.

vLLM needs a GPU and pins its own torch, so it is not installed in the project's environment and
the tests that need it skip there. Where it imports, `build_sampling_params` is checked against
vLLM's real `SamplingParams`/`StructuredOutputsParams`, the engine options against its real
`StructuredOutputsConfig`, and the openai backend's request bodies against the real request
models of vLLM's OpenAI server. The orchestration (grouping, retries, indices) runs against a
stand-in for `vllm.LLM`, the one part that cannot run without a GPU.
"""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace
from typing import Any

import pytest

from imaginarium.models.backend import Constraint, GenerationRequest
from imaginarium.models.vllm import engine_kwargs

SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
TOOLS = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object", "properties": {}}}}]


def chat(constraint=None, **kwargs):
    return GenerationRequest(messages=[{"role": "user", "content": "hi"}], constraint=constraint, **kwargs)


@pytest.fixture
def vllm():
    return pytest.importorskip("vllm", reason="vLLM is not installed (it needs a GPU and its own torch)")


# ------------------------------------------------------------------ without vLLM


def test_engine_kwargs_put_the_structured_backend_in_the_engine_config():
    kwargs = engine_kwargs("org/model", "abc123", "xgrammar", {"max_model_len": 4096})
    assert kwargs == {
        "model": "org/model",
        "revision": "abc123",
        "structured_outputs_config": {"backend": "xgrammar"},
        "max_model_len": 4096,
    }
    with pytest.raises(ValueError, match="structured_backend must be one of"):
        engine_kwargs("m", None, "llguidance", {})  # the transformers backend's name, not vLLM's


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_without_vllm_the_backend_says_how_to_get_it():
    from imaginarium.models.vllm import VLLMBackend

    with pytest.raises(ImportError, match=r"imaginarium\[vllm\]"):
        VLLMBackend("org/model")


# ------------------------------------------------------------------ with vLLM


def test_sampling_params_carry_constraint_and_sampling_settings(vllm):
    from vllm.sampling_params import StructuredOutputsParams

    from imaginarium.models.vllm import build_sampling_params

    request = chat(Constraint.json(SCHEMA), n=3, seed=11, max_tokens=64, temperature=0.7, top_p=0.9, stop=["</call>"])
    params = build_sampling_params(request)
    assert isinstance(params, vllm.SamplingParams)
    assert (params.n, params.seed, params.max_tokens, params.temperature, params.top_p) == (3, 11, 64, 0.7, 0.9)
    assert params.stop == ["</call>"]
    assert isinstance(params.structured_outputs, StructuredOutputsParams)
    assert params.structured_outputs.json == SCHEMA
    assert build_sampling_params(request, seed=99).seed == 99

    regex = build_sampling_params(chat(Constraint.regex(r"\d+"))).structured_outputs
    assert (regex.regex, regex.json, regex.choice) == (r"\d+", None, None)
    choice = build_sampling_params(chat(Constraint.choice(["yes", "no"]))).structured_outputs
    assert (choice.choice, choice.json, choice.regex) == (["yes", "no"], None, None)
    assert build_sampling_params(chat()).structured_outputs is None


def test_engine_kwargs_are_accepted_by_vllms_config(vllm):
    from vllm.config import StructuredOutputsConfig

    for backend in ("auto", "xgrammar", "guidance", "outlines"):
        config = StructuredOutputsConfig(**engine_kwargs("m", None, backend, {})["structured_outputs_config"])
        assert config.backend == backend


def test_openai_backend_bodies_parse_in_vllms_server_protocol(vllm):
    """What the openai backend sends to `vllm serve` becomes the intended StructuredOutputsParams."""
    protocol = pytest.importorskip("vllm.entrypoints.openai.chat_completion.protocol")
    completion_protocol = pytest.importorskip("vllm.entrypoints.openai.completion.protocol")
    from imaginarium.models.openai import OpenAIBackend

    client = OpenAIBackend("m", "http://127.0.0.1:1/v1", flavor="vllm")
    for constraint in (Constraint.json(SCHEMA), Constraint.regex("a+"), Constraint.choice(["a", "b"])):
        body = client.build_body(chat(constraint, tools=TOOLS, seed=5, n=2, stop=["x"]), "vllm")
        request = protocol.ChatCompletionRequest.model_validate(body)
        assert request.tool_choice == "none"
        params = request.to_sampling_params(100, {})
        assert (params.n, params.seed, params.stop) == (2, 5, ["x"])
        assert getattr(params.structured_outputs, constraint.kind) == constraint.value
        raw = client.build_body(GenerationRequest(prompt="p", constraint=constraint), "vllm")
        sampling = completion_protocol.CompletionRequest.model_validate(raw).to_sampling_params(100, {})
        assert getattr(sampling.structured_outputs, constraint.kind) == constraint.value
    # vLLM also understands the openai flavor's response_format
    body = client.build_body(chat(Constraint.json(SCHEMA)), "openai")
    assert protocol.ChatCompletionRequest.model_validate(body).extract_structured_outputs().json == SCHEMA


class FakeLLM:
    """Stands in for `vllm.LLM`, which needs a GPU: answers each sample with `answer(params, prompt)`
    and records the calls. The SamplingParams it receives are vLLM's real ones."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.calls: list[tuple[str, list, list, Any]] = []

    def answer(self, params, prompt):
        so = params.structured_outputs
        if so is not None and so.choice is not None:
            return ("maybe", "stop") if params.seed == 1 else ("yes", "stop")  # seed 1: invalid
        if so is not None and so.json is not None:
            return '{"q": "cut', "length"
        return "free text", "stop"

    def _outputs(self, prompts, params_list):
        return [
            SimpleNamespace(
                prompt_token_ids=[1, 2, 3],
                outputs=[SimpleNamespace(text=t, token_ids=[7] * len(t), finish_reason=r) for t, r in [self.answer(p, prompt)] * p.n],
            )
            for prompt, p in zip(prompts, params_list)
        ]

    def chat(self, messages, sampling_params, use_tqdm=True, tools=None):
        self.calls.append(("chat", messages, sampling_params, tools))
        return self._outputs(messages, sampling_params)

    def generate(self, prompts, sampling_params, use_tqdm=True):
        self.calls.append(("generate", prompts, sampling_params, None))
        return self._outputs(prompts, sampling_params)


def test_backend_groups_by_tools_judges_and_retries_invalid(vllm, monkeypatch):
    from imaginarium.models.vllm import VLLMBackend

    monkeypatch.setattr(vllm, "LLM", FakeLLM, raising=False)
    backend = VLLMBackend("org/model", structured_backend="guidance", max_model_len=2048)
    llm = backend.llm
    assert llm.kwargs["structured_outputs_config"] == {"backend": "guidance"}
    assert llm.kwargs["max_model_len"] == 2048

    results = backend.generate(
        [
            chat(Constraint.choice(["yes", "no"]), seed=1, n=2, tools=TOOLS),  # invalid, then retried
            chat(Constraint.json(SCHEMA), tools=TOOLS),  # cut by max_tokens
            GenerationRequest(prompt="Once upon"),
            chat(),  # no tools: its own chat call
        ]
    )
    assert [(r.request_index, r.sample_index) for r in results] == [(0, 0), (0, 1), (1, 0), (2, 0), (3, 0)]
    assert [r.finish_reason for r in results] == ["stop", "stop", "length", "stop", "stop"]
    assert [r.value for r in results[:3]] == ["yes", "yes", None]
    assert (results[2].prompt_tokens, results[2].completion_tokens) == (3, len('{"q": "cut'))

    first_round = llm.calls[:3]
    kinds = sorted((kind, len(prompts), repr(tools)) for kind, prompts, _, tools in first_round)
    assert kinds == sorted([("chat", 2, repr(TOOLS)), ("generate", 1, "None"), ("chat", 1, "None")])
    retry_kind, retry_prompts, retry_params, retry_tools = llm.calls[3]
    assert (retry_kind, len(retry_prompts), retry_tools) == ("chat", 2, TOOLS)
    assert all(p.n == 1 and p.seed not in (None, 1) for p in retry_params)
    assert retry_params[0].seed != retry_params[1].seed  # each retried sample gets its own seed
    assert len(llm.calls) == 4
