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

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imaginarium.generators.backend import Constraint

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


def _row_pointer(bitmask, row: int) -> int:
    """Address of `bitmask[row]` (a contiguous int32 CPU tensor): no tensor view per row and step."""
    return bitmask.data_ptr() + 4 * row * bitmask.shape[1]


@dataclass
class CompiledConstraint:
    """A constraint compiled for one tokenizer; `new_matcher()` starts a fresh sequence."""

    constraint: Constraint
    new_matcher: Callable[[], RowMatcher]
    compile_seconds: float


class _OutlinesCoreMatcher(RowMatcher):
    def __init__(self, index):
        from outlines_core import Guide

        self.guide = Guide(index)

    def fill(self, bitmask, row):
        self.guide.write_mask_into(_row_pointer(bitmask, row), bitmask.shape[1], 4)

    def advance(self, token_id):
        try:
            self.guide.advance(token_id=token_id, return_tokens=False)
        except ValueError:
            return False
        return True


class _LLGuidanceMatcher(RowMatcher):
    def __init__(self, matcher):
        self.matcher = matcher

    def fill(self, bitmask, row):
        self.matcher.unsafe_compute_mask_ptr(_row_pointer(bitmask, row), 4 * bitmask.shape[1])

    def advance(self, token_id):
        return bool(self.matcher.consume_token(token_id))


class _XGrammarMatcher(RowMatcher):
    def __init__(self, compiled):
        import xgrammar

        self.matcher = xgrammar.GrammarMatcher(compiled)

    def fill(self, bitmask, row):
        self.matcher.fill_next_token_bitmask(bitmask, row)

    def advance(self, token_id):
        return bool(self.matcher.accept_token(token_id))


class ConstraintCompiler:
    """Compiles constraints with one of Outlines' structured backends for one model.

    JSON Schemas are first made enforceable (`imaginarium.schemas.constraints.enforceable`:
    bounded free strings, closed objects), so a small model cannot ramble forever inside a
    string or invent keys, and free numbers get bounds (`bounded_numbers`) where the engine
    enforces them; results are still validated against the caller's original schema.
    JSON is decoded without free whitespace (llguidance, xgrammar; outlines_core's default
    already allows at most one space), which saves tokens and stops whitespace loops.
    """

    def __init__(self, outlines_model, backend_name: str):
        from outlines.backends import LLGuidanceBackend, OutlinesCoreBackend, XGrammarBackend

        classes = {"llguidance": LLGuidanceBackend, "outlines_core": OutlinesCoreBackend, "xgrammar": XGrammarBackend}
        self.backend_name = backend_name
        engine: Any = classes[backend_name]  # each engine class has its own attributes
        self.backend: Any = engine(outlines_model)
        self.tokenizer_vocab_size = len(outlines_model.hf_tokenizer.get_vocab())  # as Outlines' xgrammar backend

    def mask_vocab_size(self, logits_vocab_size: int) -> int:
        """How many token ids the engine's bitmask covers (models often pad their logits)."""
        if self.backend_name == "llguidance":
            return self.backend.llg_tokenizer.vocab_size
        if self.backend_name == "xgrammar":
            return self.tokenizer_vocab_size
        return logits_vocab_size

    def compile(self, constraint: Constraint) -> CompiledConstraint:
        import time

        start = time.perf_counter()
        if constraint.kind == "json":
            new_matcher = self._compile_json(constraint.value)
        else:
            processor = self.backend.get_regex_logits_processor(constraint_regex(constraint))
            new_matcher = self._matcher_factory(processor)
        new_matcher()  # llguidance and xgrammar finish compiling lazily: pay for it here
        return CompiledConstraint(constraint, new_matcher, time.perf_counter() - start)

    def _compile_json(self, schema: Any) -> Callable[[], RowMatcher]:
        from imaginarium.schemas.constraints import enforceable

        schema = enforceable(schema)
        if self.backend_name != "outlines_core":  # it does not enforce numeric bounds anyway
            schema = bounded_numbers(schema)
        if self.backend_name == "xgrammar":
            compiled = self.backend.grammar_compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
            return lambda: _XGrammarMatcher(compiled)
        if self.backend_name == "llguidance" and isinstance(schema, dict):
            schema = {**schema, "x-guidance": {"whitespace_flexible": False}}
        return self._matcher_factory(self.backend.get_json_schema_logits_processor(json.dumps(schema)))

    def _matcher_factory(self, processor: Any) -> Callable[[], RowMatcher]:
        if self.backend_name == "outlines_core":
            return lambda: _OutlinesCoreMatcher(processor.index)
        if self.backend_name == "llguidance":
            from llguidance import LLMatcher

            _check_llguidance_grammar(processor.llg_tokenizer, processor.grammar)
            template = LLMatcher(processor.llg_tokenizer, processor.grammar)
            return lambda: _LLGuidanceMatcher(template.deep_copy())  # 1 us instead of 200 us
        return lambda: _XGrammarMatcher(processor.compiled_grammar)


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


def _check_llguidance_grammar(tokenizer, grammar) -> None:
    """llguidance reports a bad grammar lazily, per matcher; fail once, at compile time."""
    from llguidance import LLMatcher

    is_error, messages = LLMatcher.validate_grammar_with_warnings(grammar, tokenizer)
    if is_error:
        raise ValueError(f"llguidance cannot compile this constraint: {'; '.join(messages)}")


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
