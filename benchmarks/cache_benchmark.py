"""How fast is the response cache at the size of a real run? Lookups/s and p50/p99 latency
with 1,000,000 entries.

Builds a cache of N entries (realistic ~300-byte JSON responses over 50 tools, written in
transactions of 10,000 as a recording run would batch them), then times single lookups
(`ResponseCache.get`: canonical JSON + sha256 of the arguments + one indexed SQLite read) for
random hits and for misses, each one timed alone with perf_counter_ns. Also times the same
lookups from several processes at once (WAL readers do not block each other), and single-entry
inserts (one transaction each, the executor's record path) into the full cache.

Results go to benchmarks/results/cache.json.

Run: .venv/bin/python benchmarks/cache_benchmark.py [--entries 1000000] [--lookups 100000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from imaginarium.executor.cache import CacheEntry, ResponseCache

RESULTS = Path(__file__).parent / "results" / "cache.json"
TOOLS = [f"tool_{i:02d}" for i in range(50)]
BATCH = 10_000


def arguments(i: int) -> dict:
    return {"city": f"city-{i}", "days": i % 7 + 1, "units": "metric" if i % 2 else "imperial"}


def response(i: int) -> str:
    return json.dumps({"city": f"city-{i}", "observed_at": "2025-01-15T09:00:00Z", "temperature": (i % 600) / 10 - 20,
                       "humidity": i % 100, "wind_speed": (i % 300) / 10, "conditions": "scattered clouds",
                       "forecast": [{"day": d, "min": d - 3, "max": d + 4} for d in range(3)]})


def build(path: Path, entries: int) -> float:
    start = time.perf_counter()
    with ResponseCache(path) as cache:
        for first in range(0, entries, BATCH):
            cache.put_many(CacheEntry(TOOLS[i % len(TOOLS)], arguments(i), response(i), created_at="2025-01-15T09:00:00Z")
                           for i in range(first, min(first + BATCH, entries)))
        cache._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.perf_counter() - start


def time_lookups(path: str, keys: list[int], miss: bool) -> list[int]:
    """Nanoseconds per lookup, one lookup at a time."""
    timings = []
    with ResponseCache(path) as cache:
        for i in keys:
            args = arguments(i) if not miss else {**arguments(i), "days": 99}
            start = time.perf_counter_ns()
            entry = cache.get(TOOLS[i % len(TOOLS)], args)
            timings.append(time.perf_counter_ns() - start)
            if (entry is None) != miss:
                raise AssertionError(f"lookup {i}: expected {'a miss' if miss else 'a hit'}")
    return timings


def summary(timings_ns: list[int], wall_s: float | None = None) -> dict:
    ordered = sorted(timings_ns)
    count = len(ordered)
    result = {
        "lookups": count,
        "p50_us": round(ordered[count // 2] / 1000, 2),
        "p99_us": round(ordered[min(count - 1, int(count * 0.99))] / 1000, 2),
        "mean_us": round(statistics.fmean(ordered) / 1000, 2),
        "max_us": round(ordered[-1] / 1000, 2),
    }
    result["lookups_per_s"] = round(count / (wall_s if wall_s else sum(ordered) / 1e9))
    return result


def parallel_lookups(path: str, entries: int, lookups: int, processes: int) -> dict:
    rng = random.Random(1)
    shares = [[rng.randrange(entries) for _ in range(lookups // processes)] for _ in range(processes)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        pool.starmap(time_lookups, [(path, s[:100], False) for s in shares])  # warm up the workers
        start = time.perf_counter()
        results = pool.starmap(time_lookups, [(path, s, False) for s in shares])
        wall = time.perf_counter() - start
    return {"processes": processes, **summary([t for r in results for t in r], wall)}


def time_inserts(path: Path, entries: int, count: int) -> dict:
    timings = []
    with ResponseCache(path) as cache:
        for i in range(entries, entries + count):
            entry = CacheEntry(TOOLS[i % len(TOOLS)], arguments(i), response(i))
            start = time.perf_counter_ns()
            cache.put(entry)
            timings.append(time.perf_counter_ns() - start)
    result = summary(timings)
    result["inserts"] = result.pop("lookups")
    result["inserts_per_s"] = result.pop("lookups_per_s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--dir", default=None, help="Where to build the cache (default: a temporary folder).")
    options = parser.parse_args()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=options.dir) as folder:
        path = Path(folder) / "cache.sqlite"
        print(f"building a cache of {options.entries:,} entries ...", flush=True)
        build_s = build(path, options.entries)
        size = path.stat().st_size
        print(f"built in {build_s:.1f} s, {size / 1e6:.0f} MB", flush=True)
        rng = random.Random(0)
        hits = [rng.randrange(options.entries) for _ in range(options.lookups)]
        time_lookups(str(path), hits[:1000], False)  # warm the page cache
        start = time.perf_counter()
        hit_timings = time_lookups(str(path), hits, False)
        hit_wall = time.perf_counter() - start
        miss_timings = time_lookups(str(path), hits[: options.lookups // 10], True)
        parallel = parallel_lookups(str(path), options.entries, options.lookups, options.processes)
        inserts = time_inserts(path, options.entries, 2000)
        with ResponseCache(path) as cache:
            assert len(cache) == options.entries + 2000
    results = {
        "benchmark": "response cache (SQLite WAL)",
        "entries": options.entries,
        "file_mb": round(size / 1e6, 1),
        "build": {"seconds": round(build_s, 1), "entries_per_s": round(options.entries / build_s),
                  "transaction_size": BATCH},
        "lookup_hit": summary(hit_timings, hit_wall),
        "lookup_miss": summary(miss_timings),
        "lookup_hit_parallel": parallel,
        "insert_one_per_transaction": inserts,
        "machine": {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    # other work on the machine inflates the mean and the tail: say how busy it was
                    "load_average_1min_at_start_and_end": [round(load_start, 2), round(os.getloadavg()[0], 2)]},
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
