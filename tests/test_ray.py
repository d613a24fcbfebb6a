"""`--engine ray`: explore, rank, the filter's judge, augment and dedupe on a real local Ray cluster.

The tests start one cluster on this machine (2 CPUs, a small object store) for the module and
hold every Ray run to the local run of the same seed with the tiny model: the same trial keys
and records (tool latencies aside). One run has a worker killed (SIGKILL) after its first
chunk: its shard is dispatched again to a fresh actor and nothing is lost or written twice.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

from imaginarium.engine import EngineOptions, RayEngine
from imaginarium.executor.cache import ResponseCache, import_cache
from imaginarium.executor.cache_shards import shard_dir
from imaginarium.schemas.importers import import_files
from imaginarium.stage import read_manifest, read_rows

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[1]
TOOLSET = ROOT / "recipes" / "example_toolset"
DATA = Path(__file__).parent / "data"
APIS = ["add_date", "calculator", "get_current_weather", "get_exchange_rate"]
EXPLORE = dict(max_query_chars=24, max_thought_chars=12, max_answer_chars=24, max_argument_chars=12, max_tokens=96,
               episodes=2, stm_slots=2, max_turns=2, apis=APIS, backend="transformers")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    temp = Path("/tmp") / f"rt{os.getpid()}"  # unix socket paths must stay under 107 bytes
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=150 * 2**20,
             log_to_driver=False, _temp_dir=str(temp))
    yield ray
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def toolset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toolset")
    tools, _ = import_files([TOOLSET / "python_tools.json", TOOLSET / "openapi.yaml"])
    tools_path = folder / "tools.jsonl"
    tools_path.write_text("".join(t.to_json() + "\n" for t in tools))
    import_cache(TOOLSET / "cache.jsonl", folder / "cache.sqlite")
    return tools_path, folder / "cache.sqlite"


def comparable(row: dict) -> dict:
    """A record without what differs between any two runs: tool latencies."""
    row = json.loads(json.dumps(row, default=str))
    for step in row.get("steps") or []:
        if step.get("observation"):
            observation = json.loads(step["observation"])
            observation.pop("latency_ms", None)
            step["observation"] = observation
    return row


def by_id(directory: Path, key: str = "trial_id") -> dict[str, dict]:
    rows = read_rows(directory)
    ids = [row[key] for row in rows]
    assert len(ids) == len(set(ids)), "a unit was written twice"
    return {row[key]: comparable(row) for row in rows}


def explore_run(out: Path, toolset, tiny_model, *, ray_engine=None, cache_mode="replay", cache=None, **options):
    from imaginarium.generators.explore import ExploreConfig, explore

    tools_path, shared_cache = toolset
    config = ExploreConfig.from_flat(dict(EXPLORE, model=str(tiny_model), cache=str(cache or shared_cache),
                                          cache_mode=cache_mode, **options))
    return explore(tools_path, out, config, progress=False, ray_engine=ray_engine)


@pytest.fixture(scope="module")
def local_explore(tmp_path_factory, toolset, tiny_model):
    out = tmp_path_factory.mktemp("local") / "explore"
    explore_run(out, toolset, tiny_model)
    return out


def test_explore_on_ray_writes_what_a_local_run_writes(tmp_path, cluster, toolset, tiny_model, local_explore):
    manifest = explore_run(tmp_path / "explore", toolset, tiny_model, engine="ray", replicas=2, shard_apis=1)
    assert by_id(tmp_path / "explore") == by_id(local_explore)
    assert manifest["fingerprint"] == read_manifest(local_explore)["fingerprint"]
    run = manifest["extra"]["run"]
    assert run["engine"] == "ray" and run["replicas"] == 2 and run["shards"] == 4 and run["worker_deaths"] == 0
    assert run["trials"] == len(APIS) * 2 * 2 and run["completion_tokens"] > 0
    # a finished run is a no-op, on either engine
    assert explore_run(tmp_path / "explore", toolset, tiny_model)["created_at"] == manifest["created_at"]


def test_a_killed_worker_loses_and_duplicates_nothing(tmp_path, cluster, toolset, tiny_model, local_explore):
    engine = RayEngine(EngineOptions(engine="ray", replicas=2, shard_apis=2))
    killed: list[int] = []

    def kill_after_first_chunk(key: str, chunk: dict) -> None:
        if not killed and "rows" in chunk:
            pid = engine.running[key]  # the worker of this shard, which has more rounds to go
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    engine.after_chunk = kill_after_first_chunk
    manifest = explore_run(tmp_path / "explore", toolset, tiny_model, ray_engine=engine)
    assert killed
    run = manifest["extra"]["run"]
    assert run["worker_deaths"] >= 1 and run["dispatches"] > run["shards"]
    assert by_id(tmp_path / "explore") == by_id(local_explore)


class DriverStopped(Exception):
    pass


def test_a_stopped_driver_resumes_and_redoes_nothing(tmp_path, cluster, toolset, tiny_model, local_explore):
    """The driver writes as a local run does: after the driver itself stops mid-run, a re-run
    (on Ray or locally) skips every finished unit and writes the rest, each once."""
    def stop(key: str, chunk: dict) -> None:
        if "rows" in chunk:
            raise DriverStopped

    with pytest.raises(DriverStopped):
        explore_run(tmp_path / "explore", toolset, tiny_model,
                    ray_engine=RayEngine(EngineOptions(engine="ray", replicas=1), after_chunk=stop))
    partial = {row["trial_id"] for row in read_rows(tmp_path / "explore")} if (tmp_path / "explore" / "data").exists() else set()
    assert not (tmp_path / "explore" / "manifest.json").exists()
    manifest = explore_run(tmp_path / "explore", toolset, tiny_model, engine="ray", replicas=2)
    assert manifest["extra"]["run"]["trials"] == len(APIS) * 4 - len(partial)
    assert by_id(tmp_path / "explore") == by_id(local_explore)


def test_simulated_responses_reach_the_cache_from_every_worker(tmp_path, cluster, toolset, tiny_model):
    """Each worker writes what it simulates to a shard of its own; the driver merges them: the
    cache holds what a local run's cache holds, and no shard is left behind."""
    seeded = toolset[1]
    caches = {name: tmp_path / name / "cache.sqlite" for name in ("local", "ray")}
    for cache in caches.values():
        cache.parent.mkdir()
        shutil.copy(seeded, cache)
    options = dict(cache_mode="simulate", apis=["get_current_weather", "get_exchange_rate"])
    explore_run(tmp_path / "local" / "explore", toolset, tiny_model, cache=caches["local"], **options)
    explore_run(tmp_path / "ray" / "explore", toolset, tiny_model, cache=caches["ray"], engine="ray", replicas=2,
                shard_apis=1, **options)

    def entries(path):
        with ResponseCache(path) as cache:
            return {(r["tool"], r["args_hash"], r["response"], r["source"]) for r in cache.rows()}

    local, ray_side = entries(caches["local"]), entries(caches["ray"])
    assert local == ray_side and sum(source == "simulated" for *_, source in local) > 0
    assert not shard_dir(caches["ray"]).exists()
    assert by_id(tmp_path / "ray" / "explore") == by_id(tmp_path / "local" / "explore")


def test_rank_on_ray_ranks_as_a_local_run(tmp_path, cluster, tiny_model):
    from imaginarium.trice.rank import RankConfig, rank

    options = dict(candidates=2, min_calls=1, max_turns=1, max_thought_chars=8, max_answer_chars=12,
                   max_argument_chars=16, max_tokens=64, batch_size=4, model=str(tiny_model))
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join((DATA / "trice_math.jsonl").read_text().splitlines(keepends=True)[:8]))
    local = rank(questions, tmp_path / "local", RankConfig.from_flat(options), progress=False)
    on_ray = rank(questions, tmp_path / "ray", RankConfig.from_flat(dict(options, engine="ray", replicas=2)),
                  progress=False)
    assert on_ray["ranking"]["fingerprint"] == local["ranking"]["fingerprint"]
    for stage in ("ranking", "preference", "sft"):
        assert read_rows(tmp_path / "ray" / stage) == read_rows(tmp_path / "local" / stage), stage


def test_filter_judge_and_dedupe_on_ray_keep_what_a_local_run_keeps(tmp_path, cluster, tiny_model, local_explore):
    from imaginarium.filters.filter import FilterConfig, filter_stage

    options = dict(model=str(tiny_model), max_tokens=96, batch_size=5, simulated_ok=True)
    local = filter_stage(local_explore, tmp_path / "local", FilterConfig.from_flat(options), progress=False)
    on_ray = filter_stage(local_explore, tmp_path / "ray",
                          FilterConfig.from_flat(dict(options, engine="ray", replicas=2)), progress=False)
    assert on_ray["fingerprint"] == local["fingerprint"]
    assert on_ray["extra"]["funnel"] == local["extra"]["funnel"]
    assert "judge" in json.dumps(local["extra"]["funnel"])
    assert read_rows(tmp_path / "ray") == read_rows(tmp_path / "local")
    for name in ("dropped.parquet", "funnel.json"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def test_augment_on_ray_paraphrases_as_a_local_run(tmp_path, cluster, tiny_model):
    from imaginarium.generators.augment import AugmentConfig, augment
    from imaginarium.schemas.records import arrow_schema
    from imaginarium.stage import write_stage

    queries = ["What is the weather in Oslo today?", "Is it raining in Lima?", "Convert 10 USD to EUR",
               "What is 17 times 23?", "Add 3 days to 2024-02-27"]
    seeds = [{"trial_id": f"t{i}", "api": "calc" if i % 2 else "weather", "episode": i, "slot": 0, "query": q,
              "tools_shown": [], "steps": [], "final_answer": "ok", "succeeded": True, "reflection": "yes",
              "model": "m", "backend": "b", "seed": 0} for i, q in enumerate(queries)]
    write_stage(tmp_path / "kept", "filter", {}, {}, seeds, schema=arrow_schema("episode_trial"))
    options = dict(target_per_api=6, max_paraphrases=2, max_query_chars=32, model=str(tiny_model), batch_size=2)
    local = augment(tmp_path / "kept", tmp_path / "local", AugmentConfig.from_flat(options), progress=False)
    on_ray = augment(tmp_path / "kept", tmp_path / "ray", AugmentConfig.from_flat(dict(options, engine="ray")),
                     progress=False)
    assert on_ray["counts"] == local["counts"] and local["counts"]["paraphrases_generated"] > 0
    assert read_rows(tmp_path / "ray") == read_rows(tmp_path / "local")


def test_dedupe_on_ray_data_equals_dedupe_here(cluster):
    from imaginarium.embeddings import embed
    from imaginarium.filters.dedupe import dedupe

    texts = ["What is the weather in Oslo today?", "what's the weather in Oslo today", "Weather in Oslo today?",
             "Is it raining in Lima?", "Will it rain in Lima tomorrow?", "Convert 10 USD to EUR",
             "Convert ten USD into EUR please", "How much is 10 USD in EUR?", "What is 17 times 23?"] * 3
    rows = [{"trial_id": f"r{i}", "api": ["weather", "money", "calc"][i % 3], "query": text, "succeeded": i % 2 == 0}
            for i, text in enumerate(texts)]
    engine = RayEngine(EngineOptions(engine="ray", replicas=2))
    vectors = engine.embed(texts)
    assert vectors.shape == (len(texts), 384)
    assert np.allclose(vectors, embed(texts), atol=1e-5)
    here = dedupe(rows, threshold=0.8)
    there = dedupe(rows, threshold=0.8, embed_texts=engine.embed, map_groups=engine.map_batched)
    assert there == here and len(here[1]) > 0


def test_explore_cli_on_ray(tmp_path, cluster, toolset, tiny_model, run):
    tools_path, cache = toolset
    code, out, err = run("explore", "--tools", str(tools_path), "-o", str(tmp_path / "out"), "--apis", "calculator",
                         "--episodes", "1", "--stm-slots", "1", "--max-turns", "1", "--max-tokens", "64",
                         "--model", str(tiny_model), "--backend", "transformers", "--cache", str(cache),
                         "--engine", "ray", "--replicas", "1")
    assert code == 0, err
    assert "1 trials" in out and "ray: 1 replicas, 1 shards, 0 worker deaths survived" in out
    assert read_manifest(tmp_path / "out")["extra"]["run"]["engine"] == "ray"


def test_an_unreachable_cluster_is_one_line_and_writes_nothing(tmp_path, toolset):
    import subprocess
    import sys

    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "imaginarium.cli", "explore", "--tools", str(toolset[0]), "-o", str(out),
         "--engine", "ray", "--ray-address", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == ["error: --ray-address: cannot reach the Ray cluster at 127.0.0.1:1 "
                                                  "(Connection refused)"]
    assert not out.exists()


def test_a_worker_cache_reads_the_shared_file_and_writes_only_its_shard(tmp_path):
    from imaginarium.executor.cache import CacheEntry
    from imaginarium.executor.cache_shards import OverlayCache, merge_shards

    main = tmp_path / "cache.sqlite"
    with ResponseCache(main) as cache:
        cache.put_many([CacheEntry("weather", {"city": "Oslo"}, "3 degrees"),
                        CacheEntry("weather", {"city": "Lima"}, "simulated 20", source="simulated")])
    before = main.read_bytes()
    shards = shard_dir(main)
    workers = [OverlayCache(main, shards / f"w{i}.sqlite") for i in range(2)]
    assert workers[0].get("weather", {"city": "Oslo"}).response == "3 degrees"
    workers[0].put(CacheEntry("weather", {"city": "Rome"}, "18 degrees"))
    workers[1].put(CacheEntry("weather", {"city": "Lima"}, "21 degrees"))  # real replaces simulated
    workers[1].put(CacheEntry("weather", {"city": "Oslo"}, "simulated 9", source="simulated"))  # never replaces real
    assert workers[1].get("weather", {"city": "Lima"}).response == "21 degrees"
    assert workers[1].get("weather", {"city": "Oslo"}).response == "3 degrees"
    assert workers[0].get("weather", {"city": "Lima"}).response == "simulated 20"  # not its shard
    assert [e.response for e in workers[0].examples("weather", 5)] == ["3 degrees", "18 degrees"]
    for worker in workers:
        worker.close()
    assert main.read_bytes() == before  # the workers never wrote the shared file
    (shards / "killed.sqlite").touch()  # a worker killed while creating its shard
    assert merge_shards(main) == 3
    assert not shards.exists()
    with ResponseCache(main) as cache:
        merged = {r["arguments"]: (r["response"], r["source"]) for r in cache.rows()}
    assert merged == {'{"city":"Oslo"}': ("3 degrees", "real"), '{"city":"Lima"}': ("21 degrees", "real"),
                      '{"city":"Rome"}': ("18 degrees", "real")}


def test_a_stage_stopped_by_bad_input_before_any_unit_leaves_nothing(tmp_path):
    from imaginarium.errors import InputError
    from imaginarium.stage import StageWriter

    writer = StageWriter(tmp_path / "out" / "ranking", "rank", {}, {})  # rank writes OUT/ranking
    with pytest.raises(InputError), writer:
        raise InputError("the model cannot be loaded")
    assert not (tmp_path / "out").exists()
    writer = StageWriter(tmp_path / "out", "explore", {}, {})
    with pytest.raises(InputError), writer:  # after a unit, the unit is kept for the re-run
        writer.append([{"a": 1}], units=["u1"])
        raise InputError("a later batch is bad")
    assert writer.finished_units() == {"u1"}


def test_replicas_the_cluster_cannot_hold_are_one_line(cluster):
    from imaginarium.errors import InputError

    with pytest.raises(InputError, match="3 replicas x --cpus-per-replica 1 need 3 CPUs; the cluster has 2"):
        RayEngine(EngineOptions(engine="ray", replicas=3)).replica_count()
    with pytest.raises(InputError, match="need 1 GPUs; the cluster has 0"):
        RayEngine(EngineOptions(engine="ray", gpus_per_replica=1)).replica_count()
    assert RayEngine(EngineOptions(engine="ray")).replica_count() == 2  # one per CPU
    assert RayEngine(EngineOptions(engine="ray", cpus_per_replica=2)).replica_count() == 1


def test_without_ray_installed_the_engine_is_one_line(monkeypatch):
    import sys

    from imaginarium.engine import open_engine
    from imaginarium.errors import InputError

    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray imports
    with pytest.raises(InputError, match=r"pip install 'imaginarium\[ray\]'"):
        open_engine(EngineOptions(engine="ray"))
    assert open_engine(EngineOptions()) is None  # the local engine needs no Ray
