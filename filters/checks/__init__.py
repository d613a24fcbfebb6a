"""The filter's checks: each keeps a trial or gives the reason it drops it.

A check is a small class: a `name` (the funnel's step and the `step` column of dropped.parquet),
`from_config(config, backend)` (the check as configured, or None when it is switched off) and
`check(trials) -> [Outcome, ...]` over a batch of trials (the judge batches its model calls; the
others look at one trial at a time). `CHECKS` runs in order and each check sees only the trials
the previous ones kept, so the funnel and dropped.parquet follow from the list alone.

A new check is one module here plus one line in `CHECKS`.

Dedupe is not a check: it compares the survivors with each other, so it runs once, last, over
all of them (filters/filter.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from imaginarium.filters.filter import FilterConfig
    from imaginarium.models.backend import Backend
    from imaginarium.schemas.rows import TrialRecord


@dataclass(frozen=True)
class Outcome:
    """What a check says of one trial: keep it (`reason` None) or drop it for `reason`.

    `record` is kept in the trial's `scores` under the check's name whatever the outcome (the
    judge's verdict, so a kept row still says why it was kept).
    """

    reason: str | None = None
    record: Any = None

    @property
    def kept(self) -> bool:
        return self.reason is None


KEEP = Outcome()


class Check(Protocol):
    name: str

    def check(self, trials: Sequence[TrialRecord]) -> list[Outcome]: ...


class CheckType(Protocol):
    name: str

    def from_config(self, config: FilterConfig, backend: Callable[[], Backend]) -> Check | None: ...


def _checks() -> list[CheckType]:
    from imaginarium.filters.checks.executed import Executed
    from imaginarium.filters.checks.final_answer import FinalAnswer
    from imaginarium.filters.checks.judge import JudgeCheck

    return [
        FinalAnswer,  # the trial finished with a final answer
        Executed,  # at least one call ran without error
        JudgeCheck,  # an LLM judge says yes on the required aspects
    ]


def active_checks(config: FilterConfig, backend: Callable[[], Backend]) -> list[Check]:
    """The checks `config` switches on, in order; `backend()` opens the judge's model when needed."""
    built = (check.from_config(config, backend) for check in _checks())
    return [check for check in built if check is not None]


def check_names() -> list[str]:
    """Every check's name, in the order they run."""
    return [check.name for check in _checks()]
