"""Exploration sharded over Ray actors (`explore --engine ray`, docs/scale.md).

A shard is a group of APIs: an API's episodes, its long-term memory and its cache writes belong
to it, so a shard needs nothing from another. Each actor holds one backend replica and one
executor (writing to a cache shard of its own) and runs the same `Explorer` as one process,
batching every trial of its APIs per round; it yields each round's finished trials, which the
driver appends to the stage directory. A shard dispatched again (its worker died) is handed the
trials already written for its APIs, from which the explorer rebuilds its memories exactly as a
resumed local run does, so nothing is redone twice and nothing is lost.

Why the output equals a local run's: every episode's kind is planned for the whole run by the
driver, every request's seed comes from its trial id, and generation is per request (a request's
tokens do not depend on what else is in its batch: tests/test_ray.py holds this).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

from imaginarium.engine import RayEngine
from imaginarium.generators.explore import ExploreConfig, Explorer, finish_exploration, plan_kinds
from imaginarium.schemas.toolspec import ToolSpec
from imaginarium.stage import StageWriter


class ExploreWorker:
    """One actor's part: a backend replica and an executor, exploring the shards it is given."""

    def __init__(self, tools: list[ToolSpec], config: ExploreConfig, distractors: dict[str, list[str]] | None,
                 neighbours: dict[str, list[str]] | None, episode_kinds: dict[str, str]):
        from imaginarium.executor.cache_shards import worker_shard
        from imaginarium.executor.options import open_executor
        from imaginarium.models.options import open_backend

        self.tools, self.config = tools, config
        self.distractors, self.neighbours, self.episode_kinds = distractors, neighbours, episode_kinds
        self.backend = open_backend(config.generation)
        self._executor = open_executor(tools, config.execution, simulator_backend=lambda: self.backend,
                                       cache_shard=worker_shard(config.execution.cache))
        self.executor = self._executor.__enter__()

    def run(self, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
        explorer = Explorer(self.tools, payload["apis"], self.backend, self.executor, self.config,
                            distractors=self.distractors, neighbours=self.neighbours, progress=False,
                            episode_kinds=self.episode_kinds)
        for records in explorer.rounds(payload["written"]):
            yield {"rows": records, "units": [record["trial_id"] for record in records]}
        yield {"stats": explorer.stats}

    def close(self) -> None:
        self._executor.__exit__(None, None, None)


def shard_apis(apis: list[str], replicas: int, size: int | None = None) -> dict[str, list[str]]:
    """APIs in shards of `size` (default: split evenly, one shard per replica), keyed by the
    shard's first API; order kept."""
    size = size or max(1, math.ceil(len(apis) / max(1, replicas)))
    return {apis[start]: apis[start:start + size] for start in range(0, len(apis), size)}


def explore_on_ray(writer: StageWriter, tools: list[ToolSpec], apis: list[str], config: ExploreConfig,
                   engine: RayEngine, *, distractors: dict[str, list[str]] | None = None,
                   neighbours: dict[str, list[str]] | None = None, progress: bool = True) -> dict[str, Any]:
    """Explore `apis` into `writer` on Ray; returns the finished stage's manifest."""
    from imaginarium.executor.cache_shards import merged_shards

    started = time.perf_counter()
    kinds = plan_kinds({tool.name: tool for tool in tools}, apis, config)
    with engine, writer:
        with merged_shards(config.execution.cache):
            shards = shard_apis(apis, engine.replica_count(), engine.options.shard_apis)
            written: dict[str, list[dict[str, Any]]] = {}  # api -> its trials written (a retry resumes from them)
            for row in writer.progress_rows():
                written.setdefault(row["api"], []).append(row)

            def payload(key: str) -> dict[str, Any]:
                return {"apis": shards[key], "written": [row for api in shards[key] for row in written.get(api, [])]}

            def append(_key: str, chunk: dict[str, Any]) -> None:
                writer.append(chunk["rows"], units=chunk["units"])
                for row in chunk["rows"]:
                    written.setdefault(row["api"], []).append(row)

            total = len(apis) * config.episodes * config.slots
            run = engine.run_shards(ExploreWorker, {"tools": tools, "config": config, "distractors": distractors,
                                                    "neighbours": neighbours, "episode_kinds": kinds},
                                    list(shards), payload, append, progress_label="trials" if progress else None,
                                    total_units=total - sum(map(len, written.values())))
        stats = _combined(run.stats, time.perf_counter() - started)
        stats.update(engine="ray", replicas=run.replicas, shards=run.shards, dispatches=run.dispatches,
                     worker_deaths=run.worker_deaths)
        return finish_exploration(writer, stats)


def _combined(stats: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    """The workers' figures summed; wall time is the driver's."""
    summed: dict[str, Any] = {}
    for part in stats:
        for key, value in part.items():
            if isinstance(value, (int, float)) and key not in ("backend_share", "prefix_hit_share"):
                summed[key] = summed.get(key, 0) + value
    summed["wall_seconds"] = round(wall, 3)
    summed["worker_seconds_max"] = round(max((part.get("wall_seconds", 0.0) for part in stats), default=0.0), 3)
    backend = summed.get("backend_seconds", 0.0)
    summed["backend_seconds"] = round(backend, 3)
    summed["backend_share"] = round(backend / wall, 4) if wall else 0.0
    if "prompt_tokens_computed" in summed:
        reused, computed = summed.get("prefix_reused_tokens", 0), summed["prompt_tokens_computed"]
        summed["prefix_hit_share"] = round(reused / (reused + computed), 4) if reused + computed else 0.0
    return summed
