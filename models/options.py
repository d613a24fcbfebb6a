"""How a stage generates: the engine, the model, how to sample. Declared once, used everywhere.

Every command that generates (explore, filter's judge, augment, rank, predict, eval's judge,
tools call in simulate mode, generate) takes these options, with the same flags, help and
checks; a recipe's `generation:` block sets them for every stage. A stage may choose its own
sampling defaults (a judge decodes greedily, exploration samples), but not new options.
`open_backend` is the one place that turns them into a Backend.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, model_validator

from imaginarium.errors import InputError
from imaginarium.models.backend import Backend
from imaginarium.options import Options

Engine = Literal["transformers", "vllm", "openai"]
StructuredBackend = Literal["llguidance", "outlines_core", "xgrammar"]
# SmolLM2-135M-Instruct, embedded offline (models/default.py): a real instruction-tuned
# model that runs on a CPU. `tiny` (a random-weight model, text meaningless) is for fast tests.
DEFAULT_MODEL = "smollm2-135m"
# llguidance: enforces integer/number bounds, string lengths, patterns and enums (outlines_core
# ignores numeric bounds), compiles a schema in milliseconds, and fills a batch's token masks in
# parallel. See docs/generation.md for the measurements behind this choice.
DEFAULT_STRUCTURED_BACKEND: StructuredBackend = "llguidance"
SERVED_KEY_ENV = "OPENAI_API_KEY"


class GenerationOptions(Options):
    """The engine, the model and the sampling of one generating stage."""

    backend: Engine = Field("transformers", description=(
        "Generation engine: transformers (local, CPU or GPU), vllm (local GPU), openai (an OpenAI-compatible "
        "server such as `vllm serve`, at --base-url)."))
    model: str = Field(DEFAULT_MODEL, min_length=1, description=(
        "HF model id or local path; `smollm2-135m` is the embedded default (SmolLM2-135M-Instruct), `tiny` the "
        "embedded test model. With --backend openai: the served model's name."))
    revision: str | None = Field(None, min_length=1, description="Model revision to load (branch, tag or commit).")
    base_url: str | None = Field(None, pattern=r"^https?://\S+$", json_schema_extra={"fingerprint": False},
                                 description="openai backend: the server's root including /v1, e.g. http://127.0.0.1:8000/v1.")
    api_key_env: str = Field(SERVED_KEY_ENV, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", json_schema_extra={"fingerprint": False},
                             description="openai backend: the environment variable holding the server's API key "
                                         "(never a command-line value: it would land in shell history).")
    structured_backend: StructuredBackend = Field(DEFAULT_STRUCTURED_BACKEND, description=(
        "transformers backend: the constraint engine (llguidance enforces the most; docs/generation.md)."))
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description=(
        "transformers backend: the weights' type (auto: the checkpoint's; bfloat16 halves memory on a GPU)."))
    temperature: float = Field(0.7, ge=0, le=5, description="Sampling temperature (0: greedy).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling: the smallest set of tokens with this much probability.")
    max_tokens: int = Field(512, ge=1, le=1_000_000, description="Token budget of one generated text.")
    seed: int = Field(0, ge=0, description="Seed: the same seed gives the same samples.")

    @model_validator(mode="after")
    def _server_only_for_openai(self) -> GenerationOptions:
        if self.backend == "openai" and self.base_url is None:
            raise ValueError("the openai backend needs --base-url, the server's address (e.g. http://127.0.0.1:8000/v1)")
        if self.backend != "openai" and self.base_url is not None:
            raise ValueError(f"--base-url is for the openai backend, not {self.backend}")
        if self.backend != "transformers" and "structured_backend" in self.model_fields_set:
            raise ValueError(f"--structured-backend is for the transformers backend, not {self.backend}")
        return self

    def describe(self) -> dict[str, str | None]:
        """What a manifest records about the model (no server address, no key)."""
        return {"backend": self.backend, "model": self.model, "revision": self.revision}


def open_backend(options: GenerationOptions, model: str | None = None) -> Backend:
    """The backend `options` describe (for `model` instead of options.model, when given).

    Raises:
        InputError: the served model's key variable is named but empty, or the model cannot be found.
    """
    from imaginarium.models.factory import make_backend

    name = model or options.model
    extra: dict[str, object] = {}
    if options.backend == "transformers":
        extra["structured_backend"] = options.structured_backend
        extra["dtype"] = options.dtype
    if options.backend == "openai":
        extra["base_url"] = options.base_url
        key = os.environ.get(options.api_key_env)
        if options.api_key_env != SERVED_KEY_ENV and not key:
            raise InputError(f"the environment variable {options.api_key_env} is not set", where="--api-key-env")
        extra["api_key"] = key or None
    return make_backend(options.backend, name, revision=options.revision, **extra)
