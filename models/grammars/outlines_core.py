"""outlines_core: Outlines' own index-based engine (it does not enforce numeric bounds)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imaginarium.models.grammars import RowMatcher, row_pointer


class Matcher(RowMatcher):
    def __init__(self, index):
        from outlines_core import Guide

        self.guide = Guide(index)

    def fill(self, bitmask, row):
        self.guide.write_mask_into(row_pointer(bitmask, row), bitmask.shape[1], 4)

    def advance(self, token_id):
        try:
            self.guide.advance(token_id=token_id, return_tokens=False)
        except ValueError:
            return False
        return True


class Engine:
    enforces_number_bounds = False

    def __init__(self, outlines_model):
        from outlines.backends import OutlinesCoreBackend

        self.backend: Any = OutlinesCoreBackend(outlines_model)

    def mask_vocab_size(self, logits_vocab_size: int) -> int:
        return logits_vocab_size

    def compile_json(self, schema: Any) -> Callable[[], RowMatcher]:
        import json

        processor = self.backend.get_json_schema_logits_processor(json.dumps(schema))
        return lambda: Matcher(processor.index)

    def compile_regex(self, regex: str) -> Callable[[], RowMatcher]:
        processor = self.backend.get_regex_logits_processor(regex)
        return lambda: Matcher(processor.index)
