"""The `vllm` backend: an in-process `vllm.LLM` on GPUs, with vLLM's structured outputs.

vLLM is an optional extra (`pip install imaginarium[vllm]`): it needs a GPU and pins its own
torch, so it is imported lazily, only when this backend is created, and this module stays thin.
The translation of our requests into vLLM's objects is kept apart (`build_sampling_params`,
`engine_kwargs`) so it can be unit-tested against vLLM's real classes wherever vLLM imports.

- Constraints use vLLM's current API, `SamplingParams(structured_outputs=
  StructuredOutputsParams(json=... | regex=... | choice=...))` (`GuidedDecodingParams` is gone).
- The structured-output engine (`auto`, `xgrammar`, `guidance`, `outlines`,
  `lm-format-enforcer`) is an engine-wide setting in vLLM, so it goes to `LLM(...)` as
  `structured_outputs_config={"backend": ...}`, not into each request.
- Chat requests go through `LLM.chat` (the model's own chat template, tools rendered by it);
  raw prompts through `LLM.generate`. vLLM batches everything handed to it in one call.
- Every constrained text is validated with the shared `judged_completion`; invalid samples are
  generated again with a derived seed a bounded number of times, `length` is never valid.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from typing import Any

from imaginarium.jsonutil import canonical_json
from imaginarium.models.backend import Backend, Completion, GenerationRequest
from imaginarium.models.constraint_check import judged_completion

logger = logging.getLogger(__name__)

STRUCTURED_BACKENDS = ("auto", "xgrammar", "guidance", "outlines", "lm-format-enforcer")
_INSTALL_HINT = "the vllm backend needs vLLM and a GPU: pip install 'imaginarium[vllm]'"


def _import_vllm():
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(f"{_INSTALL_HINT} ({exc})") from exc
    return vllm


def build_sampling_params(request: GenerationRequest, seed: int | None = None) -> Any:
    """vLLM `SamplingParams` for `request`; `seed` overrides the request's (used for retries)."""
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    structured = None
    if request.constraint is not None:
        structured = StructuredOutputsParams(**{request.constraint.kind: request.constraint.value})
    return SamplingParams(
        n=request.n,
        temperature=request.temperature,
        top_p=request.top_p,
        max_tokens=request.max_tokens,
        seed=request.seed if seed is None else seed,
        stop=list(request.stop) if request.stop else None,
        structured_outputs=structured,
    )


def engine_kwargs(
    model: str, revision: str | None, structured_backend: str, llm_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM`: ours first, the caller's `llm_kwargs` on top."""
    if structured_backend not in STRUCTURED_BACKENDS:
        raise ValueError(f"structured_backend must be one of {', '.join(STRUCTURED_BACKENDS)}, not {structured_backend!r}")
    return {
        "model": model,
        "revision": revision,
        "structured_outputs_config": {"backend": structured_backend},
        **llm_kwargs,
    }


class VLLMBackend(Backend):
    """Generate with an in-process `vllm.LLM`. Extra keyword arguments go to `vllm.LLM`
    (e.g. `gpu_memory_utilization`, `max_model_len`, `tensor_parallel_size`)."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        revision: str | None = None,
        structured_backend: str = "auto",
        invalid_retries: int = 1,
        **llm_kwargs: Any,
    ):
        super().__init__(str(model), revision)
        kwargs = engine_kwargs(self.model, revision, structured_backend, llm_kwargs)
        self.structured_backend = structured_backend
        self.invalid_retries = invalid_retries
        self.llm = _import_vllm().LLM(**kwargs)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "structured_backend": self.structured_backend}

    def _generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        per_request = self._run(requests, [r.seed for r in requests])
        for index, completions in enumerate(per_request):
            for sample, completion in enumerate(completions):
                completion.request_index, completion.sample_index = index, sample
        for attempt in range(1, self.invalid_retries + 1):
            bad = [c for completions in per_request for c in completions if c.finish_reason == "invalid"]
            if not bad:
                break
            logger.info("%d invalid output(s), generating them again (%d/%d)", len(bad), attempt, self.invalid_retries)
            retried = [replace(requests[c.request_index], n=1) for c in bad]
            seeds = [_retry_seed(r.seed, c.sample_index, attempt) for r, c in zip(retried, bad)]
            again = self._run(retried, seeds)
            for old, (new,) in zip(bad, again):
                if new.finish_reason != "error":
                    new.request_index, new.sample_index = old.request_index, old.sample_index
                    per_request[old.request_index][old.sample_index] = new
        return [completion for completions in per_request for completion in completions]

    def _run(self, requests: list[GenerationRequest], seeds: list[int | None]) -> list[list[Completion]]:
        """The `n` judged completions of each request, in order: one vLLM call per kind of
        input (raw prompts; chats with the same tools, since `LLM.chat` takes one tool list)."""
        groups: dict[str | None, list[int]] = {}
        for position, request in enumerate(requests):
            key = None if request.prompt is not None else canonical_json(request.tools or [])
            groups.setdefault(key, []).append(position)
        results: list[list[Completion]] = [[] for _ in requests]
        for key, positions in groups.items():
            group = [requests[p] for p in positions]
            params = [build_sampling_params(requests[p], seeds[p]) for p in positions]
            if key is None:
                outputs = self.llm.generate([r.prompt for r in group], params, use_tqdm=False)
            else:
                outputs = self.llm.chat([r.messages for r in group], params, use_tqdm=False, tools=group[0].tools or None)
            for position, request, output in zip(positions, group, outputs):
                for sample, generated in enumerate(output.outputs):
                    completion = judged_completion(request.constraint, generated.text, generated.finish_reason)
                    completion.prompt_tokens = len(output.prompt_token_ids or []) if sample == 0 else 0
                    completion.completion_tokens = len(generated.token_ids)
                    results[position].append(completion)
        return results


def _retry_seed(seed: int | None, sample: int, attempt: int) -> int | None:
    """A retry's seed, derived from the request's: the same seed would repeat the invalid text."""
    if seed is None:
        return None
    return int(hashlib.sha256(f"{seed}/{sample}/{attempt}".encode()).hexdigest()[:15], 16)
