"""Generation speed of the transformers backend on the tiny model on CPU.

Measures, and writes to benchmarks/results/generation.json:
- tokens/s unconstrained at batch 1, 16 and 64 (target: batch 16 >= 6x batch 1);
- constrained vs unconstrained time per token at batch 16 (target: <= 1.2x), for each structured
  engine (llguidance, outlines_core, xgrammar) in our batched loop, and for reference Outlines'
  own path (`outlines.Generator` over HF generate, masking row by row);
- the same engines on 64 ToolBench call schemas: tokens/s and how many results were valid;
- schema compile time: first compile vs a cached lookup, over ToolBench call schemas.

The constrained-vs-unconstrained comparison uses a schema whose string must be 400 characters
long, so every constrained row produces exactly max_tokens tokens like an unconstrained one; the
ratio is of seconds per generated token. Each figure is the median of REPEATS runs. torch runs
with one thread: this machine is shared, and with two threads on two busy cores small ops slow
down 10-50x, which would measure the neighbours rather than the code.

Run: TORCHDYNAMO_DISABLE=1 .venv/bin/python benchmarks/generation_benchmark.py
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

from imaginarium.atomic import atomic_write_text
from imaginarium.models.backend import Constraint, GenerationRequest

RESULTS = Path(__file__).parent / "results" / "generation.json"
TOOLBENCH = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ste" / "tool_metadata" / "API_descriptions.json"
ENGINES = ("llguidance", "outlines_core", "xgrammar")
MAX_TOKENS = 64
REPEATS = 3
PROMPT = [{"role": "user", "content": "Describe the weather in Paris in one sentence."}]
LONG_STRING = {
    "type": "object",
    "properties": {"text": {"type": "string", "minLength": 400, "maxLength": 400}},
    "required": ["text"],
    "additionalProperties": False,
}


def median_run(run: Callable[[], tuple[float, int]]) -> dict[str, float]:
    """Median seconds and tokens over REPEATS runs of `run() -> (seconds, tokens)`."""
    runs = [run() for _ in range(REPEATS)]
    seconds = statistics.median(r[0] for r in runs)
    tokens = statistics.median(r[1] for r in runs)
    return {"seconds": round(seconds, 4), "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1)}


def interleaved(first: Callable, second: Callable, repeats: int = 2 * REPEATS + 1) -> tuple[dict, dict]:
    """Medians of two workloads run alternately, so that load from neighbours hits both alike."""
    runs = [(first(), second()) for _ in range(repeats)]
    summaries = []
    for k in (0, 1):
        seconds = statistics.median(r[k][0] for r in runs)
        tokens = statistics.median(r[k][1] for r in runs)
        summaries.append({"seconds": round(seconds, 4), "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1)})
    return summaries[0], summaries[1]


def timed_generate(backend, requests: list[GenerationRequest]) -> tuple[float, int]:
    start = time.perf_counter()
    completions = backend.generate(requests)
    return time.perf_counter() - start, sum(c.completion_tokens for c in completions)


def requests_for(count: int, constraint: Constraint | None, offset: int = 0) -> list[GenerationRequest]:
    return [
        GenerationRequest(messages=PROMPT, constraint=constraint, seed=offset + i, max_tokens=MAX_TOKENS)
        for i in range(count)
    ]


def batch_scaling(model_dir: str) -> dict[str, Any]:
    """Unconstrained tokens/s at batch 1, 16, 64 (batch 1: 8 requests one after another)."""
    from imaginarium.models.transformers import TransformersBackend

    results = {}
    for batch in (1, 16, 64):
        backend = TransformersBackend(model_dir, batch_size=batch)
        count = 8 if batch == 1 else batch
        backend.generate(requests_for(2, None))  # warm-up
        results[f"batch_{batch}"] = median_run(
            lambda backend=backend, count=count: timed_generate(backend, requests_for(count, None)))
    results["batch_16_over_batch_1"] = round(results["batch_16"]["tokens_per_s"] / results["batch_1"]["tokens_per_s"], 2)
    results["batch_64_over_batch_1"] = round(results["batch_64"]["tokens_per_s"] / results["batch_1"]["tokens_per_s"], 2)
    return results


def constrained_overhead(model_dir: str) -> dict[str, Any]:
    """Seconds per token, constrained (every row exactly MAX_TOKENS) over unconstrained, batch 16."""
    from imaginarium.models.transformers import TransformersBackend

    results = {}
    for engine in ENGINES:
        backend = TransformersBackend(model_dir, batch_size=16, structured_backend=engine)
        constraint = Constraint.json(LONG_STRING)
        backend.generate(requests_for(2, constraint))  # warm-up and compile
        plain, constrained = interleaved(
            lambda backend=backend: timed_generate(backend, requests_for(16, None)),
            lambda backend=backend, constraint=constraint: timed_generate(backend, requests_for(16, constraint)),
        )
        ratio = (constrained["seconds"] / constrained["tokens"]) / (plain["seconds"] / plain["tokens"])
        results[engine] = {"unconstrained": plain, "constrained": constrained, "time_per_token_ratio": round(ratio, 3)}
    results["outlines_generator_reference"] = outlines_reference(model_dir)
    return results


def outlines_reference(model_dir: str) -> dict[str, Any]:
    """Outlines' own path: HF generate with Outlines' logits processor (default engine), batch 16."""
    import outlines
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = outlines.from_transformers(AutoModelForCausalLM.from_pretrained(model_dir), tokenizer)
    prompt = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    plain = outlines.Generator(model)
    constrained = outlines.Generator(model, outlines.types.JsonSchema(json.dumps(LONG_STRING)))

    def run(generator, **kwargs) -> tuple[float, int]:
        torch.manual_seed(0)
        start = time.perf_counter()
        generator.batch([prompt] * 16, max_new_tokens=MAX_TOKENS, do_sample=True, **kwargs)
        return time.perf_counter() - start, 16 * MAX_TOKENS

    run(constrained)
    plain_result, constrained_result = interleaved(lambda: run(plain, min_new_tokens=MAX_TOKENS), lambda: run(constrained))
    ratio = constrained_result["seconds"] / plain_result["seconds"]
    return {"engine": "outlines_core (Outlines' default)", "unconstrained": plain_result,
            "constrained": constrained_result, "time_per_token_ratio": round(ratio, 3)}


def toolbench_calls(model_dir: str, tools: list) -> dict[str, Any]:
    """64 ToolBench call schemas at batch 64 per engine: tokens/s and outcome counts."""
    from collections import Counter

    from imaginarium.models.transformers import TransformersBackend
    from imaginarium.schemas.constraints import call_schema

    picked = random.Random(0).sample(tools, 64)
    requests = [
        GenerationRequest(messages=[{"role": "user", "content": f"Use {tool.name}."}],
                          constraint=Constraint.json(call_schema(tool)), seed=i, max_tokens=160)
        for i, tool in enumerate(picked)
    ]
    results = {}
    for engine in ENGINES:
        backend = TransformersBackend(model_dir, batch_size=64, structured_backend=engine, max_retries=0)
        start = time.perf_counter()
        completions = backend.generate(requests)
        seconds = time.perf_counter() - start
        tokens = sum(c.completion_tokens for c in completions)
        results[engine] = {
            "seconds": round(seconds, 3), "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1),
            "compile_seconds": round(backend.stats.extra["compile_seconds"], 3),
            "finish_reasons": dict(Counter(c.finish_reason for c in completions)),
        }
    return results


def compile_times(model_dir: str, tools: list) -> dict[str, Any]:
    """First compile vs cached lookup of ToolBench call schemas (200 tools), per engine."""
    from imaginarium.models.transformers import TransformersBackend
    from imaginarium.schemas.constraints import call_schema

    constraints = [Constraint.json(call_schema(tool)) for tool in random.Random(1).sample(tools, 200)]
    results = {}
    for engine in ENGINES:
        backend = TransformersBackend(model_dir, structured_backend=engine)
        backend.compiled(Constraint.choice(["warm", "up"]))  # engine set-up (tokenizer tables) is not a compile
        first, cached = [], []
        for constraint in constraints:
            start = time.perf_counter()
            backend.compiled(constraint)
            first.append(time.perf_counter() - start)
        for constraint in constraints:
            start = time.perf_counter()
            backend.compiled(constraint)
            cached.append(time.perf_counter() - start)
        results[engine] = {
            "schemas": len(constraints),
            "first_mean_ms": round(1000 * statistics.mean(first), 3),
            "first_max_ms": round(1000 * max(first), 3),
            "cached_mean_ms": round(1000 * statistics.mean(cached), 4),
        }
    return results


def main() -> None:
    import torch

    from imaginarium.models.tiny import build_tiny_model
    from imaginarium.schemas.importers import import_file

    torch.set_num_threads(1)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(build_tiny_model(Path(tmp) / "tiny", seed=0))
        tools = import_file(str(TOOLBENCH), "toolbench")
        results = {
            "setup": {
                "model": "tiny (seed 0): Llama, 2 layers, hidden 64, vocab 512, float32, CPU",
                "torch_threads": torch.get_num_threads(), "max_tokens": MAX_TOKENS, "repeats": REPEATS,
                "versions": {p: version(p) for p in ("torch", "transformers", "outlines", "outlines_core", "llguidance", "xgrammar")},
                "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
                "load_average_before": [round(x, 2) for x in load_before],
            },
            "batch_scaling": batch_scaling(model_dir),
            "constrained_vs_unconstrained_batch_16": constrained_overhead(model_dir),
            "toolbench_call_schemas_batch_64": toolbench_calls(model_dir, tools),
            "compile_first_vs_cached": compile_times(model_dir, tools),
        }
    results["setup"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    atomic_write_text(RESULTS, json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
