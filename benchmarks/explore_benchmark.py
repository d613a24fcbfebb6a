"""Batched exploration vs the STE reference shape (one API, one trial, one call at a time).

Same backend (transformers, the embedded tiny model on CPU), same executor, same settings; the
only difference is what is in flight at once:
- sequential: the APIs one after another, one episode at a time: every backend call carries one
  request, as in the STE reference implementation (by default on the same 50 APIs);
- batched: every API at once (and `parallel_episodes` episodes of each), every round's steps in
  one backend call.
Trials/s is a rate, so the sequential run may cover a subset of the APIs (`N`: the first N).
Each run also reports where its time went, in milliseconds per trial: the backend's row-by-row
prompt prefill, its forward passes while decoding, the rest of the backend (masking, sampling,
tokenising, upkeep) and the explorer outside the backend.

Run: TORCHDYNAMO_DISABLE=1 .venv/bin/python benchmarks/explore_benchmark.py [N]
Writes benchmarks/results/explore.json.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

import torch  # noqa: E402

# One torch thread in both runs: on this shared 2-core machine, two threads per small op slow the
# tiny model's steps 4-5x whenever other work is running (docs/generation.md).
torch.set_num_threads(1)

from imaginarium.executor.executor import Executor  # noqa: E402
from imaginarium.generators.backends import make_backend  # noqa: E402
from imaginarium.generators.explore import ExploreConfig, explore_stage  # noqa: E402
from imaginarium.schemas.importers import import_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STE = ROOT.parent / "shared" / "datasets" / "ste" / "tool_metadata"
RESULTS = ROOT / "benchmarks" / "results" / "explore.json"
SETTINGS = dict(episodes=2, stm_slots=2, max_turns=2, max_query_chars=48, max_thought_chars=24,
                max_answer_chars=48, max_argument_chars=16, max_tokens=128)


def run(tools, apis, *, sequential: bool, workdir: Path) -> dict:
    backend = make_backend("transformers", "tiny")
    executor = Executor(tools, None, "replay")  # RapidAPI is offline: a miss is an error observation
    config = ExploreConfig(parallel_episodes=1 if sequential else 2, **SETTINGS)
    groups = [[api] for api in apis] if sequential else [apis]
    start = time.perf_counter()
    trials = 0
    for index, group in enumerate(groups):
        manifest = explore_stage(workdir / f"run-{index}", workdir.parent / "tools.jsonl", tools, group, backend,
                                 executor, config, progress=False)
        trials += manifest["counts"]["trials"]
    wall = time.perf_counter() - start
    stats = backend.stats
    prefill, forward = stats.extra["prefill_seconds"], stats.extra["decode_forward_seconds"]
    split = {"prefill": prefill, "decode_forward": forward, "backend_rest": stats.seconds - prefill - forward,
             "outside_backend": wall - stats.seconds}
    return {"apis": len(apis), "parallel_episodes": config.parallel_episodes, "trials": trials,
            "wall_seconds": round(wall, 2), "trials_per_second": round(trials / wall, 4),
            "backend_calls": stats.calls, "requests_per_backend_call": round(stats.requests / stats.calls, 2),
            "backend_share": round(stats.seconds / wall, 4),
            "prompt_tokens_per_request": round(stats.prompt_tokens / stats.requests),
            "completion_tokens": stats.completion_tokens,
            "ms_per_trial": {part: round(1000 * seconds / trials, 1) for part, seconds in split.items()}}


def main() -> None:
    tools = import_file(STE / "API_descriptions.json", "toolbench")
    by_source = {t.source_name: t.name for t in tools}
    apis = [by_source[name] for name in json.loads((STE / "API_list.json").read_text())]
    sequential_apis = apis[: int(sys.argv[1]) if len(sys.argv) > 1 else len(apis)]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "tools.jsonl").write_text("".join(t.to_json() + "\n" for t in tools))
        batched = run(tools, apis, sequential=False, workdir=workdir / "batched")
        sequential = run(tools, sequential_apis, sequential=True, workdir=workdir / "sequential")
    result = {
        "settings": SETTINGS, "model": "tiny (embedded, CPU, 1 torch thread)", "structured_backend": "llguidance",
        "load_average": os.getloadavg(),
        "batched": batched, "sequential": sequential,
        "speedup_trials_per_second": round(batched["trials_per_second"] / sequential["trials_per_second"], 2),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
