"""Check `final_answer`: the trial finished with a final answer (a trial out of turns did not)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from imaginarium.filters.checks import KEEP, Outcome

if TYPE_CHECKING:
    from imaginarium.filters.filter import FilterConfig
    from imaginarium.models.backend import Backend
    from imaginarium.schemas.rows import TrialRecord


class FinalAnswer:
    name = "final_answer"

    @classmethod
    def from_config(cls, config: FilterConfig, backend: Callable[[], Backend]) -> FinalAnswer:
        return cls()

    def check(self, trials: Sequence[TrialRecord]) -> list[Outcome]:
        return [KEEP if trial.final_answer is not None else Outcome("no final answer") for trial in trials]
