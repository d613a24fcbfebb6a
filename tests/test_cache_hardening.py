"""The response cache never crashes on bad data: corrupt files and schema versions are one
InputError naming the file; corrupt rows are misses on read and skipped (and counted) on import;
a busy database is one InputError after a bounded wait; a failed import leaves nothing behind."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imaginarium.errors import InputError
from imaginarium.executor import cache as cache_module
from imaginarium.executor.cache import (
    CacheEntry,
    ResponseCache,
    arguments_hash,
    export_cache,
    import_cache,
    import_entries,
)
from imaginarium.executor.executor import Executor
from imaginarium.schemas.toolspec import HttpBinding, ToolSource, ToolSpec

GOOD = {"tool": "weather", "arguments": {"city": "Oslo"}, "response": '{"t": -3}', "source": "real",
        "created_at": "2025-01-15T09:00:00Z"}


def one_error_line(code: int, out: str, err: str, *needles: str) -> str:
    """The CLI failed cleanly: exit 2, one `error: ...` line naming what is wrong, no traceback."""
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def write_jsonl(path: Path, *lines: str | bytes | dict) -> Path:
    chunks = [line if isinstance(line, bytes) else
              (json.dumps(line) if isinstance(line, dict) else line).encode("utf-8") for line in lines]
    path.write_bytes(b"\n".join(chunks) + b"\n")
    return path


def make_cache(path: Path, count: int = 3) -> Path:
    with ResponseCache(path) as response_cache:
        response_cache.put_many(CacheEntry("weather", {"city": f"c{i}"}, f"r{i}") for i in range(count))
    return path


def cache_files(path: Path) -> list[Path]:
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")) if p.exists()]


# -- corrupt files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["banana", "1.5", "", " ", "-1", "\u00b2", "1" * 40, "2"])
def test_bad_schema_version_is_one_input_error(tmp_path, run, value):
    path = make_cache(tmp_path / "c.sqlite")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (value,))
    with pytest.raises(InputError, match="schema version") as info:
        ResponseCache(path)
    assert info.value.where == str(path)
    one_error_line(*run("cache", "stats", path), str(path), "schema version")
    one_error_line(*run("cache", "export", path, "-o", tmp_path / "export"), str(path), "schema version")


def test_schema_version_not_utf8_or_missing(tmp_path, run):
    path = make_cache(tmp_path / "c.sqlite")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = CAST(x'ff31' AS TEXT) WHERE key = 'schema_version'")
    one_error_line(*run("cache", "stats", path), str(path), "schema version")
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM meta")
    one_error_line(*run("cache", "stats", path), str(path), "schema version missing")


def test_non_sqlite_file(tmp_path, run):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"SQLite format 2\x00" + b"\x07" * 4000)
    before = path.read_bytes()
    one_error_line(*run("cache", "stats", path), str(path), "not an SQLite file")
    source = write_jsonl(tmp_path / "in.jsonl", GOOD)
    one_error_line(*run("cache", "import", source, "--into", path), str(path))
    assert path.read_bytes() == before and cache_files(path) == [path]
    path.write_bytes(b"tiny")
    one_error_line(*run("cache", "stats", path), str(path))


def test_truncated_sqlite_file(tmp_path, run):
    path = tmp_path / "c.sqlite"
    with ResponseCache(path) as response_cache:
        response_cache.put_many(CacheEntry("t", {"i": i}, "x" * 2000) for i in range(200))
    data = path.read_bytes()
    assert not Path(f"{path}-wal").exists()  # closing checkpointed everything into the file
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated") as info:
        ResponseCache(path)
    assert info.value.where == str(path)
    one_error_line(*run("cache", "stats", path), str(path), "truncated")
    source = write_jsonl(tmp_path / "in.jsonl", GOOD)
    one_error_line(*run("cache", "import", source, "--into", path), str(path))
    assert path.read_bytes() == data[: len(data) // 2]


def test_missing_table_or_column(tmp_path, run):
    path = tmp_path / "c.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    one_error_line(*run("cache", "stats", path), str(path), "no responses table")
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE responses (tool TEXT, args_hash TEXT)")
    one_error_line(*run("cache", "stats", path), str(path), "has no column")


# -- corrupt rows met on read ----------------------------------------------------------------------
def weather_tool() -> ToolSpec:
    return ToolSpec(
        name="weather", source_name="weather", source=ToolSource(format="openapi"),
        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        http=HttpBinding(method="get", server_url="http://127.0.0.1:9", path="/weather"),
    )


def _nested(levels: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"n": value}
    return value


# city -> (column overrides as SQL expressions, why the row is corrupt)
CORRUPT_ROWS = {
    "lots": {"total_chars": "'lots'"},
    "float-total": {"total_chars": "1.5"},
    "negative-total": {"total_chars": "-4"},
    "blob-response": {"response": "x'00ff'"},
    "bad-utf8-response": {"response": "CAST(x'6f6bff' AS TEXT)"},
    "bad-status": {"status": "'maybe'"},
    "bad-source": {"source": "'invented'"},
    "blob-tool-version": {"tool_version": "x'01'"},
    "blob-content-type": {"content_type": "x'01'"},
    "blob-error-kind": {"error_kind": "x'01'"},
    "bad-created": {"created_at": "'yesterday'"},
    "empty-created": {"created_at": "''"},
}


def insert_corrupt_rows(path: Path) -> list[dict]:
    """One good entry, then rows written behind the cache's back; returns the arguments of each
    corrupt row (whose key matches, so a lookup finds it)."""
    with ResponseCache(path) as response_cache:
        response_cache.put(CacheEntry(GOOD["tool"], GOOD["arguments"], GOOD["response"]))
    calls = []
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("PRAGMA ignore_check_constraints = ON")
        for city, overrides in CORRUPT_ROWS.items():
            arguments = {"city": city}
            values = {"tool": "'weather'", "args_hash": f"'{arguments_hash(arguments)}'",
                      "arguments": f"'{json.dumps(arguments)}'", "response": "'fine'", "status": "'ok'",
                      "error_kind": "NULL", "source": "'real'", "created_at": "'2025-01-01T00:00:00Z'",
                      "tool_version": "NULL", "total_chars": "NULL", "content_type": "NULL", **overrides}
            db.execute(f"INSERT INTO responses ({', '.join(values)}) VALUES ({', '.join(values.values())})")
            calls.append(arguments)
        odd = [  # arguments that are no JSON object, or do not match their key
            ({"city": "not-json"}, "'not json'"),
            ({"city": "nan"}, """'{"city": NaN}'"""),
            ({"city": "infinity"}, """'{"city": 1e999}'"""),
            ({"city": "array"}, "'[1, 2]'"),
            ({"city": "blob-arguments"}, "x'7b7d'"),
            ({"city": "bad-utf8-arguments"}, "CAST(x'7bff7d' AS TEXT)"),
            ({"city": "other-key"}, """'{"city": "Paris"}'"""),
            (_nested(200), f"'{json.dumps(_nested(200))}'"),
        ]
        for arguments, stored in odd:
            db.execute("INSERT INTO responses VALUES ('weather', ?, " + stored +
                       ", 'fine', 'ok', NULL, 'real', '2025-01-01T00:00:00Z', NULL, NULL, NULL)",
                       (arguments_hash(arguments),))
            calls.append(arguments)
    return calls


def test_corrupt_rows_are_misses_and_counted(tmp_path):
    path = tmp_path / "c.sqlite"
    calls = insert_corrupt_rows(path)
    with ResponseCache(path) as response_cache:
        for arguments in calls:
            assert response_cache.get("weather", arguments) is None, arguments
        assert response_cache.corrupt_rows == len(calls)
        assert str(path) in response_cache.first_corrupt and "total_chars" in response_cache.first_corrupt
        assert response_cache.get("weather", GOOD["arguments"]).response == GOOD["response"]
        assert [e.response for e in response_cache.examples("weather", 100)] == [GOOD["response"]]
        assert response_cache.stats() == {"weather": {"real": 1, "simulated": 0}}
        assert [r["arguments"] for r in response_cache.rows()] == ['{"city":"Oslo"}']
        assert len(response_cache) == len(calls) + 1  # the stored rows, corrupt ones included


def test_corrupt_rows_through_executor_export_and_stats(tmp_path, run):
    path = tmp_path / "c.sqlite"
    calls = insert_corrupt_rows(path)
    with ResponseCache(path) as response_cache:
        executor = Executor([weather_tool()], response_cache, "replay")
        for arguments in calls[:len(CORRUPT_ROWS)]:  # the ones the tool's schema accepts
            observation = executor.execute({"name": "weather", "arguments": arguments})
            assert (observation.status, observation.error_kind) == ("error", "cache_miss"), arguments
        hit = executor.execute({"name": "weather", "arguments": GOOD["arguments"]})
        assert hit.source == "cached" and hit.content == GOOD["response"]
    manifest = export_cache(path, tmp_path / "export")
    assert manifest["counts"]["rows"] == 1
    assert import_cache(tmp_path / "export", tmp_path / "copy.sqlite") == 1
    code, out, err = run("cache", "stats", path, "--json")
    assert code == 0 and json.loads(out) == {"weather": {"real": 1, "simulated": 0}}
    assert f"skipped {len(calls)} corrupt rows" in err and "Traceback" not in err
    code, out, err = run("cache", "stats", path)
    assert code == 0 and "weather" in out and "Traceback" not in err
    code, out, err = run("cache", "export", path, "-o", tmp_path / "export2")
    assert code == 0 and "exported 1 entries" in out


# -- import ---------------------------------------------------------------------------------------
def _deep_line() -> str:
    return json.dumps({**GOOD, "arguments": _nested(200)})


BAD_LINES = {
    "lots": json.dumps({**GOOD, "total_chars": "lots"}),
    "nan": '{"tool": "weather", "arguments": {"city": NaN}, "response": "x"}',
    "infinity": '{"tool": "weather", "arguments": {"city": "Oslo"}, "response": "x", "total_chars": Infinity}',
    "huge-float": '{"tool": "weather", "arguments": {"x": 1e400}, "response": "x"}',
    "nested": _deep_line(),
    "very-nested": '{"tool": "weather", "arguments": ' + "[" * 100_000 + "]" * 100_000 + ', "response": "x"}',
    "not-utf8": b'{"tool": "weather", "arguments": {"city": "Oslo\xff"}, "response": "x"}',
    "lone-surrogate": json.dumps({**GOOD, "response": "half \ud800 a character"}),
    "huge-int": '{"tool": "weather", "arguments": {"n": ' + "9" * 5000 + '}, "response": "x"}',
    "big-total": json.dumps({**GOOD, "total_chars": 10**30}),
    "bool-total": json.dumps({**GOOD, "total_chars": True}),
    "float-total": json.dumps({**GOOD, "total_chars": 12.0}),
    "args-text-nan": json.dumps({**GOOD, "arguments": '{"city": NaN}'}),
    "null-response": json.dumps({**GOOD, "response": None}),
    "list-tool": json.dumps({**GOOD, "tool": ["weather"]}),
    "bad-created": json.dumps({**GOOD, "created_at": 5}),
    "not-object": "[1, 2, 3]",
    "not-json": "{half a row",
}


@pytest.mark.parametrize("name", list(BAD_LINES))
def test_import_of_only_bad_rows_fails_and_leaves_no_file(tmp_path, run, name):
    source = write_jsonl(tmp_path / "in.jsonl", BAD_LINES[name])
    target = tmp_path / "new" / "c.sqlite"
    line = one_error_line(*run("cache", "import", source, "--into", target), str(source), "1 corrupt row",
                          f"{source}:1: ")
    assert len(line) < 600
    assert not target.exists() and not target.parent.exists()
    with pytest.raises(InputError, match=rf"{source.name}:1: "):  # the Python default: refuse the first bad row
        import_cache(source, target)
    assert not target.parent.exists()


def test_import_keeps_good_rows_and_counts_bad_ones(tmp_path, run):
    good2 = {**GOOD, "arguments": '{"city": "Paris"}', "total_chars": 77, "source": "simulated"}
    source = write_jsonl(tmp_path / "in.jsonl", GOOD, BAD_LINES["lots"], "", BAD_LINES["nan"],
                         BAD_LINES["not-utf8"], good2, BAD_LINES["nested"])
    target = tmp_path / "c.sqlite"
    code, out, err = run("cache", "import", source, "--into", target)
    assert code == 0 and "Traceback" not in err
    assert out.strip() == (f"imported 2 entries into {target}, skipped 4 corrupt rows (first: {source}:2: "
                           "field total_chars: expected a whole number >= 0 or null, got 'lots')")
    with ResponseCache(target) as response_cache:
        assert response_cache.stats() == {"weather": {"real": 1, "simulated": 1}}
        assert response_cache.get("weather", {"city": "Paris"}).total_chars == 77
    report = import_entries(source, tmp_path / "d.sqlite")
    assert (report.imported, report.skipped) == (2, 4) and report.first_skipped.startswith(f"{source}:2: ")
    code, out, _ = run("cache", "export", target, "-o", tmp_path / "export")
    assert code == 0


def test_import_of_exported_directory_skips_bad_rows(tmp_path, run):
    make_cache(tmp_path / "a.sqlite", count=3)
    export = tmp_path / "export"
    export_cache(tmp_path / "a.sqlite", export)
    shard = next((export / "data").glob("*.parquet"))
    rows = pq.read_table(shard).to_pylist()
    rows += [{**rows[0], "arguments": "{half"}, {**rows[0], "status": "maybe"}, {**rows[0], "tool": None}]
    schema = pa.schema([(c, pa.int64() if c == "total_chars" else pa.string()) for c in cache_module.COLUMNS])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), shard)
    code, out, err = run("cache", "import", export, "--into", tmp_path / "b.sqlite")
    assert code == 0 and "imported 3 entries" in out and "skipped 3 corrupt rows" in out and "Traceback" not in err
    assert f"(first: {export} row 3: field arguments" in out
    shard.write_bytes(b"not parquet at all")
    one_error_line(*run("cache", "import", export, "--into", tmp_path / "c.sqlite"), str(export))
    assert not (tmp_path / "c.sqlite").exists()


def test_failed_write_leaves_a_new_target_absent(tmp_path, monkeypatch):
    source = write_jsonl(tmp_path / "in.jsonl", GOOD)
    target = tmp_path / "deep" / "er" / "c.sqlite"

    def broken(self, entries):
        raise InputError("disk on fire", where=str(self.path))

    monkeypatch.setattr(ResponseCache, "put_many", broken)
    with pytest.raises(InputError, match="disk on fire"):
        import_entries(source, target)
    assert not (tmp_path / "deep").exists()


def test_failed_write_leaves_an_existing_target_unchanged(tmp_path, run):
    target = make_cache(tmp_path / "c.sqlite", count=3)
    with sqlite3.connect(target) as db:  # the third row of the import fails inside the transaction
        db.execute("CREATE TRIGGER poison BEFORE INSERT ON responses WHEN NEW.tool = 'poison' "
                   "BEGIN SELECT RAISE(ABORT, 'poisoned row'); END")
    source = write_jsonl(tmp_path / "in.jsonl", {**GOOD, "tool": "new1"}, {**GOOD, "tool": "new2"},
                         {**GOOD, "tool": "poison"})
    one_error_line(*run("cache", "import", source, "--into", target), str(target), "poisoned row")
    with ResponseCache(target) as response_cache:
        assert response_cache.stats() == {"weather": {"real": 3, "simulated": 0}}


# -- a busy database -------------------------------------------------------------------------------
@pytest.fixture
def locked_cache(tmp_path, monkeypatch):
    """A cache whose write lock a second connection holds; the wait bound lowered to 0.5 s."""
    path = make_cache(tmp_path / "c.sqlite", count=2)
    monkeypatch.setattr(cache_module, "BUSY_TIMEOUT_S", 0.5)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO meta VALUES ('held', 'yes')")
    yield path, holder
    if holder.in_transaction:
        holder.execute("ROLLBACK")
    holder.close()


def test_busy_database_is_one_input_error(locked_cache, tmp_path, run):
    path, holder = locked_cache
    with ResponseCache(path) as response_cache:
        assert response_cache.get("weather", {"city": "c1"}).response == "r1"  # readers are never blocked
        start = time.monotonic()
        with pytest.raises(InputError, match="is busy: another process holds a write lock for more than 0.5 s"):
            response_cache.put(CacheEntry("weather", {"city": "new"}, "x"))
        assert time.monotonic() - start < 20
    source = write_jsonl(tmp_path / "in.jsonl", GOOD)
    start = time.monotonic()
    one_error_line(*run("cache", "import", source, "--into", path), str(path), "is busy", "more than 0.5 s")
    assert time.monotonic() - start < 20
    holder.execute("ROLLBACK")
    with ResponseCache(path) as response_cache:  # the failed import changed nothing
        assert response_cache.stats() == {"weather": {"real": 2, "simulated": 0}}


def test_busy_database_wins_when_the_lock_goes(locked_cache, monkeypatch):
    path, holder = locked_cache
    monkeypatch.setattr(cache_module, "BUSY_TIMEOUT_S", 30.0)
    monkeypatch.setattr(cache_module, "_BUSY_SLICE_S", 0.1)  # several tries, with backoff between them
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        with ResponseCache(path) as response_cache:
            response_cache.put(CacheEntry("weather", {"city": "new"}, "x"))
            assert response_cache.get("weather", {"city": "new"}).response == "x"
    finally:
        release.join()
