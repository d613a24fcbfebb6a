"""Constrained decoding for our own batched loop: Outlines compiles, we mask lazily and in bulk.

Outlines' transformers logits processors fill and apply the token mask of every row at every
step, one row at a time, which made constrained generation 1.6x slower than unconstrained at
batch 16 on the tiny model. Here Outlines still does the compiling (its backends turn a JSON
Schema or regex into an outlines_core Index, an llguidance grammar or an xgrammar
CompiledGrammar), and the decoding loop (transformers_backend.py) has every constrained row's matcher write its
allowed tokens into one shared int32 bitmask, which is applied to all rows with one tensor op.

`ConstraintCompiler.compile` is the expensive step (once per distinct constraint): callers cache
its result. A `RowMatcher` follows one sequence.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from imaginarium.models.backend import Constraint

STRUCTURED_BACKENDS = ("llguidance", "outlines_core", "xgrammar")


def constraint_regex(constraint: Constraint) -> str:
    """The regex for a regex or choice constraint (choices escaped and alternated by Outlines)."""
    if constraint.kind == "regex":
        return constraint.value
    from outlines.types.dsl import either, to_regex

    return to_regex(either(*[str(option) for option in constraint.value]))


class RowMatcher:
    """One sequence's grammar state."""

    def fill(self, bitmask, row: int) -> None:
        """Write the tokens allowed next into `bitmask[row]` (int32 bits, token i = bit i)."""
        raise NotImplementedError

    def advance(self, token_id: int) -> bool:
        """Consume a token sampled under this row's mask (never EOS); False if the engine rejects it."""
        raise NotImplementedError


@dataclass
class CompiledConstraint:
    """A constraint compiled for one tokenizer; `new_matcher()` starts a fresh sequence."""

    constraint: Constraint
    new_matcher: Callable[[], RowMatcher]
    compile_seconds: float


class ConstraintCompiler:
    """Compiles constraints with one grammar engine (one module each, below) for one model.

    JSON Schemas are first made enforceable (`imaginarium.schemas.constraints.enforceable`:
    bounded free strings, closed objects), so a small model cannot ramble forever inside a
    string or invent keys, and free numbers get bounds (`bounded_numbers`) where the engine
    enforces them; results are still validated against the caller's original schema.
    JSON is decoded without free whitespace (llguidance, xgrammar; outlines_core's default
    already allows at most one space), which saves tokens and stops whitespace loops.
    """

    def __init__(self, outlines_model, backend_name: str):
        if backend_name not in STRUCTURED_BACKENDS:
            raise ValueError(f"unknown grammar engine {backend_name!r}; choose one of {', '.join(STRUCTURED_BACKENDS)}")
        module = importlib.import_module(f"imaginarium.models.grammars.{backend_name}")
        self.backend_name = backend_name
        self.engine: Engine = module.Engine(outlines_model)

    def mask_vocab_size(self, logits_vocab_size: int) -> int:
        """How many token ids the engine's bitmask covers (models often pad their logits)."""
        return self.engine.mask_vocab_size(logits_vocab_size)

    def compile(self, constraint: Constraint) -> CompiledConstraint:
        import time

        from imaginarium.schemas.constraints import enforceable

        start = time.perf_counter()
        if constraint.kind == "json":
            schema = enforceable(constraint.value)
            if self.engine.enforces_number_bounds:
                schema = bounded_numbers(schema)
            new_matcher = self.engine.compile_json(schema)
        else:
            new_matcher = self.engine.compile_regex(constraint_regex(constraint))
        new_matcher()  # llguidance and xgrammar finish compiling lazily: pay for it here
        return CompiledConstraint(constraint, new_matcher, time.perf_counter() - start)


class Engine(Protocol):
    """What a grammar engine module (llguidance.py, outlines_core.py, xgrammar.py) provides."""

    enforces_number_bounds: bool

    def mask_vocab_size(self, logits_vocab_size: int) -> int: ...

    def compile_json(self, schema: Any) -> Callable[[], RowMatcher]: ...

    def compile_regex(self, regex: str) -> Callable[[], RowMatcher]: ...


def row_pointer(bitmask, row: int) -> int:
    """Address of `bitmask[row]` (a contiguous int32 CPU tensor): no tensor view per row and step."""
    return bitmask.data_ptr() + 4 * row * bitmask.shape[1]


NUMBER_LIMIT = 1e15
_DATA_KEYWORDS = {"enum", "const", "default", "examples"}


def bounded_numbers(schema: Any, limit: float = NUMBER_LIMIT) -> Any:
    """A copy of `schema` whose unbounded `number`s are kept within +-`limit`.

    A JSON grammar allows any exponent, and a small model happily writes 5e-77752170793014479 or
    2E+5541740211: valid JSON text, but out of float range, so the shared check rejects it (no
    tool can take it). Bounding the number makes the engine write plain decimals instead. The
    bound is moderate because llguidance cannot compile float ranges near 1e100 and beyond.
    Like `enforceable`, this only removes values: whatever it accepts, `schema` accepts.
    """
    if isinstance(schema, list):
        return [bounded_numbers(item, limit) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: value if key in _DATA_KEYWORDS else bounded_numbers(value, limit) for key, value in schema.items()}
    types = schema.get("type")
    if types == "number" or (isinstance(types, list) and "number" in types):
        if "minimum" not in schema and "exclusiveMinimum" not in schema:
            result["minimum"] = -limit
        if "maximum" not in schema and "exclusiveMaximum" not in schema:
            result["maximum"] = limit
    return result


def allowed_tokens(matchers: list[RowMatcher | None], rows: list[int], bitmask, vocab_size: int, device=None):
    """bool [len(rows), vocab_size] on `device`: the tokens each of `rows` (all constrained) may take next.

    The rows' matchers write into one shared CPU bitmask, which moves to the logits' device as
    bits and is unpacked there with one tensor op; tokens past the engine's vocabulary (padding
    in the model's logits) are never allowed.
    """
    for i in rows:  # a few microseconds per row; llguidance's thread pool costs more than it saves here
        matcher = matchers[i]
        assert matcher is not None, "only constrained rows are masked"
        matcher.fill(bitmask, i)
    return unpack_bitmask(bitmask[rows].to(device), vocab_size)


def unpack_bitmask(bitmask, vocab_size: int):
    """int32 bitmask [rows, words] -> bool allowed [rows, vocab_size] (token i = bit i % 32 of word i // 32)."""
    import torch

    shifts = torch.arange(32, dtype=torch.int32, device=bitmask.device)
    bits = (bitmask.unsqueeze(-1) >> shifts) & 1
    allowed = bits.reshape(bitmask.shape[0], -1).bool()
    if allowed.shape[1] >= vocab_size:
        return allowed[:, :vocab_size]
    padding = torch.zeros(bitmask.shape[0], vocab_size - allowed.shape[1], dtype=torch.bool, device=bitmask.device)
    return torch.cat([allowed, padding], dim=1)
