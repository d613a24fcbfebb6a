"""Which tools an example shows: its API, the tools it calls, and the API's nearest neighbours.

Why neighbours: a model trained only with the right tool in view learns to call whatever it is
shown. Showing the tools most similar to the target (by description embedding, as the paper's
test set does) makes it learn to pick the right one among look-alikes.

Rule: the target API and every tool the example calls are always shown; the list is filled up
to `max_tools` with the target's nearest tools by cosine similarity of the embedding of
"source_name: description" (ties: the earlier tool in the tools file first). The order is then
shuffled with a seed derived from `seed` and the example's key (trial id and query), so the
target is not always first and the same inputs give the same order.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from typing import Any

from imaginarium.errors import InputError
from imaginarium.schemas.toolspec import ToolSpec


def tool_entry(tool: ToolSpec) -> dict[str, Any]:
    """A tool in the OpenAI function format with its parameters as JSON text (one Arrow schema)."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": json.dumps(tool.parameters, ensure_ascii=False),
        },
    }


class ToolMenu:
    """Chooses and orders the tools shown with each example."""

    def __init__(self, tools: list[ToolSpec], max_tools: int = 5, model: str | None = None, seed: int = 0,
                 progress: bool = False):
        if max_tools < 1:
            raise ValueError("max_tools must be at least 1")
        self.tools = {tool.name: tool for tool in tools}
        self.order = [tool.name for tool in tools]
        self.max_tools = max_tools
        self.model = model
        self.seed = seed
        self.progress = progress
        self._neighbours: dict[str, list[str]] = {}
        self._entries = {tool.name: tool_entry(tool) for tool in tools}  # shared, never mutated

    def prepare(self, apis: Iterable[str]) -> None:
        """Compute the neighbour lists of `apis` at once (one embedding pass over all tools)."""
        wanted = sorted({api for api in apis if api in self.tools and api not in self._neighbours})
        if not wanted:
            return
        if self.max_tools == 1 or len(self.order) == 1:
            self._neighbours.update({api: [] for api in wanted})
            return
        from imaginarium.embeddings import embed, top_k

        texts = [f"{self.tools[n].source_name}: {self.tools[n].description}" for n in self.order]
        vectors = embed(texts, model=self.model, show_progress=self.progress)
        position = {name: index for index, name in enumerate(self.order)}
        rows = [position[api] for api in wanted]
        indices, _ = top_k(vectors[rows], vectors, k=self.max_tools)
        for api, found in zip(wanted, indices):
            self._neighbours[api] = [self.order[i] for i in found if self.order[i] != api]

    def entries(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """The OpenAI function entries of `names` (unknown names left out), in the given order."""
        return [self._entries[name] for name in names if name in self._entries]

    def shown(self, api: str, called: Iterable[str], key: str) -> list[dict[str, Any]]:
        """The tools shown with one example, as OpenAI function entries, in a seeded order."""
        names = list(dict.fromkeys([api, *called]))
        unknown = [name for name in names if name not in self.tools]
        if unknown:
            raise InputError(f"tool {unknown[0]!r} (used by the trial {key!r}) is not in the tools file")
        self.prepare([api])
        for name in self._neighbours[api]:
            if len(names) >= self.max_tools:
                break
            if name not in names:
                names.append(name)
        random.Random(f"{self.seed}/{key}").shuffle(names)
        return [self._entries[name] for name in names]
