"""The one generation interface every stage uses: `Backend.generate(requests) -> completions`.

A request carries chat messages (or a raw prompt), an optional constraint (a JSON Schema, a
regex or a choice list), sampling settings and a seed. Backends (transformers + Outlines,
vLLM, OpenAI-compatible servers) batch and group requests as they see fit; callers just hand
over everything that is ready.

`generate` returns a flat list: each request contributes `n` completions in a row, each
carrying its `request_index` and `sample_index`. With n=1 (the common case) the list lines up
with the requests.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Literal

ConstraintKind = Literal["json", "regex", "choice"]
FinishReason = Literal["stop", "length", "invalid", "error"]


@dataclass(frozen=True)
class Constraint:
    """What the output must match: a JSON Schema (dict), a regex (str) or a choice (list[str])."""

    kind: ConstraintKind
    value: Any

    @staticmethod
    def json(schema: dict[str, Any]) -> Constraint:
        return Constraint("json", schema)

    @staticmethod
    def regex(pattern: str) -> Constraint:
        return Constraint("regex", pattern)

    @staticmethod
    def choice(options: list[str]) -> Constraint:
        return Constraint("choice", list(options))


@dataclass
class GenerationRequest:
    """One prompt to complete. Exactly one of `messages` (chat) and `prompt` (raw text)."""

    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    constraint: Constraint | None = None
    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] | None = None
    seed: int | None = None
    n: int = 1
    tools: list[dict[str, Any]] | None = None  # OpenAI-format tools, passed to the chat template
    # Whether a later prompt will continue this one (the prompt plus the text generated): a
    # backend with a prefix cache keeps its keys and values only then. A hint; results are equal.
    remember: bool = True

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a request needs exactly one of messages and prompt")
        if self.n < 1:
            raise ValueError("n must be at least 1")


@dataclass
class Completion:
    """One generated text. `value` is the parsed value for a constrained request that validated.

    finish_reason: `stop` (complete), `length` (cut by max_tokens: never valid), `invalid`
    (complete but failed validation against its constraint), `error` (the backend failed).
    """

    text: str
    finish_reason: FinishReason
    value: Any = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens whose keys/values came from a cache (prefix caching)
    request_index: int = 0
    sample_index: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.finish_reason == "stop"


@dataclass
class BackendStats:
    """Counters a stage reports: calls, prompts, tokens and seconds spent inside the backend."""

    calls: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(abc.ABC):
    """A text generator. Subclasses implement `_generate`; `generate` keeps the stats."""

    name: str = "backend"

    def __init__(self, model: str, revision: str | None = None):
        self.model = model
        self.revision = revision
        self.stats = BackendStats()

    def generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        import time

        if not requests:
            return []
        start = time.perf_counter()
        completions = self._generate(requests)
        self.stats.calls += 1
        self.stats.requests += len(requests)
        self.stats.seconds += time.perf_counter() - start
        for completion in completions:
            self.stats.prompt_tokens += completion.prompt_tokens
            self.stats.completion_tokens += completion.completion_tokens
        return completions

    @abc.abstractmethod
    def _generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        """Generate `n` completions per request, flattened in request order."""

    def describe(self) -> dict[str, Any]:
        """What a manifest records about this backend."""
        return {"backend": self.name, "model": self.model, "revision": self.revision}
