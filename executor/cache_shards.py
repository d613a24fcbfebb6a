"""The response cache with many writers: one shard file per worker, merged by the driver.

Why: SQLite takes one writer at a time per file. Many Ray actors recording or simulating at
once would queue on the lock (and a lock held by a killed process waits for its timeout);
worse, a file on a network filesystem shared by several nodes is not safe to lock at all. So
each worker reads the main cache (read-only: readers never block) and writes what it records
or simulates to a shard file of its own (`<cache>.shards/<worker id>.sqlite`). The driver
merges every shard into the main cache with the usual precedence (real beats simulated) and
removes it: at the end of a run, and at the start of the next one, so the entries of a killed
worker (committed transactions survive SIGKILL) are kept too.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imaginarium.executor.cache import CacheEntry, EntrySource, ResponseCache

SUFFIX = ".shards"


def shard_dir(cache: str | Path) -> Path:
    """Where the workers of runs on `cache` write their shards."""
    cache = Path(cache)
    return cache.with_name(cache.name + SUFFIX)


def worker_shard(cache: str | Path | None) -> Path | None:
    """A new shard file for one worker of a run on `cache` (None without a cache)."""
    return shard_dir(cache) / f"{uuid.uuid4().hex}.sqlite" if cache is not None else None


@contextlib.contextmanager
def merged_shards(cache: str | Path | None) -> Iterator[None]:
    """The driver's side of a sharded run on `cache`: the shards a killed run left are merged
    first (finished work), the cache exists for the workers to open read-only, and the run's
    shards are merged at the end."""
    if cache is None:
        yield
        return
    merge_shards(cache)
    if not Path(cache).exists():
        ResponseCache(cache).close()
    yield
    merge_shards(cache)


class OverlayCache:
    """A worker's view: reads its own shard first, then the main cache; writes to its shard only.

    It offers what the executor and the simulator use of a `ResponseCache` (`get`, `examples`,
    `put`, `put_many`, `close`)."""

    def __init__(self, base: str | Path, shard: str | Path):
        self.base = ResponseCache(base, create=False, readonly=True) if Path(base).exists() else None
        self.shard = ResponseCache(shard)

    @property
    def corrupt_rows(self) -> int:
        return self.shard.corrupt_rows + (self.base.corrupt_rows if self.base else 0)

    def get(self, tool: str, arguments: dict[str, Any]) -> CacheEntry | None:
        own = self.shard.get(tool, arguments)
        if own is not None and own.source == "real":
            return own
        shared = self.base.get(tool, arguments) if self.base else None
        if shared is not None and (own is None or shared.source == "real"):
            return shared
        return own

    def examples(self, tool: str, k: int, source: EntrySource = "real") -> list[CacheEntry]:
        found = self.base.examples(tool, k, source) if self.base else []
        seen = {(e.tool, _key(e)) for e in found}
        found += [e for e in self.shard.examples(tool, k, source) if (e.tool, _key(e)) not in seen]
        return found[:k]

    def put(self, entry: CacheEntry) -> None:
        self.shard.put(entry)

    def put_many(self, entries) -> None:
        self.shard.put_many(entries)

    def close(self) -> None:
        self.shard.close()
        if self.base is not None:
            self.base.close()


def _key(entry: CacheEntry) -> str:
    from imaginarium.executor.cache import arguments_hash

    return arguments_hash(entry.arguments)


def merge_shards(cache: str | Path) -> int:
    """Merge every shard of `cache` into it (one transaction per shard), then remove the shard;
    returns the number of entries merged. An empty file (a worker killed while creating it) is
    removed; a shard that is not a cache is one InputError naming it."""
    folder = shard_dir(cache)
    if not folder.is_dir():
        return 0
    merged = 0
    with ResponseCache(cache) as main:
        for path in sorted(folder.glob("*.sqlite")):
            if path.stat().st_size == 0:
                path.unlink()
                continue
            with ResponseCache(path, create=False) as shard:
                entries = list(_entries(shard))
            main.put_many(entries)
            merged += len(entries)
            for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()
    return merged


def _entries(cache: ResponseCache) -> Iterator[CacheEntry]:
    for row in cache.rows():
        yield CacheEntry(tool=row["tool"], arguments=_arguments(row["arguments"]), response=row["response"],
                         status=row["status"], source=row["source"], error_kind=row["error_kind"],
                         created_at=row["created_at"], tool_version=row["tool_version"],
                         total_chars=row["total_chars"], content_type=row["content_type"])


def _arguments(text: str) -> dict[str, Any]:
    from imaginarium.executor.cache import strict_json

    return strict_json(text)
