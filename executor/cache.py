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

Bad data never crashes a reader. Every row is checked, on import and on every read (column
types, status and source values, arguments a JSON object within `MAX_JSON_DEPTH` levels, no
NaN or infinity, valid UTF-8, the key matching the arguments): a corrupt row met on read is a
miss, counted in `ResponseCache.corrupt_rows`; on import it is skipped and counted (or, by
default in `import_cache`, refused). A file that is not a response cache (bad header,
truncated, unknown schema version, missing table) is one `InputError` naming it. A writer
waits for a lock at most `BUSY_TIMEOUT_S` seconds (SQLite's busy timeout, then retries with
backoff), then gets one `InputError`. An import is one transaction: when it fails, a cache it
created is removed and an existing one is left unchanged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from imaginarium.errors import InputError, one_line
from imaginarium.jsonutil import canonical_json

EntrySource = Literal["real", "simulated"]
SCHEMA_VERSION = 1
KNOWN_SCHEMA_VERSIONS = frozenset({SCHEMA_VERSION})
BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another process's lock, in all, before giving up
_BUSY_SLICE_S = 5.0  # SQLite's own busy handler waits at most this long per try; then we back off and retry
MAX_JSON_DEPTH = 100  # arguments nested deeper than this are a corrupt row

log = logging.getLogger(__name__)
_T = TypeVar("_T")

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
_INT64_MAX = 2**63 - 1


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


@dataclass
class ImportReport:
    """What an import did: entries written, corrupt rows skipped and the first one's reason."""

    imported: int
    skipped: int = 0
    first_skipped: str | None = None  # "FILE:LINE: why"


class ResponseCache:
    """A response cache file. Open one per process (connections are not shared across forks).

    `corrupt_rows` counts the corrupt rows met while reading (each is treated as absent);
    `first_corrupt` says where the first one was and why.
    """

    def __init__(self, path: str | Path, *, create: bool = True, readonly: bool = False):
        self.path = Path(path)
        self.corrupt_rows = 0
        self.first_corrupt: str | None = None
        if not self.path.exists() and not create:
            raise InputError("no such response cache", where=str(self.path))
        if self.path.is_dir():
            raise InputError("is a directory, not a response cache file", where=str(self.path))
        _check_header(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the directory of the response cache ({exc.strerror or exc})",
                             where=str(self.path)) from None
        uri = f"file:{self.path}?mode={'ro' if readonly else 'rwc'}"
        with self._errors(busy=True):
            self._db = sqlite3.connect(uri, uri=True, timeout=min(_BUSY_SLICE_S, BUSY_TIMEOUT_S),
                                       isolation_level=None, check_same_thread=False)
        self._db.text_factory = _text  # invalid UTF-8 in a row makes that row corrupt, not the whole query
        try:
            self._retrying(lambda: self._check_or_create(readonly))
        except BaseException:
            self._db.close()
            raise

    # -- opening ---------------------------------------------------------------------------
    def _check_or_create(self, readonly: bool) -> None:
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and not {"meta", "responses"} <= tables:
            missing = " and ".join(sorted({"meta", "responses"} - tables))
            raise InputError(f"an SQLite file, but not a response cache (no {missing} table)", where=str(self.path))
        if tables:
            present = {row[1] for row in self._db.execute("PRAGMA table_info(responses)")}
            if missing_columns := [c for c in COLUMNS if c not in present]:
                raise InputError(f"not a response cache (table responses has no column {', '.join(missing_columns)})",
                                 where=str(self.path))
        if not readonly:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            if not tables:
                self._transaction(lambda: self._create_schema())
        if tables or not readonly:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = row[0] if row else None
            if not (isinstance(version, str) and re.fullmatch(r"\s*[0-9]{1,9}\s*", version)):
                shown = "missing" if row is None else f"{str(version)[:40]!r} is not a known integer"
                raise InputError(f"corrupt response cache: schema version {shown} (expected {SCHEMA_VERSION})",
                                 where=str(self.path))
            if int(version) not in KNOWN_SCHEMA_VERSIONS:
                raise InputError(f"response cache schema version {int(version)}, expected {SCHEMA_VERSION}",
                                 where=str(self.path))

    def _create_schema(self) -> None:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                self._db.execute(statement)
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _errors(self, *, busy: bool = True) -> _SqliteErrors:
        """Turn SQLite's low-level errors into one clear InputError naming the file (a busy
        database too, unless `busy` is False: `_retrying` handles that one)."""
        return _SqliteErrors(self.path, busy=busy)

    def _transaction(self, action: Callable[[], _T]) -> _T:
        """Run `action` in one write transaction (BEGIN IMMEDIATE: the write lock is taken first)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            result = action()
            self._db.execute("COMMIT")
            return result
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _retrying(self, action: Callable[[], _T]) -> _T:
        """Run `action` (one read, or one whole transaction), again while another process holds
        the lock: SQLite's busy handler waits a slice, then we back off and retry, for at most
        `BUSY_TIMEOUT_S` seconds in all; then one InputError."""
        bound = BUSY_TIMEOUT_S
        deadline = time.monotonic() + bound
        pause = 0.01
        while True:
            left = deadline - time.monotonic()
            try:
                self._db.execute(f"PRAGMA busy_timeout = {max(0, int(min(_BUSY_SLICE_S, left) * 1000))}")
                with self._errors(busy=False):
                    return action()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _busy_error(self.path, bound) from None
                time.sleep(min(pause, left))
                pause = min(pause * 2, 1.0)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------
    def _checked(self, row: tuple, *, quiet: bool = False) -> CacheEntry | None:
        """The entry of a stored row, or None (counted) when the row is corrupt. The first one is
        logged as a warning unless `quiet` (whole-table reads report their count instead)."""
        try:
            return _entry(row)
        except CorruptRow as exc:
            self.corrupt_rows += 1
            if self.first_corrupt is None:
                tool, digest = (row[0], row[1]) if len(row) > 1 else (None, None)
                key = f"{str(tool)[:80]!r}/{str(digest)[:12]}"
                self.first_corrupt = one_line(f"{self.path}: entry {key}: {exc}")
                if not quiet:
                    log.warning("corrupt row in the response cache, treated as absent: %s", self.first_corrupt)
            return None

    def get(self, tool: str, arguments: dict[str, Any]) -> CacheEntry | None:
        """The entry for this call, or None (also when its stored row is corrupt)."""
        key = arguments_hash(arguments)
        row = self._retrying(lambda: self._db.execute(
            f"SELECT {_SELECT} FROM responses WHERE tool = ? AND args_hash = ?", (tool, key)).fetchone())
        return self._checked(row) if row else None

    def examples(self, tool: str, k: int, source: EntrySource = "real") -> list[CacheEntry]:
        """Up to k successful entries of one tool (oldest first, so the choice is stable)."""

        def read() -> list[CacheEntry]:
            found: list[CacheEntry] = []
            cursor = self._db.execute(
                f"SELECT {_SELECT} FROM responses WHERE tool = ? AND source = ? AND status = 'ok' "
                "ORDER BY created_at, args_hash", (tool, source))
            while len(found) < k and (chunk := cursor.fetchmany(max(k - len(found), 16))):
                found.extend(e for e in map(self._checked, chunk) if e is not None)
            cursor.close()
            return found[:k]

        return self._retrying(read) if k > 0 else []

    def stats(self) -> dict[str, dict[str, int]]:
        """Entries per tool and source: {tool: {"real": n, "simulated": m}} (corrupt rows left out,
        counted in `corrupt_rows`)."""
        out: dict[str, dict[str, int]] = {}
        for row in self.rows():
            out.setdefault(row["tool"], {"real": 0, "simulated": 0})[row["source"]] += 1
        return dict(sorted(out.items()))

    def __len__(self) -> int:
        """The number of stored rows (corrupt ones included)."""
        return self._retrying(lambda: self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def rows(self, batch: int = 10_000) -> Iterator[dict[str, Any]]:
        """Every valid entry as a dict of the stored columns, in key order (corrupt rows are
        skipped and counted in `corrupt_rows`, not logged)."""
        cursor = self._retrying(lambda: self._db.execute(f"SELECT {_SELECT} FROM responses ORDER BY tool, args_hash"))
        try:
            while True:
                with self._errors():
                    chunk = cursor.fetchmany(batch)
                if not chunk:
                    return
                for row in chunk:
                    if self._checked(row, quiet=True) is not None:
                        yield dict(zip(COLUMNS, row))
        finally:
            cursor.close()

    # -- writing ---------------------------------------------------------------------------
    def put(self, entry: CacheEntry) -> None:
        self.put_many([entry])

    def put_many(self, entries: Iterable[CacheEntry]) -> None:
        """Insert entries in one transaction (see the precedence rule in the module docstring).

        Raises:
            ValueError: an entry that would be a corrupt row (nothing is written then).
            InputError: a broken cache file, or one another process keeps locked too long.
        """
        rows = []
        for entry in entries:
            try:
                _check_entry(entry)
            except CorruptRow as exc:
                raise ValueError(f"not a valid response cache entry ({exc})") from None
            rows.append(entry.row())
        if rows:
            self._retrying(lambda: self._transaction(lambda: self._db.executemany(_UPSERT, rows)))


class CorruptRow(ValueError):
    """A row that is not a valid cache entry (the message says which field and why)."""


class _BadText(bytes):
    """A stored TEXT value that is not valid UTF-8."""


def _text(data: bytes) -> str | _BadText:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _BadText(data)


class _SqliteErrors:
    def __init__(self, path: Path, *, busy: bool = True):
        self.path = path
        self.busy = busy

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        if exc_type is None or not issubclass(exc_type, sqlite3.Error):
            return False
        if issubclass(exc_type, sqlite3.OperationalError) and _is_busy(exc):
            if self.busy:
                raise _busy_error(self.path, BUSY_TIMEOUT_S) from exc
            return False
        if issubclass(exc_type, (sqlite3.ProgrammingError, sqlite3.InterfaceError)):
            return False  # a bug (a closed connection, a bad binding), not a bad file
        if issubclass(exc_type, sqlite3.DatabaseError) and not issubclass(exc_type, sqlite3.OperationalError):
            raise InputError(f"corrupt or not a response cache ({exc})", where=str(self.path)) from exc
        raise InputError(f"cannot use response cache ({exc})", where=str(self.path)) from exc


def _is_busy(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def _busy_error(path: Path, bound: float) -> InputError:
    return InputError(f"cache is busy: another process holds a write lock for more than {bound:g} s", where=str(path))


def _check_header(path: Path) -> None:
    """Refuse a file that is not SQLite or is cut short, before SQLite opens (and maybe writes) it."""
    try:
        size = path.stat().st_size
        if size == 0:
            return  # a new, empty database
        with open(path, "rb") as handle:
            header = handle.read(100)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InputError(f"cannot read the response cache ({exc.strerror or exc})", where=str(path)) from None
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        raise InputError("corrupt or not a response cache (not an SQLite file: bad header)", where=str(path))
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    header_valid = header[24:28] == header[92:96]  # the in-header page count is kept up to date
    journal = any(Path(f"{path}{suffix}").exists() for suffix in ("-wal", "-journal"))
    if header_valid and pages and not journal and size < pages * page_size:
        raise InputError(f"corrupt response cache: truncated ({size} bytes, its header says {pages * page_size})",
                         where=str(path))


# -- row checks ----------------------------------------------------------------------------------
def _entry(row: tuple) -> CacheEntry:
    """The entry of a stored row; CorruptRow when any column is wrong."""
    if len(row) != len(COLUMNS):
        raise CorruptRow(f"expected {len(COLUMNS)} columns, got {len(row)}")
    tool, digest, arguments, response, status, error_kind, source, created_at, tool_version, total_chars, content_type = row
    parsed = _arguments(arguments, text_only=True)
    entry = CacheEntry(tool=tool, arguments=parsed, response=response, status=status, source=source,
                       error_kind=error_kind, created_at=created_at, tool_version=tool_version,
                       total_chars=total_chars, content_type=content_type)
    _check_entry(entry, stored=True)
    if digest != arguments_hash(parsed):
        raise CorruptRow("field args_hash: does not match the arguments")
    return entry


def _check_entry(entry: CacheEntry, *, stored: bool = False) -> None:
    """CorruptRow unless every field has its type and an allowed value."""

    def text(field: str, value: Any, *, optional: bool = False, nonempty: bool = False) -> None:
        if value is None and optional:
            return
        if isinstance(value, _BadText):
            raise CorruptRow(f"field {field}: not valid UTF-8")
        if not isinstance(value, str) or (nonempty and not value):
            expected = "a non-empty string" if nonempty else "a string"
            raise CorruptRow(f"field {field}: expected {expected}{' or null' if optional else ''}, got {_show(value)}")
        if not _utf8(value):
            raise CorruptRow(f"field {field}: not valid UTF-8 (a lone surrogate)")

    text("tool", entry.tool, nonempty=True)
    if not isinstance(entry.arguments, dict):
        raise CorruptRow(f"field arguments: expected a JSON object, got {_show(entry.arguments)}")
    text("response", entry.response)
    if entry.status not in ("ok", "error") or not isinstance(entry.status, str):
        raise CorruptRow(f"field status: expected ok or error, got {_show(entry.status)}")
    if entry.source not in ("real", "simulated") or not isinstance(entry.source, str):
        raise CorruptRow(f"field source: expected real or simulated, got {_show(entry.source)}")
    text("error_kind", entry.error_kind, optional=True)
    text("created_at", entry.created_at, nonempty=stored)
    if entry.created_at:
        try:
            dt.datetime.fromisoformat(entry.created_at)
        except ValueError:
            raise CorruptRow(f"field created_at: expected an ISO 8601 time, got {_show(entry.created_at)}") from None
    text("tool_version", entry.tool_version, optional=True)
    total = entry.total_chars
    if total is not None and (not isinstance(total, int) or isinstance(total, bool) or not 0 <= total <= _INT64_MAX):
        raise CorruptRow(f"field total_chars: expected a whole number >= 0 or null, got {_show(total)}")
    text("content_type", entry.content_type, optional=True)
    try:
        canonical_json(entry.arguments).encode("utf-8")
    except (ValueError, TypeError, RecursionError) as exc:
        raise CorruptRow(f"field arguments: not JSON ({str(exc)[:100]})") from None


def _arguments(value: Any, *, text_only: bool = False) -> dict[str, Any]:
    """The arguments of a row: a JSON object (or, always when stored, its JSON text)."""
    if isinstance(value, _BadText):
        raise CorruptRow("field arguments: not valid UTF-8")
    if isinstance(value, str):
        value = strict_json(value, "field arguments")
    elif text_only:
        raise CorruptRow(f"field arguments: expected JSON text, got {_show(value)}")
    if not isinstance(value, dict):
        raise CorruptRow(f"field arguments: expected a JSON object (or its JSON text), got {_show(value)}")
    if _depth(value) > MAX_JSON_DEPTH:
        raise CorruptRow(f"field arguments: nested more than {MAX_JSON_DEPTH} levels")
    return value


def strict_json(text: str, what: str | None = None, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON text, refusing NaN, infinities, numbers out of range and nesting deeper than
    `max_depth` levels: CorruptRow, its message prefixed with `what` when given."""
    prefix = f"{what}: " if what else ""
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except CorruptRow as exc:
        raise CorruptRow(f"{prefix}{exc}") from None
    except RecursionError:
        raise CorruptRow(f"{prefix}nested more than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise CorruptRow(f"{prefix}invalid JSON ({exc.msg} at column {exc.colno})") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise CorruptRow(f"{prefix}invalid JSON ({str(exc)[:100]})") from None
    if _depth(value) > max_depth:
        raise CorruptRow(f"{prefix}nested more than {MAX_JSON_DEPTH} levels")
    return value


def _refuse_constant(name: str) -> Any:
    raise CorruptRow(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise CorruptRow(f"number {text[:30]} is out of range")
    return value


def _depth(value: Any) -> int:
    """How deeply objects and arrays nest in `value` (a scalar: 0); stops counting past the limit."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH + 1:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _show(value: Any) -> str:
    return repr(value)[:80]


# -- export and import -------------------------------------------------------------------------
def export_cache(cache_path: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Write every valid entry of a cache to a stage directory (parquet + manifest) that ships
    with a release; returns the manifest. Corrupt rows are left out (and logged). Re-exporting
    an unchanged cache is a no-op."""
    import pyarrow as pa

    from imaginarium.stage import write_stage

    with ResponseCache(cache_path, create=False) as cache:
        with cache._errors():
            cache._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the file alone then holds every entry
        rows = list(cache.rows())
        if cache.corrupt_rows:
            log.warning("export of %s left out %d corrupt rows (first: %s)", cache_path, cache.corrupt_rows,
                        cache.first_corrupt)
    by_key: dict[tuple[str, str], int] = {}
    for row in rows:
        by_key[row["tool"], row["source"]] = by_key.get((row["tool"], row["source"]), 0) + 1
    counts = {f"{tool}/{source}": n for (tool, source), n in sorted(by_key.items())}
    schema = pa.schema([(c, pa.int64() if c == "total_chars" else pa.string()) for c in COLUMNS])
    table = pa.Table.from_pylist(rows, schema=schema)
    return write_stage(out_dir, "cache-export", {}, {"cache": cache_path}, table, counts=counts)


def import_cache(source: str | Path, into: str | Path, *, skip_corrupt: bool = False) -> int:
    """Load entries from an exported directory or a JSON Lines file into a cache; returns how many.

    Every row is checked first; keys are recomputed, not trusted; the usual precedence applies
    (real beats simulated). By default a corrupt row raises InputError naming it (FILE:LINE) and
    nothing is written; with `skip_corrupt` it is skipped (see `import_entries`, which also says
    how many were).
    """
    return import_entries(source, into, skip_corrupt=skip_corrupt).imported


def import_entries(source: str | Path, into: str | Path, *, skip_corrupt: bool = True) -> ImportReport:
    """`import_cache` that reports the corrupt rows it skipped.

    Raises:
        InputError: an unreadable source; a corrupt row when not `skip_corrupt`; a source whose
            rows are all corrupt; a broken or busy target cache. A failed import leaves nothing
            behind: a target it created is removed, an existing one is unchanged.
    """
    source = Path(source)
    entries: list[CacheEntry] = []
    skipped = 0
    first: str | None = None
    for where, row in _source_rows(source):
        try:
            entries.append(_entry_from_row(row))
        except CorruptRow as exc:
            if not skip_corrupt:
                raise InputError(str(exc), where=where) from None
            skipped += 1
            first = first or one_line(f"{where}: {exc}")
    if skipped and not entries:
        raise InputError(f"no valid entries to import: {skipped} corrupt {'row' if skipped == 1 else 'rows'} "
                         f"(first: {first})", where=str(source))
    _write_atomically(Path(into), entries)
    return ImportReport(imported=len(entries), skipped=skipped, first_skipped=first)


def _source_rows(source: Path) -> Iterator[tuple[str, Any]]:
    """(where, row) for each row of an exported directory or a JSON Lines file; a line that is not
    a JSON value comes as a CorruptRow in place of its row."""
    if source.is_dir():
        import pyarrow as pa

        from imaginarium.stage import read_rows

        try:
            rows = read_rows(source)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise InputError(f"cannot read the exported cache ({one_line(str(exc))[:200]})", where=str(source)) from None
        for i, row in enumerate(rows):
            yield f"{source} row {i}", row
        return
    if not source.is_file():
        raise InputError("no such file or directory", where=str(source))
    try:
        with open(source, "rb") as handle:
            lines = list(handle)
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror or exc})", where=str(source)) from None
    for number, raw in enumerate(lines, start=1):
        where = f"{source}:{number}"
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a byte order mark
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield where, CorruptRow(f"not valid UTF-8 (byte {exc.start + 1})")
            continue
        if line.strip():
            try:  # the row object is one level: its fields may nest MAX_JSON_DEPTH more
                yield where, strict_json(line, max_depth=MAX_JSON_DEPTH + 1)
            except CorruptRow as exc:
                yield where, exc


def _entry_from_row(row: Any) -> CacheEntry:
    """The entry of one imported row (an object; `arguments` an object or its JSON text)."""
    if isinstance(row, CorruptRow):
        raise row
    if not isinstance(row, dict):
        raise CorruptRow(f"expected an object, got {_show(row)}")
    created = row.get("created_at")
    entry = CacheEntry(
        tool=row.get("tool"), arguments=_arguments(row.get("arguments")), response=row.get("response"),  # type: ignore[arg-type]  # checked below
        status=row.get("status", "ok"), source=row.get("source", "real"), error_kind=row.get("error_kind"),
        created_at="" if created is None else created, tool_version=row.get("tool_version"),
        total_chars=row.get("total_chars"), content_type=row.get("content_type"),
    )
    _check_entry(entry)
    return entry


def _write_atomically(into: Path, entries: list[CacheEntry]) -> None:
    """Put `entries` into the cache `into` in one transaction; on failure remove what this made."""
    existed = into.exists()
    empty_before = existed and into.is_file() and into.stat().st_size == 0
    made_dirs = []
    parent = into.parent
    while not parent.exists():
        made_dirs.append(parent)
        parent = parent.parent
    try:
        with ResponseCache(into) as cache:
            cache.put_many(entries)
    except BaseException:
        if not existed or empty_before:
            for suffix in ("-wal", "-shm", "-journal"):
                Path(f"{into}{suffix}").unlink(missing_ok=True)
            if empty_before:
                os.truncate(into, 0)
            else:
                into.unlink(missing_ok=True)
                for directory in made_dirs:  # innermost first
                    try:
                        directory.rmdir()
                    except OSError:
                        break
        raise
