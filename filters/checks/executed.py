"""Check `executed`: at least one of the trial's calls ran without error (for the scenario
kinds beyond STE: what the kind's rule asks, schemas/kinds.py).

Whether a call answered by a simulated response counts is the `simulated_ok` setting: off, a
trial whose only successes were simulated is dropped (training only on what real tools said).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from imaginarium.filters.checks import KEEP, Outcome
from imaginarium.schemas.kinds import kind_of, kind_problem

if TYPE_CHECKING:
    from imaginarium.filters.filter import FilterConfig
    from imaginarium.models.backend import Backend
    from imaginarium.schemas.rows import TrialRecord


def execution_problem(trial: TrialRecord, simulated_ok: bool) -> str | None:
    """Why a trial fails the check, or None when one of its calls ran without error. A trial of
    another scenario kind is held to its kind's rule instead (schemas/kinds.py: an irrelevant
    trial must make no call, a parallel one two that ran, ...)."""
    if kind_of(trial) != "single":
        return kind_problem(trial, simulated_ok)
    if not trial.calls:
        return "made no tool call"
    observations = trial.observations
    if not observations:
        return "no call was executed (observations withheld)"
    good = [o for o in observations if o.ok]
    if not good:
        kinds = Counter(o.error_kind or "error" for o in observations)
        return "every call failed (" + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items())) + ")"
    if not simulated_ok and all(o.source == "simulated" for o in good):
        return "only simulated responses succeeded"
    return None


class Executed:
    name = "executed"

    def __init__(self, simulated_ok: bool = True):
        self.simulated_ok = simulated_ok

    @classmethod
    def from_config(cls, config: FilterConfig, backend: Callable[[], Backend]) -> Executed:
        return cls(config.simulated_ok)

    def check(self, trials: Sequence[TrialRecord]) -> list[Outcome]:
        outcomes = []
        for trial in trials:
            problem = execution_problem(trial, self.simulated_ok)
            outcomes.append(KEEP if problem is None else Outcome(problem))
        return outcomes
