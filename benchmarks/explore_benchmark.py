"""Batched exploration vs the STE reference shape (one API, one trial, one call at a time).

Same backend (transformers on CPU, the project's default model unless `--model` says otherwise),
same executor, same settings; the only difference is what is in flight at once:
- sequential: the APIs one after another, one episode at a time: every backend call carries one
  request, as in the STE reference implementation;
- batched: every API at once (and `parallel_episodes` episodes of each), every round's steps in
  one backend call.

Each run reports where its time went, in milliseconds per trial (the backend's row-by-row prompt
prefill, its forward passes while decoding, the rest of the backend: masking, sampling,
tokenising, upkeep; and the explorer outside the backend), the share of the exploration loop's
time spent in the backend (`backend_share`; the stage's finishing, the quality report with its
embeddings, is reported apart), how many prompt tokens were served
from the prefix/KV cache instead of computed (`prefix_hit_share`), and which prompt tokens were
still computed, by step kind (imagine, act, reflect).

Run: .venv/bin/python benchmarks/explore_benchmark.py [--model smollm2-135m] [--apis 50]
Writes benchmarks/results/explore-<model>.json; the last line printed is one JSON object with
trials_per_s_batched, trials_per_s_sequential, speedup, backend_share and prefix_hit_share.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

from imaginarium.executor.executor import Executor
from imaginarium.generators.explore import ExploreConfig, explore_stage
from imaginarium.models.backend import Backend
from imaginarium.models.factory import make_backend
from imaginarium.models.options import DEFAULT_MODEL
from imaginarium.schemas.importers import import_file

ROOT = Path(__file__).resolve().parents[1]
STE = ROOT.parent / "shared" / "datasets" / "ste" / "tool_metadata"
SETTINGS = dict(episodes=1, stm_slots=2, max_turns=2, max_query_chars=100, max_thought_chars=48,
                max_answer_chars=96, max_argument_chars=32, max_tokens=128, temperature=0.5, top_p=0.9)


class CountingBackend(Backend):
    """Passes requests through and counts prompt tokens computed (not from cache) per step kind."""

    def __init__(self, inner: Backend):
        super().__init__(inner.model)
        self.inner, self.name = inner, inner.name
        self.computed: Counter = Counter()
        self.prompt: Counter = Counter()

    def _generate(self, requests):
        completions = self.inner.generate(requests)
        for completion in completions:
            kind = _kind(requests[completion.request_index])
            self.prompt[kind] += completion.prompt_tokens
            self.computed[kind] += completion.prompt_tokens - completion.cached_tokens
        return completions


def _kind(request) -> str:
    constraint = request.constraint
    return {"regex": "imagine", "choice": "reflect"}.get(constraint.kind if constraint else "", "act")


def run(tools, apis, *, model: str, sequential: bool, workdir: Path, threads: int | None) -> dict:
    inner = make_backend("transformers", model, num_threads=threads)
    backend = CountingBackend(inner)
    executor = Executor(tools, None, "replay")  # RapidAPI is offline: a miss is an error observation
    config = ExploreConfig.from_flat(dict(SETTINGS, parallel_episodes=1))
    groups = [[api] for api in apis] if sequential else [apis]
    start = time.perf_counter()
    trials = 0
    loop_wall = loop_backend = 0.0  # the explorer's loop, without the stage's finishing (reports)
    for index, group in enumerate(groups):
        manifest = explore_stage(workdir / f"run-{index}", workdir.parent / "tools.jsonl", tools, group, backend,
                                 executor, config, progress=False)
        trials += manifest["counts"]["trials"]
        loop_wall += manifest["extra"]["run"]["wall_seconds"]
        loop_backend += manifest["extra"]["run"]["backend_seconds"]
    wall = time.perf_counter() - start
    stats, extra = inner.stats, inner.stats.extra
    prefill, forward = extra["prefill_seconds"], extra["decode_forward_seconds"]
    split = {"prefill": prefill, "decode_forward": forward, "backend_rest": stats.seconds - prefill - forward,
             "outside_backend": wall - stats.seconds}
    reused, computed = extra["prefix_reused_tokens"], extra["prompt_tokens_computed"]
    return {"apis": len(apis), "trials": trials, "wall_seconds": round(wall, 2),
            "trials_per_second": round(trials / wall, 4),
            "backend_calls": stats.calls, "requests_per_backend_call": round(stats.requests / stats.calls, 2),
            "backend_share": round(loop_backend / loop_wall, 4) if loop_wall else 0.0,
            "stage_finishing_seconds": round(wall - loop_wall, 2),
            "prompt_tokens_per_request": round(stats.prompt_tokens / stats.requests),
            "prompt_tokens": stats.prompt_tokens, "completion_tokens": stats.completion_tokens,
            "decode_steps": extra["decode_steps"],
            "prefix_hit_share": round(reused / (reused + computed), 4) if reused + computed else 0.0,
            "prompt_tokens_computed": computed,
            "computed_by_step": {kind: {"prompt_tokens": backend.prompt[kind], "computed": backend.computed[kind]}
                                 for kind in sorted(backend.prompt)},
            "ms_per_trial": {part: round(1000 * seconds / trials, 1) for part, seconds in split.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model name or path [default: %(default)s]")
    parser.add_argument("--apis", type=int, default=50, help="the first N of the 50 STE APIs [default: 50]")
    parser.add_argument("--sequential-apis", type=int, help="APIs in the sequential run [default: --apis]")
    parser.add_argument("--threads", type=int, help="torch threads [default: torch's own]")
    parser.add_argument("--out", type=Path, help="results file [default: benchmarks/results/explore-<model>.json]")
    args = parser.parse_args()
    tools = import_file(STE / "API_descriptions.json", "toolbench")
    by_source = {t.source_name: t.name for t in tools}
    apis = [by_source[name] for name in json.loads((STE / "API_list.json").read_text())][: args.apis]
    sequential_apis = apis[: args.sequential_apis or len(apis)]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "tools.jsonl").write_text("".join(t.to_json() + "\n" for t in tools))
        batched = run(tools, apis, model=args.model, sequential=False, workdir=workdir / "batched", threads=args.threads)
        sequential = run(tools, sequential_apis, model=args.model, sequential=True, workdir=workdir / "sequential",
                         threads=args.threads)
    import torch

    summary = {
        "trials_per_s_batched": batched["trials_per_second"],
        "trials_per_s_sequential": sequential["trials_per_second"],
        "speedup": round(batched["trials_per_second"] / sequential["trials_per_second"], 2),
        "backend_share": batched["backend_share"],
        "prefix_hit_share": batched["prefix_hit_share"],
    }
    result = {"model": args.model, "device": "cpu", "torch_threads": torch.get_num_threads(),
              "structured_backend": "llguidance", "settings": SETTINGS, "load_average": os.getloadavg(),
              "batched": batched, "sequential": sequential, **summary}
    out = args.out or ROOT / "benchmarks" / "results" / f"explore-{Path(args.model).name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
