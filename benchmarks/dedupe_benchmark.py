"""How fast is deduplication at the size of a real run, and how much memory does it take?

Three parts, each in its own process so that each peak RSS is its own:

- exact: `exact_duplicates` (Polars) and the full `dedupe(df, semantic=False)` (with reasons) on
  1,000,000 synthetic queries over 1,000 APIs, a known share of them case/space/punctuation
  variants of an earlier query of the same API. The queries are generated in one process and
  saved as parquet; a fresh process reads and dedupes them. Reports seconds, peak RSS (after
  loading and at the end), and how many of the planted variants were caught (and how many rows
  were wrongly dropped).
- embed: all-MiniLM-L6-v2 embedding throughput on N synthetic queries (default 5,000), and the
  time for 100,000 extrapolated from it (the full run takes far more than 10 minutes on 2 busy
  cores).
- search: the blockwise neighbour search plus clustering (`semantic_clusters(vectors=...)`) on
  100,000 unit vectors of dimension 384: globally (one scope of 100,000) and per API (1,000 APIs).
  The vectors are synthetic: random directions, with a known share of planted near-duplicates
  (cosine about 0.95 to their original); the dense products cost the same as for real
  embeddings, only the number of pairs found differs. Reports seconds, peak RSS, the peak of
  numpy allocations during the search (tracemalloc) and whether the planted pairs were found.

Synthetic queries are templates x slot values, seeded, so every run builds the same data.

Results go to benchmarks/results/dedupe.json.

Run: TORCHDYNAMO_DISABLE=1 .venv/bin/python benchmarks/dedupe_benchmark.py [--rows 1000000]
     [--embed 5000] [--vectors 100000] [--parts exact,embed,search]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "dedupe.json"
SEED = 0
APIS = 1000
DUPLICATE_SHARE = 0.2  # of the rows: a variant of an earlier query of the same API

CITIES = ["Paris", "Rome", "Berlin", "Tokyo", "Lima", "Oslo", "Cairo", "Delhi", "Austin", "Denver",
          "Madrid", "Lisbon", "Dublin", "Prague", "Vienna", "Seoul", "Sydney", "Toronto", "Chicago", "Boston"]
DAYS = ["today", "tomorrow", "on Monday", "on Tuesday", "on Wednesday", "on Thursday", "on Friday", "this weekend"]
ITEMS = ["pizza", "sushi", "tacos", "ramen", "curry", "salad", "burgers", "noodles"]
CURRENCIES = ["US dollars", "euros", "yen", "pounds", "francs", "pesos"]
# Templates of one intent are paraphrases of each other: {a} {b} {n} are the slots.
INTENTS = [
    ["What's the weather in {a} {b}?", "Tell me the forecast for {a} {b}"],
    ["Convert {n} {c} to {d}", "How much is {n} {c} in {d}?"],
    ["Find {x} restaurants in {a} open {b}", "Where can I eat {x} in {a} {b}?"],
    ["Book {n} hotel rooms in {a} {b}", "Reserve {n} rooms at a hotel in {a} {b}"],
    ["How far is {a} from {e} by train {b}?", "What's the train distance between {a} and {e} {b}?"],
    ["Show the top {n} news stories from {a} {b}", "List {n} headline news items about {a} {b}"],
]


def make_query(rng: random.Random) -> tuple[int, dict]:
    intent = rng.randrange(len(INTENTS))
    a, e = rng.sample(CITIES, 2)
    c, d = rng.sample(CURRENCIES, 2)
    slots = {"a": a, "e": e, "b": rng.choice(DAYS), "x": rng.choice(ITEMS), "c": c, "d": d,
             "n": rng.randrange(1, 100_000)}
    return intent, slots


def exact_variant(text: str, rng: random.Random) -> str:
    """The same query with other case, spacing or punctuation."""
    change = rng.randrange(5)
    if change == 0:
        return text.upper()
    if change == 1:
        return text.lower().rstrip("?") + " ?!"
    if change == 2:
        return "  " + text.replace(" ", "   ") + "\t"
    if change == 3:
        return text.replace(" ", ", ", 1) + "..."
    return text.title().replace("'S", "’s")


def synthetic_rows(n: int, seed: int = SEED, paraphrases: bool = False) -> list[dict]:
    """`n` rows over `APIS` APIs: new queries, and DUPLICATE_SHARE variants of an earlier row of the
    same API (exact variants; with `paraphrases`, half of them another template instead).
    Each row has `base`: the index of the original query it repeats (its own index if new)."""
    rng = random.Random(seed)
    rows: list[dict] = []
    by_api: dict[str, list[int]] = {}
    seen: set[str] = set()
    while len(rows) < n:
        api = f"api_{rng.randrange(APIS):04d}"
        earlier = by_api.setdefault(api, [])
        if earlier and rng.random() < DUPLICATE_SHARE:
            original = rows[rng.choice(earlier)]
            if paraphrases and rng.random() < 0.5:
                template = INTENTS[original["intent"]][1]
                rows.append({**original, "query": template.format(**original["slots"]), "kind": "paraphrase"})
            else:
                rows.append({**original, "query": exact_variant(original["query"], rng), "kind": "exact_variant"})
            continue
        text = None
        while text is None or text in seen:  # a new query is new: draw again on a collision
            intent, slots = make_query(rng)
            text = INTENTS[intent][0].format(**slots)
        seen.add(text)
        earlier.append(len(rows))
        rows.append({"api": api, "query": text, "intent": intent, "slots": slots, "kind": "new", "base": len(rows)})
    return rows


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def part_exact_data(rows_count: int, path: str) -> dict:
    """Build the exact-dedupe input and save it, so that the timed process only reads it."""
    import polars as pl

    start = time.perf_counter()
    rows = synthetic_rows(rows_count)
    pl.DataFrame({"api": [r["api"] for r in rows], "query": [r["query"] for r in rows],
                  "base": [r["base"] for r in rows], "kind": [r["kind"] for r in rows]}).write_parquet(path)
    return {"generate_s": round(time.perf_counter() - start, 2)}


def part_exact(path: str) -> dict:
    import polars as pl

    from imaginarium.filters.dedupe import dedupe, exact_duplicates

    df = pl.read_parquet(path)
    rss_loaded = peak_rss_mib()
    start = time.perf_counter()
    marked = exact_duplicates(df)
    exact_s = time.perf_counter() - start
    start = time.perf_counter()
    kept, dropped = dedupe(df, semantic=False, id_column=None)
    dedupe_s = time.perf_counter() - start

    flagged = marked["duplicate_of"].is_not_null()
    planted = marked["kind"] == "exact_variant"
    keeper_base = marked["base"].gather(marked["duplicate_of"].fill_null(0))
    wrong = flagged & (keeper_base != marked["base"])
    return {
        "rows": df.height, "apis": df["api"].n_unique(), "planted_exact_variants": int(planted.sum()),
        "caught": int((flagged & planted).sum()), "wrongly_dropped": int(wrong.sum()),
        "kept": kept.height, "dropped": dropped.height,
        "exact_duplicates_s": round(exact_s, 3), "dedupe_with_reasons_s": round(dedupe_s, 3),
        "rss_after_loading_mib": round(rss_loaded), "peak_rss_mib": round(peak_rss_mib()),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }


def part_embed(count: int, total: int) -> dict:
    import torch

    from imaginarium.embeddings import embed, load_embedder

    rows = synthetic_rows(count, paraphrases=True)
    texts = [r["query"] for r in rows]
    start = time.perf_counter()
    load_embedder()
    embed(texts[:64])
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    vectors = embed(texts, batch_size=256, show_progress=True)
    seconds = time.perf_counter() - start
    result = {
        "queries": count, "batch_size": 256, "torch_threads": torch.get_num_threads(),
        "load_and_warm_up_s": round(load_s, 2), "embed_s": round(seconds, 2),
        "queries_per_s": round(count / seconds, 1),
        f"extrapolated_embed_s_for_{total}": round(total * seconds / count),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2), "peak_rss_mib": round(peak_rss_mib()),
    }
    result["quality_on_these_queries"] = dedupe_quality(rows, vectors)
    return result


def dedupe_quality(rows: list[dict], vectors: np.ndarray) -> dict:
    """What the default semantic rule does to the synthetic queries (real embeddings): how many
    planted paraphrases it drops, and how many distinct queries it merges (same template, other
    slot values: the hard negatives of tool queries)."""
    from imaginarium.filters.dedupe import DEFAULT_THRESHOLD, dedupe

    base = np.array([r["base"] for r in rows])
    kind = np.array([r["kind"] for r in rows])
    out = {"threshold": DEFAULT_THRESHOLD, "paraphrases": int((kind == "paraphrase").sum()),
           "exact_variants": int((kind == "exact_variant").sum())}
    table = [{"api": r["api"], "query": r["query"], "row": k} for k, r in enumerate(rows)]
    for scope, by in (("per_api", "api"), ("global", None)):
        _kept, dropped = dedupe(table, by=by, vectors=vectors, id_column="row")
        lost = [d for d in dropped if base[d["row"]] != base[int(d["duplicate_of"])]]
        out[scope] = {
            "dropped": len(dropped),
            "paraphrases_dropped": sum(kind[d["row"]] == "paraphrase" for d in dropped),
            "distinct_queries_merged": len(lost),
            "example_merges": [f"{rows[int(d['duplicate_of'])]['query']} | {d['query']}" for d in lost[:3]],
        }
    return out


def planted_vectors(n: int, dim: int = 384, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Random unit vectors, DUPLICATE_SHARE of them copies of another one plus noise (cosine about
    0.95 to it, 0.9 between two copies), shuffled. Returns (vectors, source of each row): rows
    with the same source are the planted duplicates of each other."""
    rng = np.random.default_rng(seed)
    copies = int(n * DUPLICATE_SHARE)
    source = np.concatenate([np.arange(n - copies), rng.integers(0, n - copies, size=copies)])
    originals = rng.standard_normal((n - copies, dim), dtype=np.float32)
    noise = rng.standard_normal((copies, dim), dtype=np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    originals /= np.linalg.norm(originals, axis=1, keepdims=True)
    vectors = np.concatenate([originals, originals[source[n - copies:]] + 0.33 * noise])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    order = rng.permutation(n)
    return vectors[order], source[order]


def part_search(count: int, block: int) -> dict:
    from imaginarium.filters.dedupe import semantic_clusters

    vectors, source = planted_vectors(count)
    apis = np.random.default_rng(SEED + 1).integers(0, APIS, size=count)[source]  # a copy stays in its API
    out: dict = {"vectors": count, "dim": int(vectors.shape[1]), "block": block, "threshold": 0.8,
                 "planted_duplicates": count - len(np.unique(source))}
    for scope, groups in (("global", None), ("per_api", apis.tolist())):
        tracemalloc.start()
        start = time.perf_counter()
        clusters = semantic_clusters(vectors=vectors, groups=groups, threshold=0.8, block=block)
        seconds = time.perf_counter() - start
        traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        dropped = ~clusters.is_kept
        out[scope] = {
            "search_and_cluster_s": round(seconds, 2), "dropped": int(dropped.sum()),
            "dropped_with_a_different_source": int((source[dropped] != source[clusters.kept[dropped]]).sum()),
            "numpy_peak_during_search_mib": round(traced_peak / 2**20, 1),
        }
    out["vectors_mib"] = round(vectors.nbytes / 2**20, 1)
    out["full_matrix_would_be_mib"] = round(count * count * 4 / 2**20)
    out["peak_rss_mib"] = round(peak_rss_mib())
    out["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    return out


def run_part(name: str, args: argparse.Namespace, data: str) -> dict:
    """One part in a fresh process, so its peak RSS is its own."""
    command = [sys.executable, __file__, "--part", name, "--rows", str(args.rows), "--embed", str(args.embed),
               "--vectors", str(args.vectors), "--block", str(args.block), "--data", data]
    done = subprocess.run(command, check=True, capture_output=True, text=True,
                          env={**os.environ, "TORCHDYNAMO_DISABLE": "1"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--embed", type=int, default=5_000)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--block", type=int, default=2048)
    parser.add_argument("--parts", default="exact,embed,search")
    parser.add_argument("--part", help=argparse.SUPPRESS)  # internal: run one part here
    parser.add_argument("--data", help=argparse.SUPPRESS)  # internal: the exact part's input file
    args = parser.parse_args()
    if args.part:
        result = {"exact_data": lambda: part_exact_data(args.rows, args.data),
                  "exact": lambda: part_exact(args.data),
                  "embed": lambda: part_embed(args.embed, args.vectors),
                  "search": lambda: part_search(args.vectors, args.block)}[args.part]()
        print(json.dumps(result))
        return
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    with tempfile.TemporaryDirectory() as scratch:
        data = str(Path(scratch) / "queries.parquet")
        for name in args.parts.split(","):
            print(f"running {name} ...", file=sys.stderr)
            if name == "exact":
                generated = run_part("exact_data", args, data)
            results[name] = run_part(name, args, data)
            if name == "exact":
                results[name].update(generated)
            print(json.dumps(results[name], indent=2), file=sys.stderr)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
