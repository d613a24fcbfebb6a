"""A prompt-prefix KV cache for the transformers backend.

Why: the STE explorer sends each trial's whole conversation again at every step, and prompts
share long prefixes (the system prompt, the earlier trials of the episode). Recomputing them
costs attention quadratic in the prompt length, which batching does not amortise. vLLM caches
prefixes automatically; this gives the transformers backend the same: after a row is decoded,
the keys and values of its tokens are kept (on CPU, within a byte budget, least recently used
first out), and a later prompt that starts with the same tokens reuses them and computes only
the rest.

Entries are found by the longest common prefix with the new prompt, so a prompt that diverges
from a stored sequence after N tokens still reuses those N. Like vLLM's prefix caching, the
index is a chain of block keys (block k's key hashes block k and the key of block k-1), so a
lookup costs one dict probe per block of the prompt, however many entries share its start;
the common prefix is then counted token by token, so a hash collision can only shorten a match.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

_BLOCK = 32  # tokens per index block; a shorter shared prefix is not worth reusing


def _block_keys(tokens: list[int]) -> list[int]:
    """One key per full block of `tokens`; key k stands for tokens[: (k + 1) * _BLOCK]."""
    keys, key = [], 0
    for start in range(0, len(tokens) - _BLOCK + 1, _BLOCK):
        key = hash((key, tuple(tokens[start : start + _BLOCK])))
        keys.append(key)
    return keys


@dataclass
class _Entry:
    tokens: torch.Tensor  # (length,) int64
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # per layer (heads, length, dim) keys and values
    nbytes: int
    keys: list[int]  # its block keys


class PrefixCache:
    """Keys and values of token sequences, looked up by longest common prefix."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._by_block: dict[int, set[int]] = {}  # block key -> entries that contain that prefix
        self._by_last_block: dict[int, set[int]] = {}  # an entry's last block key -> entries
        self._next_id = 0

    def store(self, tokens: list[int], layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Keep the keys/values (per layer, (heads, len(tokens), dim)) of a token sequence.

        The cache keeps the given tensors (moved to the CPU, not copied there): the caller must
        not modify them afterwards.
        """
        if len(tokens) < _BLOCK or self.max_bytes <= 0:
            return
        layers = [(k.detach().to("cpu"), v.detach().to("cpu")) for k, v in layers]
        nbytes = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in layers)
        if nbytes > self.max_bytes:
            return
        sequence = torch.tensor(tokens, dtype=torch.long)
        keys = _block_keys(tokens)
        for key in keys:  # stored prefixes of this sequence are superseded by it
            for older in list(self._by_last_block.get(key, ())):
                stored = self._entries[older].tokens
                if len(stored) <= len(sequence) and torch.equal(stored, sequence[: len(stored)]):
                    self._evict(older)
        entry_id, self._next_id = self._next_id, self._next_id + 1
        self._entries[entry_id] = _Entry(sequence, layers, nbytes, keys)
        for key in keys:
            self._by_block.setdefault(key, set()).add(entry_id)
        self._by_last_block.setdefault(keys[-1], set()).add(entry_id)
        self.nbytes += nbytes
        while self.nbytes > self.max_bytes:
            self._evict(next(iter(self._entries)))

    def lookup(self, tokens: list[int], limit: int) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor]] | None]:
        """The longest stored prefix of `tokens`, at most `limit` long: (length, per-layer k/v)."""
        candidates: set[int] = set()
        for key in _block_keys(tokens[:limit]):  # the entries that share the most blocks
            found = self._by_block.get(key)
            if not found:
                break
            candidates = found
        if not candidates:
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
        if best_id is None or best < _BLOCK:
            return 0, None
        self._entries.move_to_end(best_id)
        return best, [(k[:, :best], v[:, :best]) for k, v in self._entries[best_id].layers]

    def _evict(self, entry_id: int) -> None:
        entry = self._entries.pop(entry_id)
        for key in entry.keys:
            self._by_block[key].discard(entry_id)
            if not self._by_block[key]:
                del self._by_block[key]
        last = self._by_last_block[entry.keys[-1]]
        last.discard(entry_id)
        if not last:
            del self._by_last_block[entry.keys[-1]]
        self.nbytes -= entry.nbytes
