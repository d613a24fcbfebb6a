"""Generation defaults, chosen in one place; recipes override them.

The commands take their `--backend`, `--model` and `--structured-backend` defaults from here; a
recipe's `generation:` block may set any of these fields for every stage (the runner refuses
other keys), and a stage's own `with:` wins.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_BACKEND = "transformers"
# SmolLM2-135M-Instruct, embedded offline (generators/default_model.py): a real instruction-tuned
# model that runs on a CPU. `tiny` (a random-weight model, text meaningless) is for fast tests.
DEFAULT_MODEL = "smollm2-135m"
# llguidance: enforces integer/number bounds, string lengths, patterns and enums (outlines_core
# ignores numeric bounds), compiles a schema in milliseconds, and fills a batch's token masks in
# parallel. See docs/generation.md for the measurements behind this choice.
DEFAULT_STRUCTURED_BACKEND = "llguidance"


@dataclass(frozen=True)
class GenerationDefaults:
    """Which engine and model generate, and how they sample unless a request says otherwise."""

    backend: str = DEFAULT_BACKEND
    model: str = DEFAULT_MODEL
    revision: str | None = None
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 512
    seed: int = 0
    structured_backend: str = DEFAULT_STRUCTURED_BACKEND
