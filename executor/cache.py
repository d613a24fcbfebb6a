"""The response cache: one SQLite file (WAL) mapping a call to the response it got.

Key: the tool name plus the sha256 of the canonical JSON of the arguments (keys sorted,
numbers normalised: `{"b": 1, "a": 2.0}` and `{"a": 2, "b": 1}` are the same call). Value: the
response text, status, error kind, `source` (real or simulated, never confused), the time and
the tool version it was recorded with.

Why SQLite in WAL mode: it is embedded (the cache ships as one file, or as parquet through
export/import), readers never block the writer, and several processes may write the same file
at once (each insert is one short transaction; a busy writer waits instead of failing). The
primary key makes a repeated insert of the same call an update, never a duplicate row.

Precedence: a real response always replaces a simulated one; a simulated response never
replaces a real one; a newer real response replaces an older real one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from imaginarium.errors import InputError
from imaginarium.jsonutil import canonical_json

EntrySource = Literal["real", "simulated"]
SCHEMA_VERSION = 1
_BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS responses (
    tool TEXT NOT NULL,
    args_hash TEXT NOT NULL,
    arguments TEXT NOT NULL,
    response TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    error_kind TEXT,
    source TEXT NOT NULL CHECK (source IN ('real', 'simulated')),
    created_at TEXT NOT NULL,
    tool_version TEXT,
    total_chars INTEGER,
    content_type TEXT,
    PRIMARY KEY (tool, args_hash)
) WITHOUT ROWID;
"""

_UPSERT = """
INSERT INTO responses (tool, args_hash, arguments, response, status, error_kind, source, created_at, tool_version,
                       total_chars, content_type)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tool, args_hash) DO UPDATE SET
    arguments = excluded.arguments, response = excluded.response, status = excluded.status,
    error_kind = excluded.error_kind, source = excluded.source, created_at = excluded.created_at,
    tool_version = excluded.tool_version, total_chars = excluded.total_chars,
    content_type = excluded.content_type
WHERE excluded.source = 'real' OR responses.source = 'simulated'
"""

COLUMNS = ("tool", "args_hash", "arguments", "response", "status", "error_kind", "source", "created_at", "tool_version",
           "total_chars", "content_type")
_SELECT = ", ".join(COLUMNS)


def arguments_hash(arguments: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the arguments: the argument half of a cache key."""
    return hashlib.sha256(canonical_json(arguments).encode("utf-8")).hexdigest()


@dataclass
class CacheEntry:
    tool: str
    arguments: dict[str, Any]
    response: str
    status: str = "ok"
    source: EntrySource = "real"
    error_kind: str | None = None
    created_at: str = ""
    tool_version: str | None = None
    total_chars: int | None = None  # the whole response's size when `response` was cut at the size cap
    content_type: str | None = None

    def row(self) -> tuple:
        arguments = canonical_json(self.arguments)
        digest = hashlib.sha256(arguments.encode("utf-8")).hexdigest()
        created = self.created_at or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return (self.tool, digest, arguments, self.response, self.status, self.error_kind, self.source, created,
                self.tool_version, self.total_chars, self.content_type)


class ResponseCache:
    """A response cache file. Open one per process (connections are not shared across forks)."""

    def __init__(self, path: str | Path, *, create: bool = True, readonly: bool = False):
        self.path = Path(path)
        if not self.path.exists() and not create:
            raise InputError("no such response cache", where=str(self.path))
        if self.path.is_dir():
            raise InputError("is a directory, not a response cache file", where=str(self.path))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"file:{self.path}?mode={'ro' if readonly else 'rwc'}"
        self._db = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
        with self._errors():
            self._check_or_create(readonly)

    # -- opening ---------------------------------------------------------------------------
    def _check_or_create(self, readonly: bool) -> None:
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and not {"meta", "responses"} <= tables:
            raise InputError("an SQLite file, but not a response cache (no responses table)", where=str(self.path))
        if not readonly:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            if not tables:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
        if tables or not readonly:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None or int(row[0]) != SCHEMA_VERSION:
                raise InputError(f"response cache schema version {row and row[0]}, expected {SCHEMA_VERSION}",
                                 where=str(self.path))

    def _errors(self):
        """Turn SQLite's low-level errors into one clear InputError naming the file."""
        return _SqliteErrors(self.path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------
    def get(self, tool: str, arguments: dict[str, Any]) -> CacheEntry | None:
        """The entry for this call, or None."""
        with self._errors():
            row = self._db.execute(
                f"SELECT {_SELECT} FROM responses WHERE tool = ? AND args_hash = ?", (tool, arguments_hash(arguments))
            ).fetchone()
        return _entry(row) if row else None

    def examples(self, tool: str, k: int, source: EntrySource = "real") -> list[CacheEntry]:
        """Up to k successful entries of one tool (oldest first, so the choice is stable)."""
        with self._errors():
            rows = self._db.execute(
                f"SELECT {_SELECT} FROM responses WHERE tool = ? AND source = ? AND status = 'ok' "
                "ORDER BY created_at, args_hash LIMIT ?",
                (tool, source, k),
            ).fetchall()
        return [_entry(r) for r in rows]

    def stats(self) -> dict[str, dict[str, int]]:
        """Entries per tool and source: {tool: {"real": n, "simulated": m}}."""
        with self._errors():
            rows = self._db.execute("SELECT tool, source, COUNT(*) FROM responses GROUP BY tool, source").fetchall()
        out: dict[str, dict[str, int]] = {}
        for tool, source, count in rows:
            out.setdefault(tool, {"real": 0, "simulated": 0})[source] = count
        return dict(sorted(out.items()))

    def __len__(self) -> int:
        with self._errors():
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def rows(self, batch: int = 10_000) -> Iterator[dict[str, Any]]:
        """Every entry as a dict of the stored columns, in key order."""
        with self._errors():
            cursor = self._db.execute(f"SELECT {_SELECT} FROM responses ORDER BY tool, args_hash")
            while chunk := cursor.fetchmany(batch):
                for row in chunk:
                    yield dict(zip(COLUMNS, row))

    # -- writing ---------------------------------------------------------------------------
    def put(self, entry: CacheEntry) -> None:
        self.put_many([entry])

    def put_many(self, entries: Iterable[CacheEntry]) -> None:
        """Insert entries in one transaction (see the precedence rule in the module docstring)."""
        rows = [e.row() for e in entries]
        if not rows:
            return
        with self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(_UPSERT, rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise


class _SqliteErrors:
    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        if exc_type is not None and issubclass(exc_type, sqlite3.DatabaseError) and not issubclass(
            exc_type, sqlite3.OperationalError
        ):
            raise InputError(f"corrupt or not a response cache ({exc})", where=str(self.path)) from exc
        if exc_type is not None and issubclass(exc_type, sqlite3.OperationalError) and "locked" not in str(exc):
            raise InputError(f"cannot use response cache ({exc})", where=str(self.path)) from exc
        return False


def _entry(row: tuple) -> CacheEntry:
    tool, _digest, arguments, response, status, error_kind, source, created_at, tool_version, total_chars, content_type = row
    return CacheEntry(tool=tool, arguments=json.loads(arguments), response=response, status=status, source=source,
                      error_kind=error_kind, created_at=created_at, tool_version=tool_version, total_chars=total_chars,
                      content_type=content_type)


# -- export and import -------------------------------------------------------------------------
def export_cache(cache_path: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Write every entry of a cache to a stage directory (parquet + manifest) that ships with a
    release; returns the manifest. Re-exporting an unchanged cache is a no-op."""
    import pyarrow as pa

    from imaginarium.stage import write_stage

    with ResponseCache(cache_path, create=False) as cache:
        with cache._errors():
            cache._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the file alone then holds every entry
        stats = cache.stats()
        rows = list(cache.rows())
    schema = pa.schema([(c, pa.int64() if c == "total_chars" else pa.string()) for c in COLUMNS])
    table = pa.Table.from_pylist(rows, schema=schema)
    counts = {f"{tool}/{source}": n for tool, by_source in stats.items() for source, n in by_source.items() if n}
    return write_stage(out_dir, "cache-export", {}, {"cache": cache_path}, table, counts=counts)


def import_cache(source: str | Path, into: str | Path) -> int:
    """Load entries from an exported directory or a JSON Lines file into a cache; returns how many.

    Every row is checked first (a bad one raises InputError naming it, and nothing is written);
    keys are recomputed, not trusted; the usual precedence applies (real beats simulated).
    """
    source = Path(source)
    if source.is_dir():
        from imaginarium.stage import read_rows

        rows = [(f"{source} row {i}", row) for i, row in enumerate(read_rows(source))]
    elif source.is_file():
        rows = []
        with open(source, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        rows.append((f"{source}:{number}", json.loads(line)))
                    except json.JSONDecodeError as exc:
                        raise InputError(f"invalid JSON ({exc.msg})", where=f"{source}:{number}") from None
    else:
        raise InputError("no such file or directory", where=str(source))
    entries = [_entry_from_row(where, row) for where, row in rows]
    with ResponseCache(into) as cache:
        cache.put_many(entries)
    return len(entries)


def _entry_from_row(where: str, row: Any) -> CacheEntry:
    if not isinstance(row, dict):
        raise InputError("expected an object", where=where)
    arguments = row.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            raise InputError("field arguments: not valid JSON", where=where) from None
    checks = [
        ("tool", isinstance(row.get("tool"), str) and row["tool"] != "", "a non-empty string"),
        ("arguments", isinstance(arguments, dict), "a JSON object (or its JSON text)"),
        ("response", isinstance(row.get("response"), str), "a string"),
        ("status", row.get("status", "ok") in ("ok", "error"), "ok or error"),
        ("source", row.get("source", "real") in ("real", "simulated"), "real or simulated"),
    ]
    for field, ok, expected in checks:
        if not ok:
            raise InputError(f"field {field}: expected {expected}, got {row.get(field)!r}"[:300], where=where)
    assert isinstance(arguments, dict)  # checked above
    return CacheEntry(
        tool=row["tool"], arguments=arguments, response=row["response"], status=row.get("status", "ok"),
        source=row.get("source", "real"), error_kind=row.get("error_kind"), created_at=row.get("created_at") or "",
        tool_version=row.get("tool_version"), total_chars=row.get("total_chars"), content_type=row.get("content_type"),
    )
