"""`make_backend(name, model)`: the one place that turns a backend name into a Backend.

Backends are imported lazily, so choosing `openai` never imports torch and choosing
`transformers` never imports vLLM. Model names are resolved by `resolve_model`: the embedded
default model and the embedded tiny model have short names.
"""

from __future__ import annotations

import importlib
from typing import Any

from imaginarium.errors import InputError
from imaginarium.models.backend import Backend

BACKENDS = {
    "transformers": "imaginarium.models.transformers:TransformersBackend",
    "vllm": "imaginarium.models.vllm:VLLMBackend",
    "openai": "imaginarium.models.openai:OpenAIBackend",
}


def resolve_model(model: str) -> str:
    """A model name -> what transformers or vLLM loads.

    `tiny` / `tiny:SEED`: the embedded tiny model, built on the fly; an embedded model's alias
    (`smollm2-135m`, the default): its converted directory, converted on first use (see
    default_model.py); anything else (an HF id, a local path) is unchanged.
    """
    from imaginarium.models.default import ensure_model, is_embedded

    if is_embedded(model):
        return str(ensure_model(model))
    if model == "tiny" or model.startswith("tiny:"):
        from imaginarium.models.tiny import tiny_model_path

        seed_text = model.partition(":")[2] or "0"
        if not seed_text.isdigit():
            raise InputError(f"model {model!r}: the tiny model's seed must be a non-negative integer", where="model")
        return str(tiny_model_path(int(seed_text)))
    return model


def make_backend(name: str, model: str, *, revision: str | None = None, **options: Any) -> Backend:
    """Create backend `name` (transformers | vllm | openai) for `model` with backend-specific options."""
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}", where="backend")
    module_name, class_name = BACKENDS[name].split(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    resolved = resolve_model(model) if name == "vllm" else model  # transformers resolves it itself
    return backend_class(resolved, revision=revision, **options)
