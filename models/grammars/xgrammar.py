"""xgrammar: a selectable engine (with the tiny model's byte-level tokenizer it let control
characters into JSON strings: docs/generation.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imaginarium.models.grammars import RowMatcher


class Matcher(RowMatcher):
    def __init__(self, compiled):
        import xgrammar

        self.matcher = xgrammar.GrammarMatcher(compiled)

    def fill(self, bitmask, row):
        self.matcher.fill_next_token_bitmask(bitmask, row)

    def advance(self, token_id):
        return bool(self.matcher.accept_token(token_id))


class Engine:
    enforces_number_bounds = True

    def __init__(self, outlines_model):
        from outlines.backends import XGrammarBackend

        self.backend: Any = XGrammarBackend(outlines_model)
        self.vocab_size = len(outlines_model.hf_tokenizer.get_vocab())  # as Outlines' xgrammar backend

    def mask_vocab_size(self, logits_vocab_size: int) -> int:
        return self.vocab_size

    def compile_json(self, schema: Any) -> Callable[[], RowMatcher]:
        import json

        compiled = self.backend.grammar_compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
        return lambda: Matcher(compiled)

    def compile_regex(self, regex: str) -> Callable[[], RowMatcher]:
        processor = self.backend.get_regex_logits_processor(regex)
        return lambda: Matcher(processor.compiled_grammar)
