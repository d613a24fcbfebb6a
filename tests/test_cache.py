"""The response cache: canonical keys, real/simulated precedence, several writing processes,
corrupted files, export/import and the `cache` commands."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from imaginarium.errors import InputError
from imaginarium.executor.cache import CacheEntry, ResponseCache, arguments_hash, export_cache, import_cache

EXAMPLE_CACHE = Path(__file__).parents[1] / "recipes" / "example_toolset" / "cache.jsonl"


@pytest.fixture
def cache(tmp_path):
    with ResponseCache(tmp_path / "cache.sqlite") as response_cache:
        yield response_cache


def test_key_ignores_key_order_and_integral_floats(cache):
    cache.put(CacheEntry("weather", {"city": "Oslo", "days": 3.0}, '{"t": 1}'))
    entry = cache.get("weather", {"days": 3, "city": "Oslo"})
    assert entry is not None and entry.response == '{"t": 1}'
    assert arguments_hash({"b": 1, "a": [1.0, {"y": 2, "x": 1}]}) == arguments_hash({"a": [1, {"x": 1, "y": 2}], "b": 1})
    assert cache.get("weather", {"city": "Oslo", "days": 4}) is None
    assert cache.get("forecast", {"city": "Oslo", "days": 3}) is None  # the tool name is part of the key


def test_real_beats_simulated_and_never_the_reverse(cache):
    call = ("weather", {"city": "Oslo"})
    cache.put(CacheEntry(*call, "simulated one", source="simulated"))
    assert cache.get(*call).source == "simulated"
    cache.put(CacheEntry(*call, "real one", source="real"))
    assert (cache.get(*call).source, cache.get(*call).response) == ("real", "real one")
    cache.put(CacheEntry(*call, "simulated again", source="simulated"))
    assert (cache.get(*call).source, cache.get(*call).response) == ("real", "real one")
    cache.put(CacheEntry(*call, "newer real", source="real"))
    assert cache.get(*call).response == "newer real"
    assert len(cache) == 1
    assert cache.stats() == {"weather": {"real": 1, "simulated": 0}}


def test_stored_fields_round_trip(cache):
    cache.put(CacheEntry("t", {"a": 1}, "HTTP 500", status="error", error_kind="http_status", tool_version="v1",
                         total_chars=10_000_000, content_type="text/html"))
    entry = cache.get("t", {"a": 1})
    assert (entry.status, entry.error_kind, entry.tool_version, entry.total_chars, entry.content_type) == (
        "error", "http_status", "v1", 10_000_000, "text/html")
    assert entry.created_at.endswith("Z")


def test_examples_are_real_successes_of_one_tool(cache):
    cache.put_many([
        CacheEntry("t", {"i": 1}, "one"), CacheEntry("t", {"i": 2}, "two", source="simulated"),
        CacheEntry("t", {"i": 3}, "three", status="error"), CacheEntry("u", {"i": 4}, "four"),
        CacheEntry("t", {"i": 5}, "five"),
    ])
    assert sorted(e.response for e in cache.examples("t", 5)) == ["five", "one"]
    assert len(cache.examples("t", 1)) == 1


def test_garbage_file_is_a_clear_error(tmp_path):
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"\x00garbage, not a database\xff" * 500)
    with pytest.raises(InputError, match="corrupt or not a response cache") as info:
        ResponseCache(path)
    assert str(path) in str(info.value)
    assert path.read_bytes().startswith(b"\x00garbage")  # left as it was


def test_other_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE people (name TEXT)")
    with pytest.raises(InputError, match="not a response cache"):
        ResponseCache(path)


def test_truncated_cache_file_is_a_clear_error(tmp_path):
    path = tmp_path / "cache.sqlite"
    with ResponseCache(path) as response_cache:
        response_cache.put_many(CacheEntry("t", {"i": i}, "x" * 2000) for i in range(200))
        response_cache._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    path.write_bytes(data[:100] + b"\xa5" * (len(data) - 100))  # header intact, every page destroyed
    with pytest.raises(InputError, match=str(path)), ResponseCache(path) as broken:
        broken.get("t", {"i": 3})


def test_missing_cache_without_create(tmp_path):
    with pytest.raises(InputError, match="no such response cache"):
        ResponseCache(tmp_path / "absent.sqlite", create=False)


def _writer(path: str, worker: int, count: int) -> None:
    """One process: writes its own keys one transaction each, plus keys every worker writes."""
    with ResponseCache(path) as response_cache:
        for i in range(count):
            response_cache.put(CacheEntry("mine", {"worker": worker, "i": i}, f"w{worker}-{i}"))
            response_cache.put(CacheEntry("shared", {"i": i}, f"from {worker}"))


def test_several_processes_write_one_cache(tmp_path):
    """Four processes create (racing) and fill one cache: nothing lost, nothing twice."""
    path = tmp_path / "cache.sqlite"
    workers, count = 4, 150
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_writer, args=(str(path), w, count)) for w in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0] * workers
    with ResponseCache(path) as response_cache:
        assert response_cache.stats() == {"mine": {"real": workers * count, "simulated": 0},
                                          "shared": {"real": count, "simulated": 0}}
        for worker in range(workers):
            for i in (0, count // 2, count - 1):
                assert response_cache.get("mine", {"worker": worker, "i": i}).response == f"w{worker}-{i}"
        rows = list(response_cache.rows())
    keys = [(r["tool"], r["args_hash"]) for r in rows]
    assert len(keys) == len(set(keys)) == workers * count + count


def test_export_then_import_gives_the_same_entries(tmp_path):
    source = tmp_path / "a.sqlite"
    with ResponseCache(source) as response_cache:
        response_cache.put_many([
            CacheEntry("t", {"i": 1}, "one", tool_version="v1"),
            CacheEntry("t", {"i": 2}, "two", source="simulated"),
            CacheEntry("u", {"q": "é"}, "HTTP 404", status="error", error_kind="http_status", total_chars=99),
        ])
        before = list(response_cache.rows())
    manifest = export_cache(source, tmp_path / "export")
    assert manifest["counts"]["rows"] == 3
    assert list((tmp_path / "export" / "data").glob("*.parquet"))
    assert import_cache(tmp_path / "export", tmp_path / "b.sqlite") == 3
    with ResponseCache(tmp_path / "b.sqlite") as copy:
        assert list(copy.rows()) == before


def test_import_checks_every_row_before_writing(tmp_path):
    bad = tmp_path / "entries.jsonl"
    good_row = {"tool": "t", "arguments": {"a": 1}, "response": "ok"}
    bad.write_text(json.dumps(good_row) + "\n" + json.dumps({**good_row, "source": "invented"}) + "\n")
    with pytest.raises(InputError, match=rf"{bad.name}:2: field source"):
        import_cache(bad, tmp_path / "c.sqlite")
    assert not (tmp_path / "c.sqlite").exists()
    bad.write_text(json.dumps(good_row) + "\n{not json\n")
    with pytest.raises(InputError, match=rf"{bad.name}:2: invalid JSON"):
        import_cache(bad, tmp_path / "c.sqlite")


def test_shipped_example_cache_imports(tmp_path):
    count = import_cache(EXAMPLE_CACHE, tmp_path / "c.sqlite")
    with ResponseCache(tmp_path / "c.sqlite") as response_cache:
        stats = response_cache.stats()
        assert count == len(response_cache) >= 20
        assert set(stats) == {"get_current_weather", "get_weather_forecast", "get_exchange_rate", "search_books",
                              "get_book"}
        assert all(s["simulated"] == 0 for s in stats.values())
        oslo = json.loads(response_cache.get("get_current_weather", {"city": "Oslo"}).response)
        assert oslo["city"] == "Oslo" and oslo["units"] == "metric"




def test_cache_commands(run, tmp_path):
    db = tmp_path / "c.sqlite"
    code, out, _ = run("cache", "import", EXAMPLE_CACHE, "--into", db)
    assert code == 0 and "imported" in out
    code, out, _ = run("cache", "stats", db, "--json")
    assert code == 0 and json.loads(out)["get_book"] == {"real": 6, "simulated": 0}
    code, out, _ = run("cache", "stats", db)
    assert code == 0 and "get_exchange_rate" in out
    code, out, _ = run("cache", "export", db, "-o", tmp_path / "export")
    assert code == 0
    code, _, _ = run("cache", "import", tmp_path / "export", "--into", tmp_path / "d.sqlite")
    assert code == 0
    assert ResponseCache(tmp_path / "d.sqlite").stats() == ResponseCache(db).stats()


def test_cache_command_on_garbage_exits_2(run, tmp_path):
    garbage = tmp_path / "c.sqlite"
    garbage.write_bytes(b"this is not sqlite" * 100)
    code, _out, err = run("cache", "stats", garbage)
    assert code == 2 and "corrupt or not a response cache" in err and str(garbage) in err
