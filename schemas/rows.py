"""Typed rows: the records stages pass around, parsed once where data enters.

On disk (parquet, schemas/records/*.json) per-tool shapes are JSON strings: a call's arguments,
an observation. In code, a trial is a `TrialRecord` whose steps hold a parsed `Observation` and
a `Call`, so no stage parses an observation's JSON again (`TrialRecord.from_row` does it once,
`to_row` writes the stored form back). SFT and preference rows are built as `SftRow` and
`PreferenceRow` and written with `to_row()`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from imaginarium.hygiene import neutral_messages

Status = Literal["ok", "error"]
Source = Literal["real", "cached", "simulated"]
Action = Literal["call", "final_answer", "invalid", "ask", "user"]


_OPTIONAL_OBSERVATION_KEYS = ("structured", "schema_error")


@dataclass
class Observation:
    """The result of one call, as the model sees it.

    `source` is `real` (a live executor ran now), `cached` (a real response replayed from the
    cache) or `simulated` (written by an LLM, now or earlier); None when nothing ran (the
    arguments were invalid, the tool is unknown, or replay found no cached response).
    """

    content: str
    status: Status
    source: Source | None
    latency_ms: float = 0.0
    error_kind: str | None = None
    truncated: bool = False
    untrusted: bool = False
    # MCP tools: the result's structuredContent, and why it does not match the tool's
    # outputSchema (flagged, not fatal). Absent from the stored form when None.
    structured: Any = None
    schema_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in _OPTIONAL_OBSERVATION_KEYS:
            if data[key] is None:
                del data[key]
        return data

    @classmethod
    def from_json(cls, text: str) -> Observation:
        """An observation from its stored JSON text (unknown keys are ignored)."""
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True)
class Call:
    """A call as a trial stores it: the tool's name and its arguments as JSON text."""

    name: str
    arguments: str

    @property
    def args(self) -> Any:
        """The arguments, parsed (an object, normally)."""
        return json.loads(self.arguments) if self.arguments else {}


@dataclass
class Step:
    """One step of a trial: a call with what it returned, the final answer, an invalid output;
    in the scenario kinds (schemas/kinds.py) also a clarifying question (`ask`, its `text`) and a
    simulated user's message (`user`, its `text`). A call with `parallel` was made in the same
    turn as the call before it."""

    thought: str | None
    action: Action
    call: Call | None = None
    observation: Observation | None = None
    parse_error: str | None = None
    text: str | None = None
    parallel: bool = False
    # The observation's JSON text as read, written back unchanged: a row read and rewritten by a
    # later stage keeps its bytes even if it was stored by another version with other keys.
    stored_observation: str | None = field(default=None, repr=False, compare=False)

    @property
    def is_call(self) -> bool:
        return self.action == "call" and self.call is not None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Step:
        call = row.get("call")
        observation = row.get("observation")
        return cls(thought=row.get("thought"), action=row["action"],
                   call=Call(call["name"], call["arguments"]) if call else None,
                   observation=Observation.from_json(observation) if observation else None,
                   parse_error=row.get("parse_error"), stored_observation=observation,
                   text=row.get("text"), parallel=bool(row.get("parallel")))

    def to_row(self) -> dict[str, Any]:
        observation = self.stored_observation
        if observation is None and self.observation is not None:
            observation = json.dumps(self.observation.to_dict(), ensure_ascii=False)
        return {"thought": self.thought, "action": self.action,
                "call": {"name": self.call.name, "arguments": self.call.arguments} if self.call else None,
                "observation": observation, "parse_error": self.parse_error, "text": self.text,
                "parallel": self.parallel or None}


@dataclass
class TrialRecord:
    """One explored trial (schemas/records/episode_trial.json), observations parsed."""

    trial_id: str
    api: str
    episode: int
    slot: int
    query: str
    tools_shown: list[str]
    steps: list[Step]
    final_answer: str | None
    succeeded: bool | None
    reflection: str | None
    model: str
    backend: str
    seed: int
    paraphrase_of: str | None = None
    scores: str | None = None  # JSON text: what later stages said of the trial (the filter's verdicts)
    extra: dict[str, Any] = field(default_factory=dict)  # other columns, carried through unchanged

    @property
    def calls(self) -> list[Step]:
        return [step for step in self.steps if step.is_call]

    @property
    def observations(self) -> list[Observation]:
        return [step.observation for step in self.calls if step.observation is not None]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TrialRecord:
        known = {f.name for f in fields(cls)} - {"steps", "extra"}
        values: dict[str, Any] = {key: row.get(key) for key in known}
        return cls(steps=[Step.from_row(step) for step in row["steps"]],
                   extra={key: value for key, value in row.items() if key not in known and key != "steps"},
                   **values)

    def to_row(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("steps", "extra")}
        return {**row, "steps": [step.to_row() for step in self.steps], **self.extra}


def read_trials(directory: str | Path) -> list[TrialRecord]:
    """The trials of a finished stage directory (explore, filter or augment output), parsed once.

    Raises:
        InputError: not a finished stage directory.
    """
    from imaginarium.stage import read_rows

    return [TrialRecord.from_row(row) for row in read_rows(directory)]


def trial_rows(trials: Iterable[TrialRecord]) -> list[dict[str, Any]]:
    return [trial.to_row() for trial in trials]


@dataclass
class SftRow:
    """One supervised fine-tuning example (schemas/records/sft_row.json)."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    api: str
    origin_trial: str
    paraphrase_of: str | None = None
    source: str | None = None
    scores: str | None = None
    kind: str | None = None  # the scenario kind (schemas/kinds.py); None: single, as STE rows always were

    def to_row(self) -> dict[str, Any]:
        """The stored row; chat control tokens in any text are neutralised (imaginarium/hygiene.py)."""
        return {**asdict(self), "messages": neutral_messages(self.messages)}


@dataclass
class PreferenceRow:
    """One chosen/rejected pair (schemas/records/preference_row.json)."""

    question_id: str
    task: str
    prompt: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    chosen: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    chosen_score: float
    rejected_score: float

    def to_row(self) -> dict[str, Any]:
        """The stored row; chat control tokens in any text are neutralised (imaginarium/hygiene.py)."""
        row = asdict(self)
        for key in ("prompt", "chosen", "rejected"):
            row[key] = neutral_messages(row[key])
        return row
