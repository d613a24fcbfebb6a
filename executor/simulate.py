"""Simulated tool responses: on a cache miss in `simulate` mode, an LLM writes a plausible one.

Why: a tool that is down, paywalled or retired should not stop exploration. The simulated
response is conditioned on the tool's documentation and on up to k real cached responses of the
same tool (so it keeps their shape and style), constrained to the tool's `returns` schema when
it is known (then it is valid JSON of that shape by construction), and stored with
source=simulated so it can never pass for a real one.

The LLM is any `Backend` (models/backend.py); all misses of a batch are one `generate` call.
Each request's seed is derived from the run seed and the call, so a re-run simulates the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2

from imaginarium.executor.cache import CacheEntry
from imaginarium.executor.observation import Response
from imaginarium.jsonutil import canonical_json, content_hash
from imaginarium.models.backend import Backend, Constraint, GenerationRequest
from imaginarium.schemas.toolspec import ToolSpec, tool_doc

_TEMPLATE = Path(__file__).parent / "templates" / "simulate.j2"
_USER_MARK = "=== user ==="
_EXAMPLE_CHARS = 1500  # an example response longer than this is cut in the prompt


SIMULATED_STRING_CHARS = 120  # longest free string in a simulated response
SIMULATED_ARRAY_ITEMS = 5     # most items of an unbounded array in a simulated response


class Simulator:
    """Writes tool responses with an LLM backend (see the module docstring)."""

    def __init__(
        self,
        backend: Backend,
        *,
        examples_k: int = 3,
        max_tokens: int = 512,
        temperature: float = 0.7,
        seed: int = 0,
        template: str | Path | None = None,
    ):
        self.backend = backend
        self.examples_k = examples_k
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        source = Path(template or _TEMPLATE).read_text(encoding="utf-8")
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self.template = env.from_string(source)

    def request(self, tool: ToolSpec, arguments: dict[str, Any], examples: list[CacheEntry]) -> GenerationRequest:
        """The generation request for one call."""
        text = self.template.render(
            tool_doc=tool_doc(tool),
            returns=json.dumps(tool.returns, ensure_ascii=False) if tool.returns else "",
            examples=[{"arguments": canonical_json(e.arguments), "response": e.response[:_EXAMPLE_CHARS]}
                      for e in examples[: self.examples_k]],
            arguments=canonical_json(arguments),
        )
        system, _, user = text.partition(_USER_MARK)
        seed = (self.seed * 1_000_003 + int(content_hash([tool.name, arguments])[:8], 16)) % 2**31
        return GenerationRequest(
            messages=[{"role": "system", "content": system.strip()}, {"role": "user", "content": user.strip()}],
            constraint=_returns_constraint(tool),
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            seed=seed,
        )

    def simulate(self, items: list[tuple[ToolSpec, dict[str, Any], list[CacheEntry]]]) -> list[Response]:
        """One response per (tool, arguments, examples), in order; a failed generation is an error."""
        requests = [self.request(tool, arguments, examples) for tool, arguments, examples in items]
        completions = self.backend.generate(requests)
        responses = []
        for request, completion in zip(requests, completions):
            if request.constraint is not None and completion.ok and completion.value is not None:
                responses.append(Response(json.dumps(completion.value, ensure_ascii=False), "ok",
                                          content_type="application/json"))
            elif request.constraint is None and completion.finish_reason in ("stop", "length"):
                responses.append(Response(completion.text.strip(), "ok"))
            else:
                why = completion.error or f"finish reason {completion.finish_reason}"
                responses.append(Response(f"the simulator could not write a response ({why})", "error",
                                          "simulation_failed"))
        return responses


def _returns_constraint(tool: ToolSpec) -> Constraint | None:
    """The tool's returns schema, in the form the constrained decoder enforces; None if unknown."""
    if tool.returns is None:
        return None
    from imaginarium.schemas.constraints import enforceable

    # bounded strings and arrays: a small model otherwise lists items until max_tokens cuts it
    return Constraint.json(enforceable(tool.returns, max_string_length=SIMULATED_STRING_CHARS,
                                       max_array_items=SIMULATED_ARRAY_ITEMS))
