"""`imaginarium filter` and `imaginarium augment`: the exploitation stages over episode trials.

Both read a stage directory of episode trials and write one; both finish with exact and
semantic dedupe (filters/dedupe.py). Each command is a thin shell over the function of the same
name here, which the recipe runner calls too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from imaginarium.generators.backends import open_backend
from imaginarium.generators.defaults import GenerationDefaults

ASPECT_NAMES = ("informative", "faithful", "appropriate")


def _dedupe_step(enabled: bool, semantic: bool, threshold: float | None, embedding_model: str | None,
                 default_threshold: str = "DEFAULT_THRESHOLD"):
    """The dedupe callable the stages take: rows -> (kept rows, [(dropped row, reason)]).

    `default_threshold` names the dedupe module's constant used when no threshold is given:
    augment uses PARAPHRASE_THRESHOLD, since a paraphrase is meant to be close to its seed and
    only near-copies should go.
    """
    if not enabled:
        return None
    from imaginarium.filters import dedupe as dedupe_module

    cut = getattr(dedupe_module, default_threshold) if threshold is None else threshold

    def run(rows):
        kept, dropped = dedupe_module.dedupe(rows, semantic=semantic, model=embedding_model, threshold=cut)
        return kept, [(row, row["drop_reason"]) for row in dropped]

    return run


def filter_stage(
    trials: str | Path,
    out: str | Path,
    judge: bool = True,
    require: str = ",".join(ASPECT_NAMES),
    simulated_ok: bool = True,
    dedupe: bool = True,
    semantic: bool = True,
    threshold: float | None = None,
    embedding_model: str | None = None,
    backend: str = GenerationDefaults.backend,
    model: str = GenerationDefaults.model,
    revision: str | None = None,
    structured_backend: str = GenerationDefaults.structured_backend,
    base_url: str | None = None,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = True,
) -> dict[str, Any]:
    """Filter the episode trials in `trials` into the stage directory `out`; returns the manifest."""
    from imaginarium.filters.filter import FilterConfig, filter_trials
    from imaginarium.filters.judge import Judge
    from imaginarium.schemas.records import arrow_schema
    from imaginarium.stage import StageWriter, read_rows

    config = FilterConfig(simulated_ok=simulated_ok, judge=judge, require=[a.strip() for a in require.split(",") if a.strip()],
                          dedupe=dedupe, semantic=semantic, threshold=threshold, embedding_model=embedding_model,
                          batch_size=batch_size)
    stage_config: dict[str, Any] = {"filter": config.__dict__}
    if judge:
        stage_config["judge"] = {"backend": backend, "judge_model": model, "revision": revision,
                                 "structured_backend": structured_backend, "seed": seed}
    writer = StageWriter(out, "filter", stage_config, {"trials": trials}, schema=arrow_schema("episode_trial"))
    if writer.done:
        return writer.manifest
    rows = read_rows(trials)
    with writer:
        the_judge = Judge(open_backend(backend, model, revision=revision, structured_backend=structured_backend,
                                       base_url=base_url), seed=seed) if judge else None
        manifest = filter_trials(writer, rows, config, the_judge,
                                 _dedupe_step(dedupe, semantic, threshold, embedding_model), progress)
    print_funnel(manifest["extra"]["funnel"])
    return manifest


def print_funnel(funnel: dict[str, Any]) -> None:
    click.echo(f"filter funnel: {funnel['input']} trials in")
    for step in funnel["steps"]:
        reasons = ", ".join(f"{reason} x{n}" for reason, n in sorted(step["dropped"].items(), key=lambda kv: -kv[1]))
        click.echo(f"  {step['name']:<13} kept {step['kept']:>6}" + (f"   dropped: {reasons}" if reasons else ""))
    for api, counts in funnel["per_api"].items():
        click.echo(f"  {api[:48]:<48} {counts['input']:>5} -> {counts['kept']:>5}")


def augment(
    trials: str | Path,
    out: str | Path,
    target_per_api: int = 150,
    max_paraphrases: int = 6,
    max_query_chars: int = 200,
    dedupe: bool = True,
    semantic: bool = True,
    threshold: float | None = None,
    embedding_model: str | None = None,
    backend: str = GenerationDefaults.backend,
    model: str = GenerationDefaults.model,
    revision: str | None = None,
    structured_backend: str = GenerationDefaults.structured_backend,
    base_url: str | None = None,
    seed: int = 0,
    temperature: float = 0.9,
    batch_size: int = 64,
    templates: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Paraphrase the kept queries in `trials` up to a target per API into `out`; returns the manifest."""
    from imaginarium.generators.paraphrase import AugmentConfig, Paraphraser, augment_trials
    from imaginarium.schemas.records import arrow_schema
    from imaginarium.stage import StageWriter, read_rows

    config = AugmentConfig(target_per_api=target_per_api, max_paraphrases=max_paraphrases,
                           max_query_chars=max_query_chars, temperature=temperature, seed=seed, batch_size=batch_size)
    stage_config = {"augment": config.__dict__, "dedupe": {"enabled": dedupe, "semantic": semantic,
                                                           "threshold": threshold, "embedding_model": embedding_model},
                    "generation": {"backend": backend, "model": model, "revision": revision,
                                   "structured_backend": structured_backend}}
    inputs = {"trials": trials, **({"templates": templates} if templates else {})}
    writer = StageWriter(out, "augment", stage_config, inputs, schema=arrow_schema("episode_trial"))
    if writer.done:
        return writer.manifest
    seeds = read_rows(trials)
    with writer:
        generator = open_backend(backend, model, revision=revision, structured_backend=structured_backend,
                                 base_url=base_url)
        paraphraser = Paraphraser(generator, config, str(templates) if templates else None)
        manifest = augment_trials(writer, seeds, paraphraser,
                                  _dedupe_step(dedupe, semantic, threshold, embedding_model, "PARAPHRASE_THRESHOLD"),
                                  progress)
    counts = manifest["counts"]
    click.echo(f"augment: {counts['seeds']} seeds + {counts['paraphrases_kept']} paraphrases kept "
               f"({counts['paraphrases_generated']} generated, {counts['duplicates_dropped']} duplicates dropped)")
    return manifest


_dedupe_options = [
    click.option("--dedupe/--no-dedupe", default=True, show_default=True, help="Drop exact and semantic duplicates."),
    click.option("--semantic/--no-semantic", default=True, show_default=True,
                 help="Semantic dedupe with sentence embeddings (exact dedupe always runs with --dedupe)."),
    click.option("--threshold", type=float,
                 help="Cosine similarity at or above which queries are duplicates (default: 0.8 for filter, "
                      "0.95 for augment, whose paraphrases are close to their seed by design)."),
    click.option("--embedding-model", help="sentence-transformers model name or path (default: bundled all-MiniLM-L6-v2)."),
]
_generation_options = [
    click.option("--backend", default=GenerationDefaults.backend, show_default=True, help="transformers | vllm | openai."),
    click.option("--model", default=GenerationDefaults.model, show_default=True, help="HF model id or path ('tiny': embedded)."),
    click.option("--revision", help="Model revision."),
    click.option("--structured-backend", default=GenerationDefaults.structured_backend, show_default=True,
                 help="transformers backend: llguidance | outlines_core | xgrammar."),
    click.option("--base-url", help="openai backend: the server's address, e.g. http://127.0.0.1:8000/v1."),
    click.option("--seed", type=int, default=0, show_default=True),
    click.option("--batch-size", type=int, default=64, show_default=True, help="Rows per backend call and checkpoint."),
]


def _with(options):
    def decorate(function):
        for option in reversed(options):
            function = option(function)
        return function
    return decorate


@click.command("filter")
@click.argument("trials", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Stage directory to write.")
@click.option("--judge/--no-judge", default=True, show_default=True, help="Ask an LLM judge (three yes/no aspects).")
@click.option("--require", default=",".join(ASPECT_NAMES), show_default=True,
              help="Judge aspects that must be yes (comma-separated).")
@click.option("--simulated-ok/--no-simulated-ok", default=True, show_default=True,
              help="Whether a call answered by a simulated response counts as executed.")
@_with(_dedupe_options)
@_with(_generation_options)
def filter_command(**params: Any) -> None:
    """Keep the episode trials worth training on; every dropped one keeps its reason.

    Steps: a final answer; at least one call executed without error; the LLM judge (informative,
    faithful, appropriate); exact and semantic dedupe. Writes funnel.json and dropped.parquet beside
    the data and prints the funnel.

    \b
    Example:
      imaginarium filter runs/explore -o runs/filtered --model Qwen/Qwen2.5-7B-Instruct
      imaginarium filter runs/explore -o runs/filtered --no-judge
    """
    filter_stage(**params)


@click.command("augment")
@click.argument("trials", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Stage directory to write.")
@click.option("--target-per-api", type=int, default=150, show_default=True, help="Rows wanted per API.")
@click.option("--max-paraphrases", type=int, default=6, show_default=True, help="Most paraphrases of one query.")
@click.option("--max-query-chars", type=int, default=200, show_default=True, help="Longest paraphrase.")
@click.option("--temperature", type=float, default=0.9, show_default=True)
@click.option("--templates", type=click.Path(file_okay=False, path_type=Path),
              help="Folder overriding prompt templates (paraphrase/request.j2).")
@_with(_dedupe_options)
@_with(_generation_options)
def augment_command(**params: Any) -> None:
    """Paraphrase kept queries up to a target per API, then dedupe again.

    Paraphrases per query = min(round(target / kept) - 1, max-paraphrases), as in STE; each
    paraphrase copies its seed's calls, observations and answer and records `paraphrase_of`.

    \b
    Example:
      imaginarium augment runs/filtered -o runs/augmented --target-per-api 150 --max-paraphrases 6
    """
    augment(**params)

