"""The filter stage: keep the trials worth training on, and say why each other one went.

Steps, in order (each one sees only what the previous kept): the checks of filters/checks/
(`final_answer`: the trial finished with a final answer; `executed`: at least one call executed
without error, where whether a simulated response counts is the `simulated_ok` setting; `judge`:
an LLM judge says yes on the required aspects, by default all three), then `dedupe`: exact and
semantic duplicates of another kept query of the same API are dropped (the kept row of a
cluster: a successful trial first, then the earliest trial id).

Every dropped row keeps its reason (in `dropped.parquet` beside the data); the funnel (rows in
and out per step, overall and per API) is written as `funnel.json` and printed.

The judge is the slow part: trials are judged in batches, each batch appended durably, so an
interrupted run resumes without judging a trial twice.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, field_validator

from imaginarium.card_facts import CardFacts
from imaginarium.engine import EngineOptions, RayEngine, open_engine
from imaginarium.filters.checks import Check, active_checks
from imaginarium.filters.checks.judge import JudgeCheck
from imaginarium.filters.dedupe import DEFAULT_THRESHOLD, DedupeOptions
from imaginarium.models.backend import Backend
from imaginarium.models.options import GenerationOptions, open_backend
from imaginarium.options import Options, comma_list
from imaginarium.progress import batches
from imaginarium.schemas.records import arrow_schema
from imaginarium.schemas.rows import TrialRecord
from imaginarium.stage import StageWriter

_DROPPED_SCHEMA = pa.schema([("trial_id", pa.string()), ("api", pa.string()), ("step", pa.string()),
                             ("reason", pa.string())])


Aspect = Literal["informative", "faithful", "appropriate"]


def _all_aspects() -> list[Aspect]:
    return ["informative", "faithful", "appropriate"]


def _judge_generation() -> GenerationOptions:
    # The judge decodes greedily: the same trial gets the same verdict.
    return GenerationOptions(temperature=0.0, max_tokens=768)


class FilterConfig(Options):
    """What the filter keeps (its fingerprint, apart from addresses and keys)."""

    generation: GenerationOptions = Field(default_factory=_judge_generation)
    dedupe: DedupeOptions = Field(default_factory=DedupeOptions)
    scale: EngineOptions = Field(default_factory=EngineOptions)
    judge: bool = Field(True, description="Ask an LLM judge (three yes/no aspects, each with a reason).")
    require: list[Aspect] = Field(default_factory=_all_aspects, min_length=1,
                                  description="Judge aspects that must be yes.")
    simulated_ok: bool = Field(True, description="Whether a call answered by a simulated response counts as executed.")
    batch_size: int = Field(64, ge=1, le=100_000, description="Trials per backend call and checkpoint.")
    templates: Path | None = Field(None, json_schema_extra={"fingerprint": False, "exists": True},
                                   description="Folder overriding the judge's prompt templates (judge/system.j2, episode.j2).")

    _lists = field_validator("require", mode="before")(comma_list)


def filter_stage(trials: str | Path, out: str | Path, config: FilterConfig | None = None, *,
                 backend: Backend | None = None, progress: bool = True,
                 ray_engine: RayEngine | None = None) -> dict[str, Any]:
    """Keep the episode trials worth training on; every dropped one keeps its reason.

    Args:
        trials: a stage directory of episode trials (explore or augment output).
        out: the stage directory to write (kept trials, funnel.json, dropped.parquet).
        config: the settings (default: `FilterConfig()`: judge on, all three aspects required).
        backend: the judge's backend, if already open (default: opened from `config.generation`).
        progress: show progress bars.
        ray_engine: judge (and embed for dedupe) on Ray with this engine (default: as
            `config.scale` says; docs/scale.md).

    Returns:
        The stage manifest; `extra.funnel` has the rows kept and dropped per step and per API.

    Raises:
        InputError: `trials` is not a finished stage directory.

    Example:
        >>> from imaginarium import filter_stage, FilterConfig
        >>> manifest = filter_stage("runs/explore", "runs/filter", FilterConfig(judge=False))
    """
    from imaginarium.stage import read_rows

    config = config or FilterConfig()
    stage_config: dict[str, Any] = {"filter": config.fingerprint()}
    if not config.judge:  # without the judge, its model does not shape the output
        stage_config = {"filter": {k: v for k, v in stage_config["filter"].items()
                                   if k not in GenerationOptions.flat_fields()}}
    inputs = {"trials": trials, **({"templates": config.templates} if config.templates else {})}
    writer = StageWriter(Path(out), "filter", stage_config, inputs, schema=arrow_schema("episode_trial"))
    if writer.done:
        return writer.manifest or {}
    records = [TrialRecord.from_row(row) for row in read_rows(trials)]
    engine = open_engine(config.scale, ray_engine) if backend is None else None
    with writer, engine or contextlib.nullcontext():
        checks = active_checks(config, lambda: backend or open_backend(config.generation))
        return filter_trials(writer, records, checks, config.dedupe.step(DEFAULT_THRESHOLD, engine),
                             batch_size=config.batch_size, progress=progress,
                             on_ray=(engine, config) if engine is not None and config.judge else None)


class CheckWorker:
    """A Ray actor's part in `filter --engine ray`: a judge backend replica running every check
    on batches of trials (the checks before the judge are cheap; running them here keeps one path)."""

    def __init__(self, config: FilterConfig):
        backend = open_backend(config.generation)
        self.checks = active_checks(config, lambda: backend)
        self.model = backend.model

    def run(self, trials: list[TrialRecord]):
        yield {"rows": _checked(trials, self.checks), "units": [t.trial_id for t in trials]}
        yield {"stats": {"judge_model": self.model}}


def filter_trials(writer: StageWriter, trials: list[TrialRecord], checks: Sequence[Check],
                  dedupe: Callable | None, *, batch_size: int = 64, progress: bool = False,
                  on_ray: tuple[RayEngine, FilterConfig] | None = None) -> dict[str, Any]:
    """Run `checks` then `dedupe` into `writer` (resuming its finished batches); returns the manifest.

    `dedupe(rows) -> (kept_rows, [(dropped_row, reason), ...])` runs last, over every survivor.
    `on_ray`: the checks run on Ray actors (`CheckWorker`, built from the config) instead.
    """
    done = writer.finished_units()
    pending = [t for t in trials if t.trial_id not in done]
    label = "judging" if any(check.name == "judge" for check in checks) else "checking"
    judge_model = None
    if on_ray is not None:
        engine, config = on_ray
        run = engine.run_batches(writer, CheckWorker, {"config": config}, pending, batch_size, lambda t: t.trial_id,
                                 label=label if progress else None)
        judge_model = next((s["judge_model"] for s in run.stats if s.get("judge_model")), config.generation.model)
    else:
        for batch in batches(pending, batch_size, label, progress):
            writer.append(_checked(batch, checks), units=[t.trial_id for t in batch])

    rows = sorted(writer.progress_rows(), key=lambda r: (r["api"], r["episode"], r["slot"], r["trial_id"]))
    verdicts = [json.loads(r["scores"]) for r in rows]
    dropped = [(r, v["dropped"]) for r, v in zip(rows, verdicts) if "dropped" in v]
    survivors = [r for r, v in zip(rows, verdicts) if "dropped" not in v]
    steps = [check.name for check in checks]
    if dedupe is not None:
        steps.append("dedupe")
        if survivors:
            survivors, duplicates = dedupe(survivors)
            dropped += [(r, {"step": "dedupe", "reason": reason}) for r, reason in duplicates]
    funnel = _funnel(trials, dropped, steps)
    kept = pa.Table.from_pylist(survivors, schema=arrow_schema("episode_trial"))
    dropped_table = pa.Table.from_pylist(
        [{"trial_id": r["trial_id"], "api": r["api"], "step": d["step"], "reason": d["reason"]} for r, d in dropped],
        schema=_DROPPED_SCHEMA)
    kept_ids = {r["trial_id"] for r in survivors}
    sources: Counter[str] = Counter(o.source for t in trials if t.trial_id in kept_ids for o in t.observations if o.source)
    facts = CardFacts.read(writer.inputs.get("trials")).carried()
    facts.funnel, facts.response_sources = funnel, dict(sources)
    judge = next((check for check in checks if isinstance(check, JudgeCheck)), None)
    if judge is not None:
        facts.judge_model = judge_model or judge.judge.backend.model
    extra: dict[str, Any] = {**facts.extra(), "response_sources": dict(sorted(sources.items()))}
    return writer.finish(
        transform=lambda _: kept,
        files={**facts.files(), "dropped.parquet": _parquet_bytes(dropped_table)},
        counts={"kept": len(survivors), "dropped": len(dropped),
                "per_api": {api: v["kept"] for api, v in funnel["per_api"].items()}},
        extra=extra,
    )


def _checked(batch: Sequence[TrialRecord], checks: Sequence[Check]) -> list[dict[str, Any]]:
    """The trials as rows with the checks' records in `scores`, the first failed check under `dropped`."""
    scores: list[dict[str, Any]] = [{} for _ in batch]
    pending = list(range(len(batch)))
    for check in checks:
        outcomes = check.check([batch[i] for i in pending]) if pending else []
        still = []
        for i, outcome in zip(pending, outcomes):
            if outcome.record is not None:
                scores[i][check.name] = outcome.record
            if outcome.kept:
                still.append(i)
            else:
                scores[i]["dropped"] = {"step": check.name, "reason": outcome.reason}
        pending = still
    rows = []
    for trial, score in zip(batch, scores):
        trial.scores = json.dumps(score, ensure_ascii=False)
        rows.append(trial.to_row())
    return rows


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _funnel(trials: Sequence[TrialRecord], dropped, active: Sequence[str]) -> dict[str, Any]:
    by_step: dict[str, Counter] = defaultdict(Counter)
    per_api_drops: dict[str, Counter] = defaultdict(Counter)
    for row, drop in dropped:
        by_step[drop["step"]][_reason_class(drop["reason"])] += 1
        per_api_drops[row["api"]][drop["step"]] += 1
    steps, remaining = [], len(trials)
    for step in active:
        lost = sum(by_step[step].values())
        remaining -= lost
        steps.append({"name": step, "kept": remaining, "dropped": dict(by_step[step])})
    per_api = {}
    for api, n in sorted(Counter(t.api for t in trials).items()):
        left, api_steps = n, {}
        for step in active:
            left -= per_api_drops[api][step]
            api_steps[step] = left
        per_api[api] = {"input": n, "kept": left, "after": api_steps}
    return {"input": len(trials), "steps": steps, "per_api": per_api}


def _reason_class(reason: str) -> str:
    """Reasons are grouped in the funnel by their general form (judge reasons by failed aspect)."""
    if reason.startswith("not "):
        return ", ".join(sorted({part.split(":")[0] for part in reason.split("; ")}))
    return reason.split(" (")[0]
