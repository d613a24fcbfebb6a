"""Stage directories: the one way stages read and write data.

A stage directory holds parquet shards and a manifest:

    DIR/manifest.json               written last; present = the stage finished
    DIR/data/part-00000.parquet     the rows, in shards of at most `shard_rows`
    DIR/<report files>              written by `finish(files=...)`, e.g. funnel.json
    DIR/.progress/                  only while a run is unfinished:
        state.json                  the fingerprint of the run these chunks belong to
        chunk-000001.parquet        rows of finished units, one atomic file per append

Why this shape:
- *No-op re-runs.* The fingerprint hashes the stage name, its config and the content of its
  inputs. A finished directory with the same fingerprint is skipped (`StageWriter.done`).
- *Resume without loss or duplicates.* Long stages append the rows of each finished unit (an
  API's trial, a batch of judgments) as one chunk, written to a temporary name and renamed, with
  the unit keys in the chunk's parquet metadata. A chunk is either entirely there or absent, so
  after a crash (even SIGKILL) the finished units are exactly those named by the chunks.
- *Nothing half-written.* `finish` writes the shards and reports into a staging folder and only
  then swaps them in and writes the manifest; the old result stays valid until that moment.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from imaginarium import secrets
from imaginarium.atomic import atomic_path, atomic_write_text
from imaginarium.errors import InputError
from imaginarium.jsonutil import canonical_json, content_hash, file_hash

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
DATA_DIR = "data"
PROGRESS_DIR = ".progress"
_UNITS_KEY = b"imaginarium.units"

# Libraries whose versions are recorded in every manifest (when installed).
_RECORDED_LIBRARIES = (
    "imaginarium", "torch", "transformers", "outlines", "outlines_core", "llguidance", "vllm",
    "datasets", "huggingface_hub", "polars", "pyarrow", "sentence-transformers", "jsonschema",
)


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries that shape a stage's output."""
    versions = {"python": platform.python_version()}
    for name in _RECORDED_LIBRARIES:
        with contextlib.suppress(PackageNotFoundError):
            versions[name] = version(name)
    return versions


def read_manifest(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of a finished stage directory, or None if it has not finished."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"corrupt manifest ({exc})", where=str(path)) from exc


def fingerprint_input(path: str | os.PathLike) -> str:
    """Content fingerprint of one input: a stage directory, a file or a plain directory.

    A finished stage directory is identified by the content hash in its manifest (cheap, and
    independent of where it lives); a file by its bytes; a directory by its files' hashes.
    """
    path = Path(path)
    manifest = read_manifest(path) if path.is_dir() else None
    if manifest is not None:
        return manifest["content_hash"]
    if path.is_file():
        return file_hash(path)
    if path.is_dir():
        entries = sorted(
            (str(p.relative_to(path)), file_hash(p)) for p in path.rglob("*") if p.is_file()
        )
        return content_hash(entries)
    raise InputError("no such file or directory", where=str(path))


def compute_fingerprint(stage: str, config: Mapping[str, Any], inputs: Mapping[str, str]) -> str:
    """Fingerprint of a stage run: its name, its config and its inputs' fingerprints."""
    return content_hash({"stage": stage, "config": dict(config), "inputs": dict(inputs)})


def data_files(directory: str | os.PathLike) -> list[Path]:
    """The parquet shards of a finished stage directory, in order."""
    return sorted((Path(directory) / DATA_DIR).glob("*.parquet"))


def read_table(directory: str | os.PathLike) -> pa.Table:
    """All rows of a finished stage directory as one Arrow table."""
    directory = Path(directory)
    if read_manifest(directory) is None:
        raise InputError(
            "not a finished stage directory (no manifest.json): run the stage that makes it first",
            where=str(directory),
        )
    files = data_files(directory)
    tables = [pq.read_table(f) for f in files]
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="permissive")


def read_rows(directory: str | os.PathLike) -> list[dict[str, Any]]:
    """All rows of a finished stage directory as Python dicts."""
    return read_table(directory).to_pylist()


@dataclass
class StageWriter:
    """Writes one stage directory, with no-op re-runs and crash-safe resume.

    Typical use::

        writer = StageWriter(out, "explore", config, inputs={"tools": tools_path})
        if writer.done:
            return writer.manifest
        with writer:                      # takes a lock: one writer per directory
            done = writer.finished_units()
            for unit in units_to_do(done):
                writer.append(rows_of(unit), units=[unit])
            writer.finish(counts={...})
    """

    out: Path
    stage: str
    config: Mapping[str, Any]
    inputs: Mapping[str, str | os.PathLike]
    schema: pa.Schema | None = None
    shard_rows: int = 100_000

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.input_fingerprints = {name: fingerprint_input(p) for name, p in self.inputs.items()}
        # the config must be JSON (it goes into the manifest); canonical_json checks that.
        canonical_json(dict(self.config))
        self.fingerprint = compute_fingerprint(self.stage, self.config, self.input_fingerprints)
        self._progress = self.out / PROGRESS_DIR
        self._lock_handle: IO[str] | None = None
        self._next_chunk = 0

    # -- state ---------------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any] | None:
        return read_manifest(self.out)

    @property
    def done(self) -> bool:
        """True when the directory already holds this exact run's finished result."""
        manifest = self.manifest
        return manifest is not None and manifest.get("fingerprint") == self.fingerprint

    # -- locking -------------------------------------------------------------------------
    def __enter__(self) -> StageWriter:
        # what this run creates, removed again when it stops on bad input before any unit
        self._created = [path for path in (*reversed(self.out.parents), self.out, self._progress) if not path.exists()]
        self._progress.mkdir(parents=True, exist_ok=True)
        handle = open(self._progress / "lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise InputError("another process is writing this stage directory", where=str(self.out)) from None
        self._lock_handle = handle
        self._open_progress()
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None
            if exc_type is not None and issubclass(exc_type, InputError) and self._created and not self._chunks():
                # bad input found after the directory was opened (a model a Ray worker cannot
                # load): nothing was written, so nothing is left behind
                for name in ("lock", "state.json"):
                    (self._progress / name).unlink(missing_ok=True)
                for path in reversed(self._created):
                    with contextlib.suppress(OSError):
                        path.rmdir()

    def _open_progress(self) -> None:
        """Keep the chunks of an interrupted run with the same fingerprint; drop others."""
        state_path = self._progress / "state.json"
        state = json.loads(state_path.read_text()) if state_path.is_file() else None
        if state is not None and state.get("fingerprint") != self.fingerprint:
            log.warning("%s: discarding unfinished work of a run with other inputs or config", self.out)
            for chunk in self._chunks():
                chunk.unlink()
            state = None
        if state is None:
            atomic_write_text(state_path, json.dumps({"fingerprint": self.fingerprint, "stage": self.stage}))
        chunks = self._chunks()
        self._next_chunk = int(chunks[-1].stem.split("-")[1]) + 1 if chunks else 1

    def _chunks(self) -> list[Path]:
        return sorted(self._progress.glob("chunk-*.parquet"))

    def _require_lock(self) -> None:
        if self._lock_handle is None:
            raise RuntimeError("use StageWriter as a context manager before writing")

    # -- appending -----------------------------------------------------------------------
    def finished_units(self) -> set[str]:
        """Keys of the units whose rows are durably written by this run (or its crashed self)."""
        units: set[str] = set()
        for chunk in self._chunks():
            metadata = pq.read_schema(chunk).metadata or {}
            units.update(json.loads(metadata.get(_UNITS_KEY, b"[]")))
        return units

    def progress_rows(self) -> list[dict[str, Any]]:
        """Rows appended so far by this run (used to rebuild in-memory state on resume)."""
        return [row for chunk in self._chunks() for row in pq.read_table(chunk).to_pylist()]

    def append(self, rows: pa.Table | Iterable[Mapping[str, Any]], units: Iterable[str] = ()) -> None:
        """Durably add rows and mark `units` finished, all or nothing."""
        self._require_lock()
        table = self._to_table(rows)
        metadata = dict(table.schema.metadata or {})
        metadata[_UNITS_KEY] = json.dumps(sorted(set(units))).encode()
        table = table.replace_schema_metadata(metadata)
        target = self._progress / f"chunk-{self._next_chunk:06d}.parquet"
        with atomic_path(target) as tmp:
            pq.write_table(table, tmp)
        self._next_chunk += 1

    def _to_table(self, rows: pa.Table | Iterable[Mapping[str, Any]]) -> pa.Table:
        """Rows as a table of the stage's schema, every configured secret redacted (imaginarium/secrets.py)."""
        if isinstance(rows, pa.Table):
            if not secrets.active():
                return rows.cast(self.schema) if self.schema is not None else rows
            rows = rows.to_pylist()
        rows = [secrets.redact_value(dict(row)) for row in rows] if secrets.active() else list(rows)
        if self.schema is not None:
            return pa.Table.from_pylist(rows, schema=self.schema)
        return pa.Table.from_pylist(rows)

    # -- finishing -----------------------------------------------------------------------
    def finish(
        self,
        *,
        counts: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        files: Mapping[str, str | bytes] | None = None,
        sort_by: list[str] | None = None,
        transform: Callable[[pa.Table], pa.Table] | None = None,
    ) -> dict[str, Any]:
        """Turn the appended chunks into shards, write reports and the manifest.

        `counts` adds to the row count (e.g. rows per API); `extra` is stage-specific manifest
        content; `files` are reports written beside the data; `sort_by` makes the row order
        independent of the order in which units finished (e.g. after a resume); `transform`
        turns the appended rows into the final ones (e.g. a dedupe that needs every row).
        """
        self._require_lock()
        table = self._collect(sort_by)
        if transform is not None:
            table = transform(table)
        staging = self.out / f".staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        (staging / DATA_DIR).mkdir(parents=True)
        shard_paths = self._write_shards(table, staging / DATA_DIR)
        content = content_hash([[p.name, file_hash(p)] for p in shard_paths])
        manifest = {
            "stage": self.stage,
            "config": dict(self.config),
            "inputs": self.input_fingerprints,
            "fingerprint": self.fingerprint,
            "content_hash": content,
            "counts": {"rows": table.num_rows, **dict(counts or {})},
            "columns": table.column_names,
            "versions": library_versions(),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **({"extra": dict(extra)} if extra else {}),
        }
        for name, body in (files or {}).items():
            target = self.out / name
            with atomic_path(target) as tmp:
                tmp.write_bytes(secrets.redact(body).encode("utf-8") if isinstance(body, str) else body)
        # Swap in the new data: the manifest disappears first, so a crash in between leaves an
        # unfinished directory (re-run finishes it from the chunks), never a wrong manifest.
        with contextlib.suppress(FileNotFoundError):
            (self.out / MANIFEST).unlink()
        shutil.rmtree(self.out / DATA_DIR, ignore_errors=True)
        os.replace(staging / DATA_DIR, self.out / DATA_DIR)
        shutil.rmtree(staging, ignore_errors=True)
        text = secrets.redact(json.dumps(manifest, indent=2, ensure_ascii=False))
        atomic_write_text(self.out / MANIFEST, text + "\n")
        self._clear_progress()
        return manifest

    def _collect(self, sort_by: list[str] | None) -> pa.Table:
        tables = [pq.read_table(c) for c in self._chunks()]
        tables = [t.replace_schema_metadata(None) for t in tables]
        if tables:
            table = pa.concat_tables(tables, promote_options="permissive")
        elif self.schema is not None:
            table = self.schema.empty_table()
        else:
            table = pa.table({})
        if sort_by and table.num_rows:
            table = table.sort_by([(c, "ascending") for c in sort_by])
        return table

    def _write_shards(self, table: pa.Table, directory: Path) -> list[Path]:
        shards = max(1, -(-table.num_rows // self.shard_rows))
        paths = []
        for index in range(shards):
            piece = table.slice(index * self.shard_rows, self.shard_rows)
            path = directory / f"part-{index:05d}.parquet"
            pq.write_table(piece, path)
            paths.append(path)
        return paths

    def _clear_progress(self) -> None:
        for chunk in self._chunks():
            chunk.unlink()
        with contextlib.suppress(FileNotFoundError):
            (self._progress / "state.json").unlink()


def write_stage(
    out: str | os.PathLike,
    stage: str,
    config: Mapping[str, Any],
    inputs: Mapping[str, str | os.PathLike],
    rows: pa.Table | Iterable[Mapping[str, Any]],
    *,
    schema: pa.Schema | None = None,
    **finish_kwargs: Any,
) -> dict[str, Any]:
    """Write a whole (short) stage at once; a no-op when the same run already finished."""
    writer = StageWriter(Path(out), stage, config, inputs, schema=schema)
    if writer.done:
        return writer.manifest or {}
    with writer:
        writer.append(rows)
        return writer.finish(**finish_kwargs)

