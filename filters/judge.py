"""The LLM judge of the filter stage: three yes/no aspects, each with a short reason.

STE keeps only the trials a judge accepts. Ours asks one constrained JSON answer per trial,
`{"informative": {"reason", "verdict"}, "faithful": {...}, "appropriate": {...}}` (the reason
comes first so the verdict can follow from it), and batches every trial into one backend call.
"""

from __future__ import annotations

import json
from typing import Any

from imaginarium.generators.backend import Backend, Constraint, GenerationRequest
from imaginarium.generators.prompts import Prompts

ASPECTS = ("informative", "faithful", "appropriate")
MAX_REASON_CHARS = 120
MAX_RESULT_CHARS = 600  # of each observation shown to the judge


def judge_schema(max_reason_chars: int = MAX_REASON_CHARS) -> dict[str, Any]:
    aspect = {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "minLength": 1, "maxLength": max_reason_chars},
            "verdict": {"type": "string", "enum": ["yes", "no"]},
        },
        "required": ["reason", "verdict"],
        "additionalProperties": False,
    }
    return {"type": "object", "properties": dict.fromkeys(ASPECTS, aspect), "required": list(ASPECTS),
            "additionalProperties": False}


def episode_steps(trial: dict[str, Any]) -> list[dict[str, str]]:
    """The calls of a trial with what each returned, as the judge sees them."""
    steps = []
    for step in trial["steps"]:
        if step["action"] != "call":
            continue
        observation = json.loads(step["observation"]) if step["observation"] else None
        result = "(not shown)" if observation is None else f"[{observation['status']}] {observation['content']}"
        if len(result) > MAX_RESULT_CHARS:
            result = result[:MAX_RESULT_CHARS] + " ..."
        steps.append({"name": step["call"]["name"], "arguments": step["call"]["arguments"], "result": result})
    return steps


class Judge:
    """Judges trials in batches with one backend; verdicts are `{aspect: {reason, verdict}}`."""

    def __init__(self, backend: Backend, *, seed: int = 0, max_tokens: int = 768, templates: str | None = None):
        self.backend = backend
        self.seed = seed
        self.max_tokens = max_tokens
        self.prompts = Prompts("judge", templates)
        self.constraint = Constraint.json(judge_schema())

    def request(self, trial: dict[str, Any]) -> GenerationRequest:
        episode = self.prompts.render("episode", query=trial["query"], steps=episode_steps(trial),
                                      final_answer=trial["final_answer"] or "")
        return GenerationRequest(
            messages=[{"role": "system", "content": self.prompts.render("system")}, {"role": "user", "content": episode}],
            constraint=self.constraint, max_tokens=self.max_tokens, temperature=0.0, seed=self.seed,
        )

    def judge(self, trials: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        """One verdict per trial; None where the judge produced no valid answer."""
        completions = self.backend.generate([self.request(t) for t in trials])
        return [c.value if c.ok else None for c in completions]
