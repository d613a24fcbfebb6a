"""Stage directories: manifests, no-op re-runs, atomic finish, crash-safe append and resume."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pyarrow as pa
import pytest

from imaginarium.atomic import atomic_write_text
from imaginarium.errors import InputError
from imaginarium.stage import (
    StageWriter,
    data_files,
    fingerprint_input,
    read_manifest,
    read_rows,
    write_stage,
)


def test_write_stage_writes_shards_and_manifest(tmp_path):
    rows = [{"api": "a", "n": i} for i in range(7)]
    manifest = write_stage(tmp_path / "out", "demo", {"k": 1}, {}, rows, counts={"apis": 1})
    assert read_rows(tmp_path / "out") == rows
    on_disk = read_manifest(tmp_path / "out")
    assert on_disk == manifest
    assert on_disk["stage"] == "demo" and on_disk["config"] == {"k": 1}
    assert on_disk["counts"] == {"rows": 7, "apis": 1}
    assert on_disk["versions"]["pyarrow"] == pa.__version__
    assert len(on_disk["fingerprint"]) == 64 and len(on_disk["content_hash"]) == 64


def test_shards_are_capped(tmp_path):
    writer = StageWriter(tmp_path / "out", "demo", {}, {}, shard_rows=3)
    with writer:
        writer.append([{"n": i} for i in range(7)])
        writer.finish()
    assert [p.name for p in data_files(tmp_path / "out")] == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet",
    ]
    assert [r["n"] for r in read_rows(tmp_path / "out")] == list(range(7))


def test_identical_rerun_is_a_noop_and_changed_config_is_not(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("hello")
    write_stage(tmp_path / "out", "demo", {"k": 1}, {"src": source}, [{"n": 1}])
    stamp = (tmp_path / "out" / "manifest.json").stat().st_mtime_ns

    assert StageWriter(tmp_path / "out", "demo", {"k": 1}, {"src": source}).done
    write_stage(tmp_path / "out", "demo", {"k": 1}, {"src": source}, [{"n": 2}])
    assert (tmp_path / "out" / "manifest.json").stat().st_mtime_ns == stamp
    assert read_rows(tmp_path / "out") == [{"n": 1}]

    assert not StageWriter(tmp_path / "out", "demo", {"k": 2}, {"src": source}).done
    source.write_text("changed input")
    assert not StageWriter(tmp_path / "out", "demo", {"k": 1}, {"src": source}).done
    write_stage(tmp_path / "out", "demo", {"k": 1}, {"src": source}, [{"n": 3}])
    assert read_rows(tmp_path / "out") == [{"n": 3}]


def test_stage_directory_input_is_fingerprinted_by_content(tmp_path):
    write_stage(tmp_path / "a", "demo", {}, {}, [{"n": 1}])
    write_stage(tmp_path / "b", "other", {"x": 1}, {}, [{"n": 1}])
    write_stage(tmp_path / "c", "demo", {}, {}, [{"n": 2}])
    assert fingerprint_input(tmp_path / "a") == fingerprint_input(tmp_path / "b")
    assert fingerprint_input(tmp_path / "a") != fingerprint_input(tmp_path / "c")
    with pytest.raises(InputError, match="missing"):
        fingerprint_input(tmp_path / "missing")


def test_unfinished_run_resumes_without_redoing_or_duplicating(tmp_path):
    out = tmp_path / "out"
    with StageWriter(out, "demo", {}, {}) as writer:
        writer.append([{"unit": "u1", "v": 1}, {"unit": "u1", "v": 2}], units=["u1"])
        writer.append([], units=["u2"])  # a unit that produced no rows is still done
        # the process dies here: no finish
    assert read_manifest(out) is None
    with pytest.raises(InputError, match="no manifest"):
        read_rows(out)

    with StageWriter(out, "demo", {}, {}) as writer:
        assert writer.finished_units() == {"u1", "u2"}
        assert [r["v"] for r in writer.progress_rows()] == [1, 2]
        writer.append([{"unit": "u3", "v": 3}], units=["u3"])
        writer.finish(sort_by=["v"])
    assert [r["v"] for r in read_rows(out)] == [1, 2, 3]
    assert not list((out / ".progress").glob("chunk-*"))


def test_progress_of_another_config_is_discarded(tmp_path):
    out = tmp_path / "out"
    with StageWriter(out, "demo", {"k": 1}, {}) as writer:
        writer.append([{"v": 1}], units=["u1"])
    with StageWriter(out, "demo", {"k": 2}, {}) as writer:
        assert writer.finished_units() == set()
        writer.finish()
    assert read_rows(out) == []


def test_one_writer_per_directory(tmp_path):
    with (StageWriter(tmp_path / "out", "demo", {}, {}), pytest.raises(InputError, match="another process"),
          StageWriter(tmp_path / "out", "demo", {}, {})):
        pass


def test_schema_is_applied_to_every_chunk(tmp_path):
    schema = pa.schema([("api", pa.string()), ("score", pa.float64())])
    with StageWriter(tmp_path / "out", "demo", {}, {}, schema=schema) as writer:
        writer.append([{"api": "a", "score": 1}], units=["a"])
        writer.append([{"api": "b", "score": None}], units=["b"])
        writer.finish()
    table_rows = read_rows(tmp_path / "out")
    assert table_rows == [{"api": "a", "score": 1.0}, {"api": "b", "score": None}]


def test_failed_atomic_write_leaves_old_file(tmp_path):
    target = tmp_path / "f.json"
    atomic_write_text(target, "old")

    class Boom(Exception):
        pass

    from imaginarium.atomic import atomic_path

    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise Boom
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]


WORKER = textwrap.dedent(
    """
    import sys, time
    from imaginarium.stage import StageWriter
    out, total = sys.argv[1], int(sys.argv[2])
    writer = StageWriter(out, "slow", {"total": total}, {})
    with writer:
        done = writer.finished_units()
        for i in range(total):
            if f"u{i}" in done:
                continue
            writer.append([{"unit": f"u{i}", "i": i}], units=[f"u{i}"])
            print(i, flush=True)
            time.sleep(0.02)
        writer.finish(sort_by=["i"])
    """
)


def test_sigkill_mid_run_then_resume_loses_and_duplicates_nothing(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "out"
    total = 60
    proc = subprocess.Popen([sys.executable, str(script), str(out), str(total)], stdout=subprocess.PIPE, text=True)
    for _ in range(15):  # let it finish some units, then kill it without warning
        proc.stdout.readline()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert read_manifest(out) is None
    with StageWriter(out, "slow", {"total": total}, {}) as writer:
        partial = writer.finished_units()
    assert 15 <= len(partial) < total

    subprocess.run([sys.executable, str(script), str(out), str(total)], check=True, capture_output=True)
    rows = read_rows(out)
    assert [r["i"] for r in rows] == list(range(total))
    assert json.loads((out / "manifest.json").read_text())["counts"]["rows"] == total
