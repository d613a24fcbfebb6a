"""Is a predicted call's arguments correct? String and AST matching (schemas/matching.py), and
the LLM judge: `judge_matches` asks a model, constrained to `{"correct": "yes"|"no", "reason":
...}`; the reason is kept per item. Each returns `MatchResult(correct, reason, method)`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imaginarium.schemas.matching import MatchResult

TEMPLATES = Path(__file__).parent / "templates"
JUDGE_REASON_MAX = 120
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "correct": {"type": "string", "enum": ["yes", "no"]},
        "reason": {"type": "string", "maxLength": JUDGE_REASON_MAX},
    },
    "required": ["correct", "reason"],
    "additionalProperties": False,
}


# -- LLM judge ----------------------------------------------------------------------------------
@dataclass
class JudgeCase:
    """What the judge sees: the query, the API, its description, gold and predicted arguments."""

    query: str
    api: str
    description: str
    gold: dict[str, Any]
    pred: dict[str, Any] | None


@functools.lru_cache(maxsize=1)
def _judge_template():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, autoescape=False,
    )
    return env.get_template("judge_args.jinja")


def judge_prompt(case: JudgeCase) -> list[dict[str, str]]:
    """The chat messages for one judgment (the template is evaluation/templates/judge_args.jinja)."""
    text = _judge_template().render(
        query=case.query, api=case.api, description=case.description,
        gold=json.dumps(case.gold, ensure_ascii=False, sort_keys=True),
        pred=json.dumps(case.pred, ensure_ascii=False, sort_keys=True),
    )
    system, _, user = text.partition("\n---\n")
    return [{"role": "system", "content": system.strip()}, {"role": "user", "content": user.strip()}]


def judge_matches(
    cases: Sequence[JudgeCase], backend, *, max_tokens: int = 256, seed: int = 0
) -> list[MatchResult]:
    """Ask `backend` (a generators Backend) to judge each case; one batch for all of them.

    Output is constrained to JUDGE_SCHEMA. An output that still fails (cut by max_tokens, a
    backend error) counts as incorrect, and the reason says why.
    """
    from imaginarium.models.backend import Constraint, GenerationRequest

    requests = [
        GenerationRequest(
            messages=judge_prompt(case), constraint=Constraint.json(JUDGE_SCHEMA),
            max_tokens=max_tokens, temperature=0.0, seed=seed,
        )
        for case in cases
    ]
    results = []
    for completion in backend.generate(requests):
        if completion.ok and isinstance(completion.value, dict):
            verdict = completion.value
            results.append(MatchResult(verdict["correct"] == "yes", verdict["reason"], "judge"))
        else:
            why = completion.error or completion.finish_reason
            results.append(MatchResult(False, f"judge gave no valid verdict ({why})", "judge"))
    return results
