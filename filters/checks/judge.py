"""Check `judge`: an LLM judge says yes on the required aspects (informative, faithful, appropriate).

STE keeps only the trials a judge accepts. Ours asks one constrained JSON answer per trial,
`{"informative": {"reason", "verdict"}, "faithful": {...}, "appropriate": {...}}` (the reason
comes first so the verdict can follow from it), and batches every trial into one backend call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imaginarium.filters.checks import Outcome
from imaginarium.models.backend import Backend, Constraint, GenerationRequest
from imaginarium.prompts import Prompts
from imaginarium.schemas.kinds import kind_of

if TYPE_CHECKING:
    from imaginarium.filters.filter import FilterConfig
    from imaginarium.schemas.rows import TrialRecord

ASPECTS = ("informative", "faithful", "appropriate")
MAX_REASON_CHARS = 120
MAX_RESULT_CHARS = 600  # of each observation shown to the judge
TEMPLATES = Path(__file__).parent.parent / "templates"  # judge/system.j2, judge/episode.j2


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


def episode_steps(trial: TrialRecord) -> list[dict[str, Any]]:
    """The calls of a trial with what each returned, as the judge sees them; in the scenario
    kinds also the assistant's clarifying questions and the simulated user's messages."""
    steps: list[dict[str, Any]] = []
    number = 0
    for step in trial.steps:
        if step.action == "user":
            steps.append({"user": step.text or ""})
        elif step.action == "ask":
            steps.append({"ask": step.text or ""})
        elif step.is_call:
            assert step.call is not None
            observation = step.observation
            result = "(not shown)" if observation is None else f"[{observation.status}] {observation.content}"
            if len(result) > MAX_RESULT_CHARS:
                result = result[:MAX_RESULT_CHARS] + " ..."
            number += 1
            steps.append({"number": number, "name": step.call.name, "arguments": step.call.arguments, "result": result})
    return steps


# What the judge is told each scenario kind should show (schemas/kinds.py); STE trials: nothing.
EXPECTATIONS = {
    "parallel": "the request needs several calls at once; they are made together and the answer uses each result.",
    "multiple": "several tools are offered; the right one is chosen for the request.",
    "irrelevant": "no offered tool can serve the request; the right behaviour is to make no call and say so.",
    "clarify": "the request leaves out a value the tool needs; the assistant asks for it, then calls with the user's value.",
    "multi_turn": "after the first answer the user asks a follow-up that needs another call building on the first result.",
}


def judge_problem(verdict: dict[str, Any] | None, require: Sequence[str]) -> str | None:
    """Why the judge's verdict fails, or None when every required aspect is yes."""
    if verdict is None:
        return "the judge gave no valid verdict"
    failed = [a for a in require if verdict[a]["verdict"] != "yes"]
    if not failed:
        return None
    return "; ".join(f"not {a}: {verdict[a]['reason']}" for a in failed)


class Judge:
    """Judges trials in batches with one backend; verdicts are `{aspect: {reason, verdict}}`."""

    def __init__(self, backend: Backend | Callable[[], Backend], *, seed: int = 0, max_tokens: int = 768,
                 templates: str | None = None):
        self._backend = backend  # or the function that opens it, on the first verdict asked
        self.seed = seed
        self.max_tokens = max_tokens
        self.prompts = Prompts(TEMPLATES, "judge", templates)
        self.constraint = Constraint.json(judge_schema())

    @property
    def backend(self) -> Backend:
        if not isinstance(self._backend, Backend):
            self._backend = self._backend()
        return self._backend

    def request(self, trial: TrialRecord) -> GenerationRequest:
        episode = self.prompts.render("episode", query=trial.query, steps=episode_steps(trial),
                                      final_answer=trial.final_answer or "",
                                      expectation=EXPECTATIONS.get(kind_of(trial), ""))
        return GenerationRequest(
            messages=[{"role": "system", "content": self.prompts.render("system")}, {"role": "user", "content": episode}],
            constraint=self.constraint, max_tokens=self.max_tokens, temperature=0.0, seed=self.seed,
        )

    def judge(self, trials: Sequence[TrialRecord]) -> list[dict[str, Any] | None]:
        """One verdict per trial; None where the judge produced no valid answer."""
        completions = self.backend.generate([self.request(t) for t in trials])
        return [c.value if c.ok else None for c in completions]


class JudgeCheck:
    """The check: the judge's verdict is kept in `scores` (kept or not); dropped unless every required aspect is yes."""

    name = "judge"

    def __init__(self, judge: Judge, require: Sequence[str]):
        self.judge = judge
        self.require = list(require)

    @classmethod
    def from_config(cls, config: FilterConfig, backend: Callable[[], Backend]) -> JudgeCheck | None:
        if not config.judge:
            return None
        judge = Judge(backend, seed=config.generation.seed, max_tokens=config.generation.max_tokens,
                      templates=str(config.templates) if config.templates else None)
        return cls(judge, config.require)

    def check(self, trials: Sequence[TrialRecord]) -> list[Outcome]:
        verdicts = self.judge.judge(trials) if trials else []
        return [Outcome(judge_problem(verdict, self.require), verdict) for verdict in verdicts]
