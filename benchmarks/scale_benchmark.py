"""Exploration trials/s: one process (`--engine local`) vs Ray actors (`--engine ray`), 1..N replicas.

Same model, settings, APIs and seed for every run (the records are the same: tests/test_ray.py);
only where the work runs differs:
- local-tK: this process, K torch threads;
- ray-rN: a local Ray cluster of `--cpus` CPUs, N actors of `--cpus-per-replica` CPUs each, one
  backend replica per actor, the APIs split evenly over them (one shard per replica).

Each Ray run reports its wall time as the driver sees it (cluster already started: joining it
is not counted, starting the actors and loading a replica per actor is) and the longest time a
worker spent exploring, so the overhead splits into start-up and the rest.

On a GPU (`--device cuda`), `--shape llama-3-8b` explores with a random-initialised model of
that shape in bf16 (no download: the weights are random, the timings real; the project's tiny
tokenizer), and `--gpus-per-replica 0.5` puts two replicas on one GPU.

`--sequential` adds the STE loop's shape (the APIs one after another, one trial in flight) for
the batched-vs-sequential ratio on the same device.

Run: .venv/bin/python benchmarks/scale_benchmark.py [--model smollm2-135m] [--apis 8] [--replicas 1,2]
On a GPU: ... --shape llama-3-8b --threads 1 --sequential --replicas 1,2,4 --gpus-per-replica 0.25
Writes benchmarks/results/scale-<model>.json; the last line printed is the summary as one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from imaginarium.engine import EngineOptions, RayEngine
from imaginarium.generators.explore import ExploreConfig, explore
from imaginarium.models.options import DEFAULT_MODEL
from imaginarium.schemas.importers import import_file

ROOT = Path(__file__).resolve().parents[1]
STE = ROOT.parent / "shared" / "datasets" / "ste" / "tool_metadata"
SETTINGS = dict(episodes=1, stm_slots=2, max_turns=2, max_query_chars=100, max_thought_chars=48,
                max_answer_chars=96, max_argument_chars=32, max_tokens=128, temperature=0.5, top_p=0.9,
                backend="transformers")
# Shapes of real models, for random-initialised stand-ins on a GPU (config.json fields).
SHAPES = {
    "llama-3-8b": dict(model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                       rope_theta=500000.0, rms_norm_eps=1e-5),
}


def random_model(shape: str, folder: Path, layers: int | None) -> str:
    """A random-initialised model of `shape` (bf16) with the tiny model's tokenizer, saved to `folder`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from imaginarium.models.tiny import build_tiny_model

    tiny = build_tiny_model(folder / "tiny", seed=0)
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    fields = dict(SHAPES[shape], vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, dtype="bfloat16")
    if layers:
        fields["num_hidden_layers"] = layers
    config = AutoConfig.for_model(**fields)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    path = folder / shape
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def run(name: str, tools_path: Path, workdir: Path, config: ExploreConfig, engine: RayEngine | None) -> dict:
    started = time.perf_counter()
    manifest = explore(tools_path, workdir / name, config, progress=False, ray_engine=engine)
    wall = time.perf_counter() - started
    run = manifest["extra"]["run"]
    trials = manifest["counts"]["trials"]
    result = {"trials": trials, "wall_seconds": round(wall, 2), "trials_per_second": round(trials / wall, 4),
              "backend_seconds": run["backend_seconds"], "completion_tokens": run["completion_tokens"]}
    if engine is not None:
        result.update(replicas=run["replicas"], shards=run["shards"], worker_deaths=run["worker_deaths"],
                      longest_worker_seconds=run["worker_seconds_max"],
                      startup_seconds=round(wall - run["worker_seconds_max"], 2))
    print(name, json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model name or path [default: %(default)s]")
    parser.add_argument("--shape", choices=sorted(SHAPES), help="explore with a random-initialised model of this shape")
    parser.add_argument("--layers", type=int, help="with --shape: fewer layers (a smoke test on CPU)")
    parser.add_argument("--apis", type=int, default=8, help="the first N of the 50 STE APIs [default: 8]")
    parser.add_argument("--replicas", default="1,2", help="Ray replica counts to run [default: 1,2]")
    parser.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray cluster")
    parser.add_argument("--cpus-per-replica", type=float, default=1.0)
    parser.add_argument("--gpus-per-replica", type=float, help="GPUs per replica (a GPU machine)")
    parser.add_argument("--threads", default="1,2", help="torch threads of the local runs [default: 1,2]")
    parser.add_argument("--sequential", action="store_true",
                        help="also the STE loop: one API at a time, one request per backend call (local)")
    parser.add_argument("--out", type=Path, help="results file [default: benchmarks/results/scale-<model>.json]")
    args = parser.parse_args()
    import ray
    import torch

    tools = import_file(STE / "API_descriptions.json", "toolbench")
    by_source = {t.source_name: t.name for t in tools}
    apis = [by_source[name] for name in json.loads((STE / "API_list.json").read_text())][: args.apis]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model = random_model(args.shape, workdir, args.layers) if args.shape else args.model
        tools_path = workdir / "tools.jsonl"
        tools_path.write_text("".join(t.to_json() + "\n" for t in tools))
        config = ExploreConfig.from_flat(dict(SETTINGS, apis=apis, model=model))
        default_threads = torch.get_num_threads()
        for threads in [int(t) for t in args.threads.split(",") if t]:
            torch.set_num_threads(threads)
            results[f"local-t{threads}"] = run(f"local-t{threads}", tools_path, workdir, config, None)
        if args.sequential:  # the reference shape: the APIs one after another, one trial in flight
            started = time.perf_counter()
            trials = 0
            for index, api in enumerate(apis):
                manifest = explore(tools_path, workdir / f"sequential-{index}",
                                   config.model_copy(update={"apis": [api]}), progress=False)
                trials += manifest["counts"]["trials"]
            wall = time.perf_counter() - started
            results["local-sequential"] = {"trials": trials, "wall_seconds": round(wall, 2),
                                           "trials_per_second": round(trials / wall, 4)}
            print("local-sequential", json.dumps(results["local-sequential"]), flush=True)
        torch.set_num_threads(default_threads)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # the local runs' replica must leave the GPU to the actors
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
                 _temp_dir=f"/tmp/rs{os.getpid()}")
        try:
            for replicas in [int(r) for r in args.replicas.split(",") if r]:
                engine = RayEngine(EngineOptions(engine="ray", replicas=replicas, cpus_per_replica=args.cpus_per_replica,
                                                 gpus_per_replica=args.gpus_per_replica))
                results[f"ray-r{replicas}"] = run(f"ray-r{replicas}", tools_path, workdir, config, engine)
        finally:
            ray.shutdown()
    summary: dict[str, float] = {f"trials_per_s_{name}": r["trials_per_second"] for name, r in results.items()}
    if "local-sequential" in results and "local-t1" in results:
        summary["batched_vs_sequential"] = round(
            results["local-t1"]["trials_per_second"] / results["local-sequential"]["trials_per_second"], 2)
    if "local-t1" in results and "ray-r1" in results:
        summary["ray_overhead_at_one_replica"] = round(
            results["ray-r1"]["wall_seconds"] / results["local-t1"]["wall_seconds"] - 1, 4)
    result = {"model": args.shape or args.model, "device": "cuda" if torch.cuda.is_available() else "cpu",
              "cpus": args.cpus, "cpus_per_replica": args.cpus_per_replica, "settings": SETTINGS, "apis": len(apis),
              "load_average": os.getloadavg(), "ray": ray.__version__, "runs": results, **summary}
    out = args.out or ROOT / "benchmarks" / "results" / f"scale-{Path(args.shape or args.model).name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
