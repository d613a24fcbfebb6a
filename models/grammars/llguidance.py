"""llguidance: the default grammar engine (it enforces the most: numeric bounds, lengths, patterns).

A matcher per sequence is a deep copy of a template compiled once (1 us instead of 200 us), and
a bad grammar is reported once at compile time (llguidance reports it lazily, per matcher).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imaginarium.models.grammars import RowMatcher, row_pointer


class Matcher(RowMatcher):
    def __init__(self, matcher):
        self.matcher = matcher

    def fill(self, bitmask, row):
        self.matcher.unsafe_compute_mask_ptr(row_pointer(bitmask, row), 4 * bitmask.shape[1])

    def advance(self, token_id):
        return bool(self.matcher.consume_token(token_id))


class Engine:
    enforces_number_bounds = True

    def __init__(self, outlines_model):
        from outlines.backends import LLGuidanceBackend

        self.backend: Any = LLGuidanceBackend(outlines_model)

    def mask_vocab_size(self, logits_vocab_size: int) -> int:
        return self.backend.llg_tokenizer.vocab_size

    def compile_json(self, schema: Any) -> Callable[[], RowMatcher]:
        import json

        if isinstance(schema, dict):
            schema = {**schema, "x-guidance": {"whitespace_flexible": False}}
        return self._factory(self.backend.get_json_schema_logits_processor(json.dumps(schema)))

    def compile_regex(self, regex: str) -> Callable[[], RowMatcher]:
        return self._factory(self.backend.get_regex_logits_processor(regex))

    def _factory(self, processor: Any) -> Callable[[], RowMatcher]:
        from llguidance import LLMatcher

        is_error, messages = LLMatcher.validate_grammar_with_warnings(processor.grammar, processor.llg_tokenizer)
        if is_error:
            raise ValueError(f"llguidance cannot compile this constraint: {'; '.join(messages)}")
        template = LLMatcher(processor.llg_tokenizer, processor.grammar)
        return lambda: Matcher(template.deep_copy())
