"""The filter stage: keep the trials worth training on, and say why each other one went.

Steps, in order (each one sees only what the previous kept):
1. `final_answer`: the trial finished with a final answer;
2. `executed`: at least one call executed without error (whether a simulated response counts
   is a setting: `simulated_ok`);
3. `judge`: an LLM judge says yes on the required aspects (informative, faithful, appropriate;
   by default all three);
4. `dedupe`: exact and semantic duplicates of another kept query of the same API are dropped
   (the kept row of a cluster: a successful trial first, then the earliest trial id).

Every dropped row keeps its reason (in `dropped.parquet` beside the data); the funnel (rows in
and out per step, overall and per API) is written as `funnel.json` and printed.

The judge is the slow part: trials are judged in batches, each batch appended durably, so an
interrupted run resumes without judging a trial twice.
"""

from __future__ import annotations

import io
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, field_validator

from imaginarium.filters.dedupe import DEFAULT_THRESHOLD, DedupeOptions
from imaginarium.filters.judge import Judge
from imaginarium.generators.backend import Backend
from imaginarium.generators.options import GenerationOptions, open_backend
from imaginarium.options import Options, comma_list
from imaginarium.progress import batches
from imaginarium.schemas.records import arrow_schema
from imaginarium.stage import StageWriter, carried_reports

STEPS = ("final_answer", "executed", "judge", "dedupe")
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
    judge: bool = Field(True, description="Ask an LLM judge (three yes/no aspects, each with a reason).")
    require: list[Aspect] = Field(default_factory=_all_aspects, min_length=1,
                                  description="Judge aspects that must be yes.")
    simulated_ok: bool = Field(True, description="Whether a call answered by a simulated response counts as executed.")
    batch_size: int = Field(64, ge=1, le=100_000, description="Trials per backend call and checkpoint.")
    templates: Path | None = Field(None, json_schema_extra={"fingerprint": False, "exists": True},
                                   description="Folder overriding the judge's prompt templates (judge/system.j2, episode.j2).")

    _lists = field_validator("require", mode="before")(comma_list)


def execution_problem(trial: dict[str, Any], simulated_ok: bool) -> str | None:
    """Why a trial fails the `executed` check, or None when one of its calls ran without error."""
    calls = [s for s in trial["steps"] if s["action"] == "call"]
    if not calls:
        return "made no tool call"
    observations = [json.loads(s["observation"]) for s in calls if s["observation"]]
    if not observations:
        return "no call was executed (observations withheld)"
    good = [o for o in observations if o["status"] == "ok"]
    if not good:
        kinds = Counter(o.get("error_kind") or "error" for o in observations)
        return "every call failed (" + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items())) + ")"
    if not simulated_ok and all(o["source"] == "simulated" for o in good):
        return "only simulated responses succeeded"
    return None


def judge_problem(verdict: dict[str, Any] | None, require: Sequence[str]) -> str | None:
    """Why the judge's verdict fails, or None when every required aspect is yes."""
    if verdict is None:
        return "the judge gave no valid verdict"
    failed = [a for a in require if verdict[a]["verdict"] != "yes"]
    if not failed:
        return None
    return "; ".join(f"not {a}: {verdict[a]['reason']}" for a in failed)


def filter_stage(trials: str | Path, out: str | Path, config: FilterConfig | None = None, *,
                 backend: Backend | None = None, progress: bool = True) -> dict[str, Any]:
    """Keep the episode trials worth training on; every dropped one keeps its reason.

    Args:
        trials: a stage directory of episode trials (explore or augment output).
        out: the stage directory to write (kept trials, funnel.json, dropped.parquet).
        config: the settings (default: `FilterConfig()`: judge on, all three aspects required).
        backend: the judge's backend, if already open (default: opened from `config.generation`).
        progress: show progress bars.

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
    rows = read_rows(trials)
    with writer:
        judge = None
        if config.judge:
            engine = backend or open_backend(config.generation)
            judge = Judge(engine, seed=config.generation.seed, max_tokens=config.generation.max_tokens,
                          templates=str(config.templates) if config.templates else None)
        return filter_trials(writer, rows, config, judge, config.dedupe.step(DEFAULT_THRESHOLD), progress)


def filter_trials(writer: StageWriter, trials: list[dict[str, Any]], config: FilterConfig,
                  judge: Judge | None, dedupe: Callable | None, progress: bool = False) -> dict[str, Any]:
    """Run the filter steps into `writer` (resuming its finished batches); returns the manifest.

    `dedupe(rows) -> (kept_rows, [(dropped_row, reason), ...])` runs last, over every survivor.
    """
    done = writer.finished_units()
    pending = [t for t in trials if t["trial_id"] not in done]
    for batch in batches(pending, config.batch_size, "judging" if judge else "checking", progress):
        writer.append(_checked(batch, config, judge), units=[t["trial_id"] for t in batch])

    rows = sorted(writer.progress_rows(), key=lambda r: (r["api"], r["episode"], r["slot"], r["trial_id"]))
    verdicts = [json.loads(r["scores"]) for r in rows]
    dropped = [(r, v["dropped"]) for r, v in zip(rows, verdicts) if "dropped" in v]
    survivors = [r for r, v in zip(rows, verdicts) if "dropped" not in v]
    if dedupe is not None and survivors:
        survivors, duplicates = dedupe(survivors)
        dropped += [(r, {"step": "dedupe", "reason": reason}) for r, reason in duplicates]
    funnel = _funnel(trials, dropped, config)
    kept = pa.Table.from_pylist(survivors, schema=arrow_schema("episode_trial"))
    dropped_table = pa.Table.from_pylist(
        [{"trial_id": r["trial_id"], "api": r["api"], "step": d["step"], "reason": d["reason"]} for r, d in dropped],
        schema=_DROPPED_SCHEMA)
    observations = [json.loads(s["observation"]) for r in survivors for s in r["steps"]
                    if s["action"] == "call" and s["observation"]]
    sources = Counter(o["source"] for o in observations if o["source"])
    extra: dict[str, Any] = {"funnel": funnel, "response_sources": dict(sorted(sources.items()))}
    if judge is not None:
        extra["judge_model"] = judge.backend.model
    return writer.finish(
        transform=lambda _: kept,
        files={**carried_reports(writer.inputs.get("trials")), "funnel.json": json.dumps(funnel, indent=2) + "\n",
               "dropped.parquet": _parquet_bytes(dropped_table)},
        counts={"kept": len(survivors), "dropped": len(dropped),
                "per_api": {api: v["kept"] for api, v in funnel["per_api"].items()}},
        extra=extra,
    )


def _checked(batch: Sequence[dict[str, Any]], config: FilterConfig, judge: Judge | None) -> list[dict[str, Any]]:
    """The trials with their verdicts in `scores`, the first failed step under `dropped`."""
    scores: list[dict[str, Any]] = []
    for trial in batch:
        if trial["final_answer"] is None:
            scores.append({"dropped": {"step": "final_answer", "reason": "no final answer"}})
        elif (problem := execution_problem(trial, config.simulated_ok)) is not None:
            scores.append({"dropped": {"step": "executed", "reason": problem}})
        else:
            scores.append({})
    if judge is not None:
        to_judge = [i for i, s in enumerate(scores) if not s]
        verdicts = judge.judge([batch[i] for i in to_judge]) if to_judge else []
        for i, verdict in zip(to_judge, verdicts):
            scores[i]["judge"] = verdict
            if (problem := judge_problem(verdict, config.require)) is not None:
                scores[i]["dropped"] = {"step": "judge", "reason": problem}
    return [dict(t, scores=json.dumps(s, ensure_ascii=False)) for t, s in zip(batch, scores)]


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _funnel(trials, dropped, config: FilterConfig) -> dict[str, Any]:
    by_step: dict[str, Counter] = defaultdict(Counter)
    per_api_drops: dict[str, Counter] = defaultdict(Counter)
    for row, drop in dropped:
        by_step[drop["step"]][_reason_class(drop["reason"])] += 1
        per_api_drops[row["api"]][drop["step"]] += 1
    active = [s for s in STEPS if (s != "judge" or config.judge) and (s != "dedupe" or config.dedupe.dedupe)]
    steps, remaining = [], len(trials)
    for step in active:
        lost = sum(by_step[step].values())
        remaining -= lost
        steps.append({"name": step, "kept": remaining, "dropped": dict(by_step[step])})
    per_api = {}
    for api, n in sorted(Counter(t["api"] for t in trials).items()):
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
