"""A prompt-prefix KV cache for the transformers backend.

Why: the STE explorer sends each trial's whole conversation again at every step, and prompts
share long prefixes (the system prompt, the earlier trials of the episode). Recomputing them
costs attention quadratic in the prompt length, which batching does not amortise. vLLM caches
prefixes automatically; this gives the transformers backend the same: after a row is decoded,
the keys and values of its tokens are kept (on CPU, within a byte budget, least recently used
first out), and a later prompt that starts with the same tokens reuses them and computes only
the rest.

Entries are found by the longest common prefix with the new prompt, so a prompt that diverges
from a stored sequence after N tokens still reuses those N.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

_INDEX_TOKENS = 32  # entries are indexed by their first tokens; shorter prefixes are not worth it


@dataclass
class _Entry:
    tokens: torch.Tensor  # (length,) int64
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # per layer (heads, length, dim) keys and values
    nbytes: int


class PrefixCache:
    """Keys and values of token sequences, looked up by longest common prefix."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._index: dict[tuple[int, ...], set[int]] = {}
        self._next_id = 0

    def store(self, tokens: list[int], layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Keep the keys/values (per layer, (heads, len(tokens), dim)) of a token sequence."""
        if len(tokens) < _INDEX_TOKENS or self.max_bytes <= 0:
            return
        layers = [(k.detach().to("cpu", copy=True), v.detach().to("cpu", copy=True)) for k, v in layers]
        nbytes = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in layers)
        if nbytes > self.max_bytes:
            return
        sequence = torch.tensor(tokens, dtype=torch.long)
        for older in list(self._index.get(tuple(tokens[:_INDEX_TOKENS]), ())):  # superseded prefixes go
            stored = self._entries[older].tokens
            if len(stored) <= len(sequence) and torch.equal(stored, sequence[: len(stored)]):
                self._evict(older)
        entry_id, self._next_id = self._next_id, self._next_id + 1
        self._entries[entry_id] = _Entry(sequence, layers, nbytes)
        self._index.setdefault(tuple(tokens[:_INDEX_TOKENS]), set()).add(entry_id)
        self.nbytes += nbytes
        while self.nbytes > self.max_bytes:
            self._evict(next(iter(self._entries)))

    def lookup(self, tokens: list[int], limit: int) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor]] | None]:
        """The longest stored prefix of `tokens`, at most `limit` long: (length, per-layer k/v)."""
        candidates = self._index.get(tuple(tokens[:_INDEX_TOKENS]))
        if not candidates or limit < _INDEX_TOKENS:
            return 0, None
        query = torch.tensor(tokens[:limit], dtype=torch.long)
        best, best_id = 0, None
        for entry_id in candidates:
            stored = self._entries[entry_id].tokens
            width = min(len(stored), len(query))
            differ = (stored[:width] != query[:width]).nonzero()
            common = int(differ[0]) if len(differ) else width
            if common > best:
                best, best_id = common, entry_id
        if best_id is None or best < _INDEX_TOKENS:
            return 0, None
        self._entries.move_to_end(best_id)
        return best, [(k[:, :best], v[:, :best]) for k, v in self._entries[best_id].layers]

    def _evict(self, entry_id: int) -> None:
        entry = self._entries.pop(entry_id)
        key = tuple(entry.tokens[:_INDEX_TOKENS].tolist())
        self._index[key].discard(entry_id)
        if not self._index[key]:
            del self._index[key]
        self.nbytes -= entry.nbytes
