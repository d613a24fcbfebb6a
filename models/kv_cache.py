"""A key/value cache for the transformers backend that appends in place.

Why: transformers' DynamicLayer concatenates at every decode step, which copies the whole cache
each time; with long prompts on a CPU that copy costs about as much as the step's attention.
This layer keeps spare room after the cached positions and writes each step's keys and values
into it, reallocating (with the same room to spare again) only when the room runs out. The
model sees views of the filled part, exactly what DynamicLayer would have returned.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer


class AppendLayer(DynamicLayer):
    """One layer's keys and values in a buffer with `room` free positions at the end."""

    def __init__(self, room: int):
        super().__init__()
        self.room = room
        self.length = 0
        self._keys: torch.Tensor | None = None
        self._values: torch.Tensor | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        keys, values = self._keys, self._values
        if keys is None or values is None or end > keys.shape[-2]:
            keys, values = self._grown(keys, key_states, end), self._grown(values, value_states, end)
        keys[..., self.length : end, :] = key_states
        values[..., self.length : end, :] = value_states
        self._keys, self._values, self.length = keys, values, end
        self._expose()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self._keys is not None and self._values is not None:
            self._keys, self._values = self._keys[indices], self._values[indices]
            self._expose()

    def _grown(self, buffer: torch.Tensor | None, states: torch.Tensor, end: int) -> torch.Tensor:
        grown = states.new_empty((*states.shape[:-2], end + self.room, states.shape[-1]))
        if buffer is not None:
            grown[..., : self.length, :] = buffer[..., : self.length, :]
        return grown

    def _expose(self) -> None:
        assert self._keys is not None and self._values is not None
        self.keys = self._keys[..., : self.length, :]
        self.values = self._values[..., : self.length, :]


def append_cache(num_layers: int, room: int, prefix: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> Cache:
    """A cache of `num_layers` AppendLayers with `room` spare positions, holding `prefix` if given."""
    cache = Cache(layers=[AppendLayer(room) for _ in range(num_layers)])
    for layer, (keys, values) in zip(cache.layers, prefix or []):
        assert isinstance(layer, AppendLayer)
        layer.update(keys, values)
    return cache
