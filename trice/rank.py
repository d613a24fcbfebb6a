"""TRICE's rank stage: candidates sampled, executed, scored against the gold, ranked and paired.

One run writes one directory of stage directories:

    OUT/ranking/          ranking rows: every scored candidate per question, best first (RRHF)
    OUT/preference/       chosen/rejected rows for DPO, tools and tool_calls kept in the messages
    OUT/sft/              stage-1 behaviour-cloning rows (chat format of `build sft`)
    OUT/preference_text/  with `render_with`: the pairs rendered to prompt/chosen/rejected text

Sampling (the slow part) checkpoints per batch of questions in OUT/ranking; the other three are
derived from it and are no-ops when it and their settings are unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from imaginarium.builders.chat import DEFAULT_SYSTEM
from imaginarium.engine import EngineOptions, RayEngine
from imaginarium.executor.options import ExecutionOptions
from imaginarium.models.options import GenerationOptions, open_backend
from imaginarium.options import Options, comma_list

RELEASE_CONFIGS = {"ranking": "trice_ranking", "preference": "trice_preference", "sft": "trice_sft",
                   "preference_text": "preference_text"}


def _rank_generation() -> GenerationOptions:
    return GenerationOptions(max_tokens=256)


class RankConfig(Options):
    """How candidates are sampled, executed, scored and paired (the stage fingerprint)."""

    generation: GenerationOptions = Field(default_factory=_rank_generation)
    execution: ExecutionOptions = Field(default_factory=ExecutionOptions)
    scale: EngineOptions = Field(default_factory=EngineOptions)
    tools: Path | None = Field(None, json_schema_extra={"exists": True}, description=(
        "tools.jsonl the candidates may call. Default: the built-in offline tools (calculator, ...)."))
    candidates: int = Field(5, ge=0, le=1000, description="Sampled candidates per question (K).")
    models: list[str] | None = Field(None, min_length=1, description="Models taking turns per candidate (instead of --model).")
    temperatures: list[float] = Field(default_factory=lambda: [0.7, 1.0], min_length=1,
                                      description="Temperatures taking turns per candidate.")
    max_turns: int = Field(2, ge=0, le=100, description="Most tool calls per candidate.")
    min_calls: int = Field(0, ge=0, le=100, description=(
        "Fewest tool calls before a candidate may answer (1: every candidate uses a tool)."))
    max_thought_chars: int = Field(120, ge=0, le=10_000, description="Longest thought before a step.")
    max_answer_chars: int = Field(120, ge=1, le=100_000, description="Longest final answer.")
    max_argument_chars: int = Field(64, ge=1, le=100_000, description="Longest free-text argument value.")
    no_gold: bool = Field(False, description="Leave out the gold response (the pseudo-expert) from the candidates.")
    tolerance: float = Field(1e-6, gt=0, le=1, description="math: relative and absolute tolerance of a numeric match.")
    pairs: Literal["best", "all"] = Field("best", description=(
        "DPO pairs: best vs each worse candidate, or all pairs whose scores differ by more than --margin."))
    margin: float = Field(0.0, ge=0, description="Smallest score gap of a pair (exclusive).")
    sft_from: Literal["best", "gold"] = Field("best", description=(
        "Stage-1 rows from the best candidate (if correct) or from the gold response."))
    system: str | None = Field(DEFAULT_SYSTEM, description="System message of the training prompt ('' for none).")
    render_with: str | None = Field(None, min_length=1, description=(
        "Also render the pairs to text with this model's chat template (path or id)."))
    trials_task: Literal["call", "qa"] = Field("call", description=(
        "When QUESTIONS are STE trials: score candidates by the gold call or by the final answer."))
    batch_size: int = Field(8, ge=1, le=100_000, description="Questions per checkpointed batch.")
    templates: Path | None = Field(None, json_schema_extra={"fingerprint": False, "exists": True},
                                   description="Folder overriding the prompt template trice/system.j2.")
    skip_invalid: bool = Field(False, json_schema_extra={"fingerprint": False}, description=(
        "Skip malformed questions (a count and the first reasons on stderr) instead of failing."))

    _lists = field_validator("models", "temperatures", mode="before")(comma_list)

    @field_validator("temperatures")
    @classmethod
    def _non_negative(cls, value: list[float]) -> list[float]:
        if any(t < 0 for t in value):
            raise ValueError("temperatures must be at least 0")
        return value

    @model_validator(mode="after")
    def _calls_within_turns(self) -> RankConfig:
        if self.min_calls > self.max_turns:
            raise ValueError("--min-calls must be between 0 and --max-turns")
        return self


def rank(questions: str | Path, out: str | Path, config: RankConfig | None = None, *,
         progress: bool = True, ray_engine: RayEngine | None = None) -> dict[str, Any]:
    """Sample, execute, score and rank candidates for `questions` (TRICE) into the directory `out`.

    Args:
        questions: a JSONL file (or stage directory) of {id, question, answer, task: qa|math|call,
            tools, call}, or a stage directory of STE episode trials (successful ones become
            questions).
        out: the directory to write: ranking/, preference/, sft/ (and preference_text/).
        config: the settings (default: `RankConfig()`).
        progress: show progress bars.
        ray_engine: sample on Ray with this engine (default: as `config.scale` says; docs/scale.md).

    Returns:
        The manifests by sub-stage (ranking, preference, sft and, with `render_with`,
        preference_text).

    Raises:
        InputError: a malformed question file or row (unless `config.skip_invalid`: then it is
            skipped and reported on stderr), a gold call that its tool's schema refuses, a
            corrupt cache. Every row is checked before any model loads.

    Example:
        >>> from imaginarium import rank, RankConfig
        >>> manifests = rank("questions.jsonl", "runs/trice", RankConfig(candidates=4))
    """
    from imaginarium.trice.sampler import SamplerConfig

    config = config or RankConfig()
    out = Path(out)
    sampler_config = SamplerConfig(
        candidates=config.candidates, temperatures=list(config.temperatures), seed=config.generation.seed,
        max_turns=config.max_turns, min_calls=config.min_calls, max_tokens=config.generation.max_tokens,
        max_thought_chars=config.max_thought_chars, max_answer_chars=config.max_answer_chars,
        max_argument_chars=config.max_argument_chars, include_gold=not config.no_gold, tolerance=config.tolerance)
    ranking = _ranking_stage(questions, out / "ranking", config, sampler_config, progress, ray_engine)
    return {"ranking": ranking, **derived_stages(out, config.pairs, config.margin, config.sft_from, config.render_with)}


def _ranking_stage(questions, out: Path, config: RankConfig, sampler_config, progress: bool,
                   ray_engine: RayEngine | None = None) -> dict[str, Any]:
    """Sample and score into OUT/ranking, one durable chunk per batch of questions."""
    from imaginarium.executor.builtins import TOOLS
    from imaginarium.jsonutil import content_hash
    from imaginarium.schemas.records import arrow_schema
    from imaginarium.schemas.toolspec import read_tools
    from imaginarium.stage import StageWriter
    from imaginarium.trice.questions import read_questions
    from imaginarium.trice.ranking import task_stats

    tools = config.tools
    specs = read_tools(tools) if tools is not None else TOOLS()
    items, input_counts = read_questions(questions, specs, trials_task=config.trials_task,
                                         skip_invalid=config.skip_invalid)
    settings = {**config.fingerprint(), "system": config.system or None, "tools": str(tools) if tools else "builtin",
                "tools_hash": content_hash([spec.model_dump(mode="json") for spec in specs])}
    inputs = {"questions": questions, **({"templates": config.templates} if config.templates else {})}
    writer = StageWriter(out, "rank", settings, inputs, schema=arrow_schema("ranking_row"))
    if writer.done:
        return writer.manifest or {}
    with writer:
        finished = writer.finished_units()
        todo = [q for q in items if q.id not in finished]
        if todo:
            from imaginarium.engine import open_engine

            engine = open_engine(config.scale, ray_engine)
            if engine is not None:
                _sample_on_ray(engine, writer, todo, specs, config, sampler_config, progress)
            else:
                _sample(writer, todo, specs, config, sampler_config, progress)
        rows = writer.progress_rows()
        counts = {**input_counts, "candidates": sum(len(r["candidates"]) for r in rows)}
        extra = {"release_config": RELEASE_CONFIGS["ranking"], "stats": task_stats(rows),
                 "models": [{"id": m, "revision": config.generation.revision, "role": "candidates"}
                            for m in _models(config)],
                 "backend": config.generation.backend, "seeds": [sampler_config.seed]}
        return writer.finish(counts=counts, extra=extra, sort_by=["question_id"])


def _models(config: RankConfig) -> list[str]:
    return list(config.models or [config.generation.model])


def _sample(writer, todo, specs, config: RankConfig, sampler_config, progress: bool) -> None:
    from imaginarium.progress import batches

    worker = SampleWorker(specs, config, sampler_config, sharded=False)
    try:
        for batch in batches(todo, config.batch_size, "ranking questions", progress):
            for chunk in worker.run(batch):
                writer.append(chunk["rows"], units=chunk["units"])
    finally:
        worker.close()


class SampleWorker:
    """Candidate backends and an executor, sampling and scoring batches of questions: here (`_sample`),
    or as a Ray actor's part in `rank --engine ray` (`sharded`: its cache writes go to a shard of its own)."""

    def __init__(self, specs, config: RankConfig, sampler_config, *, sharded: bool = True):
        from imaginarium.executor.cache_shards import worker_shard
        from imaginarium.executor.options import open_executor
        from imaginarium.trice.sampler import Sampler

        backends = ([open_backend(config.generation, model) for model in _models(config)]
                    if sampler_config.candidates else [])

        def simulator_backend():
            return backends[0] if backends else open_backend(config.generation)

        shard = worker_shard(config.execution.cache) if sharded else None
        self._executor = open_executor(specs, config.execution, simulator_backend=simulator_backend, cache_shard=shard)
        self.sampler = Sampler(specs, backends, self._executor.__enter__(), sampler_config,
                               system=config.system or None, templates=str(config.templates) if config.templates else None)

    def run(self, questions):
        rows = self.sampler.run_batch(list(questions))
        yield {"rows": rows, "units": [row["question_id"] for row in rows]}

    def close(self) -> None:
        self._executor.__exit__(None, None, None)


def _sample_on_ray(engine: RayEngine, writer, todo, specs, config: RankConfig, sampler_config, progress: bool) -> None:
    from imaginarium.executor.cache_shards import merged_shards

    with engine, merged_shards(config.execution.cache):
        engine.run_batches(writer, SampleWorker, {"specs": specs, "config": config, "sampler_config": sampler_config},
                           todo, config.batch_size, lambda question: question.id,
                           label="ranking questions" if progress else None)


def derived_stages(out: Path, pairs: str, margin: float, sft_from: str, render_with: str | None) -> dict[str, Any]:
    """The preference, SFT and (optionally) rendered-text stages, derived from OUT/ranking."""
    from imaginarium.schemas.records import arrow_schema
    from imaginarium.stage import read_rows, write_stage
    from imaginarium.trice.ranking import preference_rows, sft_rows, task_stats

    ranking_dir = out / "ranking"
    rows = read_rows(ranking_dir)
    stats = task_stats(rows)
    preferences = preference_rows(rows, pairs, margin)
    manifests = {
        "preference": write_stage(
            out / "preference", "rank_preference", {"pairs": pairs, "margin": margin}, {"ranking": ranking_dir},
            preferences, schema=arrow_schema("preference_row"), sort_by=["question_id"],
            extra={"release_config": RELEASE_CONFIGS["preference"], "stats": stats}),
        "sft": write_stage(
            out / "sft", "rank_sft", {"sft_from": sft_from}, {"ranking": ranking_dir}, sft_rows(rows, sft_from),
            schema=arrow_schema("sft_row"), extra={"release_config": RELEASE_CONFIGS["sft"]}),
    }
    if render_with:
        manifests["preference_text"] = render_stage(out / "preference", out / "preference_text", render_with)
    return manifests


def render_stage(preference_dir: Path, out: Path, render_with: str) -> dict[str, Any]:
    """Preference rows rendered to text with `render_with`'s chat template (builders/preference_text.py)."""
    from imaginarium.builders.preference_text import render_preference_stage

    return render_preference_stage(preference_dir, out, render_with, RELEASE_CONFIGS["preference_text"])


