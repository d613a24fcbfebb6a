"""The augment stage: paraphrase kept queries up to a target per API, then dedupe again.

As in STE: with `kept` seed queries for an API and a target of `target` rows, each seed gets
`min(round(target / kept) - 1, max_paraphrases)` paraphrases. A paraphrase is a new row that
copies its seed's calls, observations and answer, with `paraphrase_of` set to the seed query
and trial id `<seed trial id>/p<k>`. Afterwards seeds and paraphrases go through exact and
semantic dedupe together, so paraphrases differ from each other and from their seed (a seed is
always preferred over its paraphrases).

All seeds' requests go to the backend together, in batches; each batch is appended durably
(unit = seed trial id), so an interrupted run resumes without paraphrasing a seed twice.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import Field

from imaginarium.card_facts import CardFacts
from imaginarium.engine import EngineOptions, RayEngine, open_engine
from imaginarium.filters.dedupe import PARAPHRASE_THRESHOLD, DedupeOptions
from imaginarium.generators.queries import query_constraint, unframed_query
from imaginarium.models.backend import Backend, GenerationRequest
from imaginarium.models.options import GenerationOptions, open_backend
from imaginarium.options import Options
from imaginarium.progress import batches
from imaginarium.prompts import Prompts
from imaginarium.schemas.records import arrow_schema
from imaginarium.stage import StageWriter

TEMPLATES = Path(__file__).parent / "templates"


def _paraphrase_generation() -> GenerationOptions:
    # Paraphrases: one line each, sampled warm so that the wording varies.
    return GenerationOptions(temperature=0.9, max_tokens=96)


class AugmentConfig(Options):
    """How many paraphrases and how long (the stage fingerprint, apart from addresses and keys)."""

    generation: GenerationOptions = Field(default_factory=_paraphrase_generation)
    dedupe: DedupeOptions = Field(default_factory=DedupeOptions)
    scale: EngineOptions = Field(default_factory=EngineOptions)
    target_per_api: int = Field(150, ge=1, le=10_000_000, description="Rows wanted per API.")
    max_paraphrases: int = Field(6, ge=0, le=1000, description="Most paraphrases of one query.")
    max_query_chars: int = Field(200, ge=16, le=10_000, description="Longest paraphrase.")
    batch_size: int = Field(64, ge=1, le=100_000, description="Seed queries per backend call and checkpoint.")
    templates: Path | None = Field(None, json_schema_extra={"fingerprint": False, "exists": True},
                                   description="Folder overriding the prompt template paraphrase/request.j2.")


def paraphrase_count(target: int, kept: int, max_paraphrases: int) -> int:
    """Paraphrases per seed query, as the STE paper computes them."""
    if kept <= 0:
        return 0
    return max(0, min(round(target / kept) - 1, max_paraphrases))


class Paraphraser:
    """Builds paraphrase requests and turns completions into paraphrase rows.

    One request per seed, sampled `count` times with per-sample seeds: each paraphrase is one
    line of plain text under the same constraint as an imagined query (generators/queries.py),
    since small models asked for a JSON list of strings drift into code.
    """

    def __init__(self, backend: Backend, config: AugmentConfig):
        self.backend = backend
        self.config = config
        self.prompts = Prompts(TEMPLATES, "paraphrase", config.templates)

    def request(self, seed: dict[str, Any], count: int) -> GenerationRequest:
        prompt = self.prompts.render("request", query=seed["query"], count=count)
        sampling = self.config.generation
        digest = hashlib.sha256(f"{sampling.seed}/{seed['trial_id']}".encode()).hexdigest()
        return GenerationRequest(
            messages=[{"role": "user", "content": prompt}], n=count,
            constraint=query_constraint(self.config.max_query_chars),
            max_tokens=sampling.max_tokens, temperature=sampling.temperature, top_p=sampling.top_p,
            seed=int(digest[:8], 16),
        )

    def rows(self, seeds: Sequence[dict[str, Any]], counts: list[int]) -> list[dict[str, Any]]:
        """Seeds followed by their paraphrases (samples that failed are left out)."""
        asked = [(s, n) for s, n in zip(seeds, counts) if n > 0]
        completions = self.backend.generate([self.request(s, n) for s, n in asked]) if asked else []
        paraphrases: dict[str, list[str]] = {}
        for completion in completions:
            seed = asked[completion.request_index][0]
            if completion.ok:
                paraphrases.setdefault(seed["trial_id"], []).append(unframed_query(completion.value))
        out = []
        for seed in seeds:
            out.append(seed)
            for k, text in enumerate(paraphrases.get(seed["trial_id"], [])):
                out.append(dict(seed, trial_id=f"{seed['trial_id']}/p{k}", query=text, paraphrase_of=seed["query"]))
        return out


class ParaphraseWorker:
    """A Ray actor's part in `augment --engine ray`: a backend replica paraphrasing batches of seeds."""

    def __init__(self, config: AugmentConfig, counts: dict[str, int]):
        self.paraphraser = Paraphraser(open_backend(config.generation), config)
        self.counts = counts

    def run(self, seeds: list[dict[str, Any]]):
        rows = self.paraphraser.rows(seeds, [self.counts[s["trial_id"]] for s in seeds])
        yield {"rows": rows, "units": [s["trial_id"] for s in seeds]}


def augment(trials: str | Path, out: str | Path, config: AugmentConfig | None = None, *,
            backend: Backend | None = None, progress: bool = True, ray_engine: RayEngine | None = None) -> dict[str, Any]:
    """Paraphrase the kept queries of `trials` up to a target per API, then dedupe again.

    Paraphrases per query = min(round(target / kept) - 1, max_paraphrases), as in STE; each
    paraphrase copies its seed's calls, observations and answer and records `paraphrase_of`.

    Args:
        trials: a stage directory of kept episode trials (filter output).
        out: the stage directory to write.
        config: the settings (default: `AugmentConfig()`).
        backend: the paraphrasing backend, if already open (default: opened from `config.generation`).
        progress: show progress bars.
        ray_engine: paraphrase (and embed for dedupe) on Ray with this engine (default: as
            `config.scale` says; docs/scale.md).

    Returns:
        The stage manifest (seeds, paraphrases generated and kept, duplicates dropped).

    Raises:
        InputError: `trials` is not a finished stage directory.

    Example:
        >>> from imaginarium import augment, AugmentConfig
        >>> manifest = augment("runs/filter", "runs/augment", AugmentConfig(target_per_api=20))
    """
    from imaginarium.stage import read_rows

    config = config or AugmentConfig()
    inputs = {"trials": trials, **({"templates": config.templates} if config.templates else {})}
    writer = StageWriter(Path(out), "augment", {"augment": config.fingerprint()}, inputs,
                         schema=arrow_schema("episode_trial"))
    if writer.done:
        return writer.manifest or {}
    seeds = read_rows(trials)
    engine = open_engine(config.scale, ray_engine) if backend is None else None
    with writer:
        if engine is not None:
            with engine:
                return augment_trials(writer, seeds, config, None, config.dedupe.step(PARAPHRASE_THRESHOLD, engine),
                                      progress, engine=engine)
        paraphraser = Paraphraser(backend or open_backend(config.generation), config)
        return augment_trials(writer, seeds, config, paraphraser, config.dedupe.step(PARAPHRASE_THRESHOLD), progress)


def augment_trials(writer: StageWriter, seeds: list[dict[str, Any]], config: AugmentConfig,
                   paraphraser: Paraphraser | None, dedupe: Callable | None, progress: bool = False, *,
                   engine: RayEngine | None = None) -> dict[str, Any]:
    """Paraphrase every seed (resuming finished batches), dedupe, and finish; returns the manifest.

    With `engine`, the batches go to Ray actors (`ParaphraseWorker`) instead of `paraphraser`."""
    kept_per_api = Counter(s["api"] for s in seeds)
    counts = {s["trial_id"]: paraphrase_count(config.target_per_api, kept_per_api[s["api"]], config.max_paraphrases)
              for s in seeds}
    if engine is not None:
        engine.run_batches(writer, ParaphraseWorker, {"config": config, "counts": counts}, seeds, config.batch_size,
                           lambda seed: seed["trial_id"], label="paraphrasing" if progress else None)
    else:
        assert paraphraser is not None
        done = writer.finished_units()
        pending = [s for s in seeds if s["trial_id"] not in done]
        for batch in batches(pending, config.batch_size, "paraphrasing", progress):
            writer.append(paraphraser.rows(batch, [counts[s["trial_id"]] for s in batch]),
                          units=[s["trial_id"] for s in batch])

    rows = sorted(writer.progress_rows(), key=lambda r: (r["api"], r["trial_id"]))
    facts = CardFacts.read(writer.inputs.get("trials")).carried()
    generated = sum(r["paraphrase_of"] is not None for r in rows)
    duplicates: list = []
    if dedupe is not None and rows:
        rows, duplicates = dedupe(rows)
    kept = pa.Table.from_pylist(rows, schema=arrow_schema("episode_trial"))
    per_api = Counter(r["api"] for r in rows)
    return writer.finish(
        transform=lambda _: kept,
        counts={"seeds": len(seeds), "paraphrases_generated": generated,
                "paraphrases_kept": sum(r["paraphrase_of"] is not None for r in rows),
                "duplicates_dropped": len(duplicates), "per_api": dict(sorted(per_api.items()))},
        extra={"paraphrases_per_seed": {api: paraphrase_count(config.target_per_api, n, config.max_paraphrases)
                                        for api, n in sorted(kept_per_api.items())},
               "dropped": [{"trial_id": r["trial_id"], "reason": reason} for r, reason in duplicates][:1000],
               **facts.extra()},
        files=facts.files(),
    )
