"""Generation defaults, chosen in one place; recipes override them per stage.

`GenerationDefaults()` is what a stage uses when its recipe says nothing; `with_overrides`
applies a recipe's per-stage `generation:` mapping on top (unknown keys are an input error,
so a typo in a recipe is caught instead of silently ignored).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from imaginarium.errors import InputError

DEFAULT_BACKEND = "transformers"
DEFAULT_MODEL = "tiny"  # the embedded tiny model: runs anywhere, text meaningless, constraints valid
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

    def with_overrides(self, overrides: dict[str, Any] | None, *, where: str | None = None) -> "GenerationDefaults":
        """A copy with `overrides` applied (e.g. a recipe stage's `generation:` block)."""
        if not overrides:
            return self
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InputError(f"unknown generation setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}", where=where)
        return dataclasses.replace(self, **overrides)

    def backend_options(self) -> dict[str, Any]:
        """Keyword options for `make_backend` that this backend understands."""
        if self.backend == "transformers":
            return {"structured_backend": self.structured_backend}
        return {}
