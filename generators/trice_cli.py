"""`imaginarium rank`: TRICE candidates ranked by execution feedback, as a command and a function.

One run writes one directory of stage directories:

    OUT/ranking/          ranking rows: every scored candidate per question, best first (RRHF)
    OUT/preference/       chosen/rejected rows for DPO, tools and tool_calls kept in the messages
    OUT/sft/              stage-1 behaviour-cloning rows (chat format of `build sft`)
    OUT/preference_text/  with --render-with: the pairs rendered to prompt/chosen/rejected text

Sampling (the slow part) checkpoints per batch of questions in OUT/ranking; the other three are
derived from it and are no-ops when it and their settings are unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from imaginarium.builders.chat import DEFAULT_SYSTEM
from imaginarium.errors import InputError
from imaginarium.generators.defaults import GenerationDefaults

RELEASE_CONFIGS = {"ranking": "trice_ranking", "preference": "trice_preference", "sft": "trice_sft",
                   "preference_text": "preference_text"}


def rank(
    questions: str | Path,
    out: str | Path,
    tools: str | Path | None = None,
    candidates: int = 5,
    backend: str = GenerationDefaults.backend,
    model: str = GenerationDefaults.model,
    models: str | None = None,
    revision: str | None = None,
    structured_backend: str = GenerationDefaults.structured_backend,
    base_url: str | None = None,
    temperatures: str = "0.7,1.0",
    seed: int = 0,
    max_turns: int = 2,
    min_calls: int = 0,
    max_tokens: int = 256,
    max_thought_chars: int = 120,
    max_answer_chars: int = 120,
    max_argument_chars: int = 64,
    no_gold: bool = False,
    tolerance: float = 1e-6,
    pairs: str = "best",
    margin: float = 0.0,
    sft_from: str = "best",
    system: str | None = DEFAULT_SYSTEM,
    render_with: str | None = None,
    trials_task: str = "call",
    cache: str | Path | None = None,
    cache_mode: str = "replay",
    batch_size: int = 8,
    templates: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Sample, execute, score and rank candidates for `questions` into `out`; returns the
    manifests by sub-stage (ranking, preference, sft and, with `render_with`, preference_text)."""
    from imaginarium.filters.ranking import PAIR_RULES, SFT_SOURCES

    out = Path(out)
    if pairs not in PAIR_RULES:
        raise InputError(f"unknown pairing rule {pairs!r}; known: {', '.join(PAIR_RULES)}", where="--pairs")
    if sft_from not in SFT_SOURCES:
        raise InputError(f"unknown source {sft_from!r}; known: {', '.join(SFT_SOURCES)}", where="--sft-from")
    if margin < 0:
        raise InputError("must be at least 0", where="--margin")
    if batch_size < 1:
        raise InputError("must be at least 1", where="--batch-size")
    if candidates < 0:
        raise InputError("must be at least 0", where="--candidates")
    if max_turns < 0:
        raise InputError("must be at least 0", where="--max-turns")
    if not 0 <= min_calls <= max_turns:
        raise InputError("must be between 0 and --max-turns", where="--min-calls")
    try:
        temps = [float(t) for t in temperatures.split(",") if t.strip()]
    except ValueError:
        raise InputError(f"not a comma-separated list of numbers: {temperatures!r}", where="--temperatures") from None
    if not temps or any(t < 0 for t in temps):
        raise InputError("give one or more temperatures >= 0", where="--temperatures")
    if cache is None and cache_mode != "replay":
        raise InputError(f"--cache-mode {cache_mode} stores responses: give --cache FILE (created if absent)")
    from imaginarium.generators.trice import SamplerConfig

    sampler_config = SamplerConfig(
        candidates=candidates, temperatures=temps, seed=seed, max_turns=max_turns, min_calls=min_calls,
        max_tokens=max_tokens, max_thought_chars=max_thought_chars, max_answer_chars=max_answer_chars,
        max_argument_chars=max_argument_chars, include_gold=not no_gold, tolerance=tolerance)
    generation = Generation(backend, [m.strip() for m in (models or model).split(",") if m.strip()], revision,
                            structured_backend, base_url)
    settings = {"system": system or None, "trials_task": trials_task, "cache_mode": cache_mode,
                "batch_size": batch_size, "templates": str(templates) if templates else None}
    ranking = _ranking_stage(questions, out / "ranking", tools, sampler_config, generation, settings, cache, progress)
    return {"ranking": ranking, **derived_stages(out, pairs, margin, sft_from, render_with)}


@dataclass(frozen=True)
class Generation:
    """The backend options shared by every generating command, for one or more models."""

    backend: str
    models: list[str]
    revision: str | None
    structured_backend: str
    base_url: str | None

    def open(self, model: str):
        from imaginarium.generators.backends import open_backend

        return open_backend(self.backend, model, revision=self.revision,
                            structured_backend=self.structured_backend, base_url=self.base_url)


def _ranking_stage(questions, out: Path, tools, sampler_config, generation: Generation, settings: dict[str, Any],
                   cache, progress: bool) -> dict[str, Any]:
    """Sample and score into OUT/ranking, one durable chunk per batch of questions."""
    from imaginarium.executor.builtins import TOOLS
    from imaginarium.filters.ranking import task_stats
    from imaginarium.generators.trice_questions import read_questions
    from imaginarium.jsonutil import content_hash
    from imaginarium.schemas.records import arrow_schema
    from imaginarium.schemas.toolspec import read_tools
    from imaginarium.stage import StageWriter

    specs = read_tools(tools) if tools is not None else TOOLS()
    items, input_counts = read_questions(questions, specs, trials_task=settings["trials_task"])
    config = {**asdict(sampler_config), **asdict(generation), **settings, "tools": str(tools) if tools else "builtin",
              "tools_hash": content_hash([spec.model_dump(mode="json") for spec in specs])}
    config.pop("base_url")  # where the server runs does not shape the data
    inputs = {"questions": questions, **({"templates": settings["templates"]} if settings["templates"] else {})}
    writer = StageWriter(out, "rank", config, inputs, schema=arrow_schema("ranking_row"))
    if writer.done:
        return writer.manifest
    with writer:
        finished = writer.finished_units()
        todo = [q for q in items if q.id not in finished]
        if todo:
            _sample(writer, todo, specs, sampler_config, generation, settings, cache, progress)
        rows = writer.progress_rows()
        counts = {**input_counts, "candidates": sum(len(r["candidates"]) for r in rows)}
        extra = {"release_config": RELEASE_CONFIGS["ranking"], "stats": task_stats(rows),
                 "models": [{"id": m, "revision": generation.revision, "role": "candidates"}
                            for m in generation.models],
                 "backend": generation.backend, "seeds": [sampler_config.seed]}
        return writer.finish(counts=counts, extra=extra, sort_by=["question_id"])


def _sample(writer, todo, specs, sampler_config, generation: Generation, settings: dict[str, Any], cache,
            progress: bool) -> None:
    from imaginarium.executor.cache import ResponseCache
    from imaginarium.executor.executor import Executor
    from imaginarium.generators.trice import Sampler
    from imaginarium.progress import batches

    backends = [generation.open(name) for name in generation.models] if sampler_config.candidates else []
    response_cache = ResponseCache(cache) if cache is not None else None
    simulator = None
    if settings["cache_mode"] == "simulate":
        from imaginarium.executor.simulate import Simulator

        simulator = Simulator(backends[0] if backends else generation.open(generation.models[0]))
    try:
        executor = Executor(specs, response_cache, settings["cache_mode"], simulator=simulator)
        sampler = Sampler(specs, backends, executor, sampler_config, system=settings["system"],
                          templates=settings["templates"])
        for batch in batches(todo, settings["batch_size"], "ranking questions", progress):
            rows = sampler.run_batch(list(batch))
            writer.append(rows, units=[row["question_id"] for row in rows])
    finally:
        if response_cache is not None:
            response_cache.close()


def derived_stages(out: Path, pairs: str, margin: float, sft_from: str, render_with: str | None) -> dict[str, Any]:
    """The preference, SFT and (optionally) rendered-text stages, derived from OUT/ranking."""
    from imaginarium.filters.ranking import preference_rows, sft_rows, task_stats
    from imaginarium.schemas.records import arrow_schema
    from imaginarium.stage import read_rows, write_stage

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
    """Preference rows rendered to text with `render_with`'s chat template (axolotl_configs/preference_text.py)."""
    from transformers import AutoTokenizer

    from imaginarium.axolotl_configs.preference_text import ARROW_SCHEMA, render_preference_rows
    from imaginarium.generators.backends import resolve_model
    from imaginarium.stage import StageWriter, read_rows

    writer = StageWriter(out, "render-preference-text", {"model": render_with}, {"preference": preference_dir},
                         schema=ARROW_SCHEMA)
    if writer.done:
        return writer.manifest
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(render_with))
    rows = render_preference_rows(read_rows(preference_dir), tokenizer)
    with writer:
        writer.append(rows)
        return writer.finish(extra={"release_config": RELEASE_CONFIGS["preference_text"]})


def stats_lines(stats: dict[str, dict[str, Any]]) -> list[str]:
    """The per-task statistics as lines for a person."""
    lines = []
    for task, s in stats.items():
        per = s["candidates_per_question"]
        lines.append(f"{task}: {s['questions']} questions, {per['mean']:g} candidates each "
                     f"(min {per['min']}, max {per['max']}), "
                     f"{s['share_with_preference_signal']:.0%} with a better and a worse candidate")
        lines.append("  scores: " + ", ".join(f"{k}: {v}" for k, v in s["score_distribution"].items()))
    return lines


@click.command("rank")
@click.argument("questions", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write: ranking/, preference/, sft/ (and preference_text/) stage directories.")
@click.option("--tools", type=click.Path(dir_okay=False, path_type=Path),
              help="tools.jsonl the candidates may call. Default: the built-in offline tools (calculator, ...).")
@click.option("--candidates", type=int, default=5, show_default=True, help="Sampled candidates per question (K).")
@click.option("--backend", default=GenerationDefaults.backend, show_default=True, help="transformers | vllm | openai.")
@click.option("--model", default=GenerationDefaults.model, show_default=True,
              help="Model that samples the candidates ('tiny' = the embedded tiny model).")
@click.option("--models", help="Comma-separated models taking turns per candidate (overrides --model).")
@click.option("--revision", help="Model revision (branch, tag or commit).")
@click.option("--structured-backend", default=GenerationDefaults.structured_backend, show_default=True,
              help="transformers backend: llguidance | outlines_core | xgrammar.")
@click.option("--base-url", help="openai backend: the server's address, e.g. http://127.0.0.1:8000/v1.")
@click.option("--temperatures", default="0.7,1.0", show_default=True,
              help="Comma-separated temperatures taking turns per candidate.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-turns", type=int, default=2, show_default=True, help="Most tool calls per candidate.")
@click.option("--min-calls", type=int, default=0, show_default=True,
              help="Fewest tool calls before a candidate may answer (1: every candidate uses a tool).")
@click.option("--max-tokens", type=int, default=256, show_default=True, help="Token budget of one step.")
@click.option("--max-thought-chars", type=int, default=120, show_default=True)
@click.option("--max-answer-chars", type=int, default=120, show_default=True)
@click.option("--max-argument-chars", type=int, default=64, show_default=True)
@click.option("--no-gold", is_flag=True, help="Leave out the gold response (the pseudo-expert) from the candidates.")
@click.option("--tolerance", type=float, default=1e-6, show_default=True,
              help="math: relative and absolute tolerance of a numeric match.")
@click.option("--pairs", type=click.Choice(["best", "all"]), default="best", show_default=True,
              help="DPO pairs: best vs each worse candidate, or all pairs whose scores differ by more than --margin.")
@click.option("--margin", type=float, default=0.0, show_default=True, help="Smallest score gap of a pair (exclusive).")
@click.option("--sft-from", type=click.Choice(["best", "gold"]), default="best", show_default=True,
              help="Stage-1 rows from the best candidate (if correct) or from the gold response.")
@click.option("--system", default=DEFAULT_SYSTEM, show_default="the build sft system message",
              help="System message of the training prompt ('' for none).")
@click.option("--render-with", help="Also render the pairs to text with this model's chat template (path or id).")
@click.option("--trials-task", type=click.Choice(["call", "qa"]), default="call", show_default=True,
              help="When QUESTIONS are STE trials: score candidates by the gold call or by the final answer.")
@click.option("--cache", type=click.Path(dir_okay=False, path_type=Path), help="Response cache (SQLite).")
@click.option("--cache-mode", type=click.Choice(["replay", "record", "simulate"]), default="replay", show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True, help="Questions per checkpointed batch.")
@click.option("--templates", type=click.Path(file_okay=False, path_type=Path),
              help="Folder overriding the prompt template trice/system.j2.")
def rank_command(**params: Any) -> None:
    """Rank K executed candidates per question against the gold (TRICE) and write SFT and preference data.

    QUESTIONS: a JSONL file (or stage directory) of {id, question, answer, task: qa|math|call,
    tools, call}, or a stage directory of STE episode trials (successful ones become questions).

    \b
    Example:
      imaginarium rank tests/data/trice_math.jsonl -o runs/trice --candidates 4 --model tiny \\
          --render-with tiny
    """
    manifests = rank(**params)
    ranking = manifests["ranking"]
    click.echo(f"{ranking['counts']['rows']} questions, {ranking['counts']['candidates']} candidates -> "
               f"{params['out']}/ranking")
    for line in stats_lines(ranking.get("extra", {}).get("stats", {})):
        click.echo(line)
    click.echo(f"{manifests['preference']['counts']['rows']} preference pairs, "
               f"{manifests['sft']['counts']['rows']} SFT rows")
