"""`imaginarium explore`: the STE exploration stage as a command and a function."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from imaginarium.errors import InputError
from imaginarium.generators.defaults import GenerationDefaults
from imaginarium.generators.quality import format_quality


def explore(
    tools: str | Path,
    out: str | Path,
    apis: str | None = None,
    apis_file: str | Path | None = None,
    backend: str = GenerationDefaults.backend,
    model: str = GenerationDefaults.model,
    revision: str | None = None,
    structured_backend: str = GenerationDefaults.structured_backend,
    episodes: int = 15,
    stm_slots: int = 3,
    max_turns: int = 4,
    cache: str | Path | None = None,
    cache_mode: str = "replay",
    seed: int = 0,
    parallel_episodes: int = 1,
    distractors: int = 0,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_query_chars: int = 200,
    max_thought_chars: int = 160,
    max_answer_chars: int = 300,
    max_argument_chars: int = 64,
    max_tokens: int = 512,
    no_exec: bool = False,
    no_stm: bool = False,
    no_ltm: bool = False,
    no_reflection: bool = False,
    templates: str | Path | None = None,
    base_url: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Explore the chosen APIs of a tools file into the stage directory `out`; returns the manifest."""
    from imaginarium.executor.cache import ResponseCache
    from imaginarium.executor.executor import Executor
    from imaginarium.generators.backends import open_backend
    from imaginarium.generators.explore import ExploreConfig, explore_stage
    from imaginarium.schemas.toolspec import read_tools

    if cache is None and cache_mode != "replay":
        raise InputError(f"--cache-mode {cache_mode} stores responses: give --cache FILE (created if absent)")
    specs = read_tools(tools)
    chosen = select_apis(specs, apis, apis_file, tools)
    config = ExploreConfig(
        episodes=episodes, stm_slots=stm_slots, max_turns=max_turns, seed=seed, parallel_episodes=parallel_episodes,
        temperature=temperature, top_p=top_p, max_query_chars=max_query_chars, max_thought_chars=max_thought_chars,
        max_answer_chars=max_answer_chars, max_argument_chars=max_argument_chars, max_tokens=max_tokens, no_exec=no_exec, no_stm=no_stm, no_ltm=no_ltm, no_reflection=no_reflection,
        distractors=nearest_tools(specs, chosen, distractors) if distractors else {},
    )
    generator = open_backend(backend, model, revision=revision, structured_backend=structured_backend,
                             base_url=base_url)
    response_cache = ResponseCache(cache) if cache is not None else None
    simulator = None
    if cache_mode == "simulate":
        from imaginarium.executor.simulate import Simulator

        simulator = Simulator(generator)
    try:
        executor = Executor(specs, response_cache, cache_mode, simulator=simulator)
        extra = {"cache": str(cache) if cache else None, "cache_mode": cache_mode}
        return explore_stage(out, tools, specs, chosen, generator, executor, config,
                             templates=str(templates) if templates else None, extra_config=extra, progress=progress)
    finally:
        if response_cache is not None:
            response_cache.close()


def select_apis(specs, apis: str | None, apis_file, tools_path) -> list[str]:
    """The APIs to explore: all tools, or those named (by name or source name)."""
    if apis and apis_file:
        raise InputError("give --apis or --apis-file, not both")
    if apis_file:
        path = Path(apis_file)
        if not path.is_file():
            raise InputError("no such file", where=str(path))
        text = path.read_text(encoding="utf-8")
        wanted = _names_from_text(text)
    elif apis:
        wanted = [a.strip() for a in apis.split(",") if a.strip()]
    else:
        return [spec.name for spec in specs]
    by_any = {spec.name: spec.name for spec in specs} | {spec.source_name: spec.name for spec in specs}
    missing = [w for w in wanted if w not in by_any]
    if missing:
        raise InputError(f"unknown API(s) {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}",
                         where=str(apis_file or tools_path))
    return list(dict.fromkeys(by_any[w] for w in wanted))


def _names_from_text(text: str) -> list[str]:
    """An APIs file is a JSON list of names (like the STE API_list.json) or one name per line."""
    import json

    stripped = text.strip()
    if stripped.startswith("["):
        return [str(name) for name in json.loads(stripped)]
    return [line.strip() for line in stripped.splitlines() if line.strip() and not line.startswith("#")]


def nearest_tools(specs, apis: list[str], k: int) -> dict[str, list[str]]:
    """For each API, the `k` other tools with the most similar descriptions (shown as distractors)."""
    from imaginarium.embeddings import embed, top_k

    texts = [f"{spec.name}: {spec.description}" for spec in specs]
    vectors = embed(texts)
    index = {spec.name: i for i, spec in enumerate(specs)}
    rows = [index[api] for api in apis]
    _, neighbours = top_k(vectors[rows], vectors, k + 1)
    result = {}
    for api, found in zip(apis, neighbours):
        result[api] = [specs[j].name for j in found if specs[j].name != api][:k]
    return result


@click.command("explore")
@click.option("--tools", required=True, type=click.Path(dir_okay=False, path_type=Path), help="tools.jsonl to explore.")
@click.option("--apis", help="Comma-separated API names (tool names or source names). Default: every tool.")
@click.option("--apis-file", type=click.Path(dir_okay=False, path_type=Path),
              help="File of API names: a JSON list (like STE's API_list.json) or one per line.")
@click.option("--backend", default=GenerationDefaults.backend, show_default=True, help="transformers | vllm | openai.")
@click.option("--model", default=GenerationDefaults.model, show_default=True,
              help="HF model id or local path ('tiny' = the embedded tiny model; for openai: the served model name).")
@click.option("--revision", help="Model revision (branch, tag or commit).")
@click.option("--base-url", help="openai backend: the server's address, e.g. http://127.0.0.1:8000/v1.")
@click.option("--structured-backend", default=GenerationDefaults.structured_backend, show_default=True,
              help="transformers backend: llguidance | outlines_core | xgrammar.")
@click.option("--episodes", type=int, default=15, show_default=True, help="Episodes per API.")
@click.option("--stm-slots", type=int, default=3, show_default=True, help="Trials per episode (short-term memory).")
@click.option("--max-turns", type=int, default=4, show_default=True, help="Most tool calls per trial.")
@click.option("--cache", type=click.Path(dir_okay=False, path_type=Path), help="Response cache (SQLite).")
@click.option("--cache-mode", type=click.Choice(["replay", "record", "simulate"]), default="replay", show_default=True,
              help="replay: cache only; record: live calls fill the cache; simulate: the model writes misses.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--parallel-episodes", type=int, default=1, show_default=True,
              help="Episodes of one API explored side by side (1 = every imagination sees all earlier queries).")
@click.option("--distractors", type=int, default=0, show_default=True,
              help="Also show the K tools with the nearest descriptions (embeddings) as distractors.")
@click.option("--temperature", type=float, default=1.0, show_default=True)
@click.option("--top-p", type=float, default=1.0, show_default=True)
@click.option("--max-query-chars", type=int, default=200, show_default=True, help="Longest imagined query.")
@click.option("--max-thought-chars", type=int, default=160, show_default=True, help="Longest thought before a step.")
@click.option("--max-answer-chars", type=int, default=300, show_default=True, help="Longest final answer.")
@click.option("--max-argument-chars", type=int, default=64, show_default=True,
              help="Longest free-text argument value (constrained decoders need a bound to terminate).")
@click.option("--max-tokens", type=int, default=512, show_default=True, help="Token budget of one generation step.")
@click.option("--no-exec", is_flag=True, help="Ablation: withhold execution feedback.")
@click.option("--no-stm", is_flag=True, help="Ablation: one trial per episode (no short-term memory).")
@click.option("--no-ltm", is_flag=True, help="Ablation: no long-term memory in the imagination prompt.")
@click.option("--no-reflection", is_flag=True, help="Ablation: label every trial successful.")
@click.option("--templates", type=click.Path(file_okay=False, path_type=Path),
              help="Folder overriding prompt templates (explore/system.j2, imagine.j2, reflect.j2, withheld.j2).")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Stage directory to write.")
def explore_command(**params: Any) -> None:
    """Explore APIs by simulated trial and error (STE) and write episode trials.

    For every API at once: imagine a query (seeing the queries already explored and whether each
    succeeded), call tools under their JSON Schemas, execute against the response cache, answer,
    and reflect. Finished trials are written as they come; an interrupted run resumes.

    \b
    Example:
      imaginarium explore --tools tools.jsonl --model tiny --episodes 2 --stm-slots 2 \\
          --cache cache.sqlite --cache-mode replay -o runs/explore
    """
    manifest = explore(**params)
    run = manifest.get("extra", {}).get("run", {})
    counts = manifest["counts"]
    click.echo(f"{counts['trials']} trials ({counts['succeeded']} judged successful by reflection) -> {params['out']}")
    if run:
        hits = f", {run['prefix_hit_share']:.0%} of prompt tokens from the prefix cache" if "prefix_hit_share" in run else ""
        click.echo(f"wall {run['wall_seconds']:.1f} s, {run['backend_share']:.0%} inside the backend, "
                   f"{run['prompt_tokens']} prompt + {run['completion_tokens']} completion tokens{hits}")
    for line in format_quality(manifest.get("extra", {}).get("quality", {})):
        click.echo(line)
