"""`build continual`: exact counts per round, stable seeded replay, general rows with no tools."""

import json
import random
import subprocess
import sys

import pytest
from paths import STE

from imaginarium.builders.chat import message, to_template_messages
from imaginarium.builders.continual import ContinualConfig, batch_index, build_continual, general_rows, replay_count
from imaginarium.errors import InputError
from imaginarium.jsonutil import content_hash
from imaginarium.schemas.records import arrow_schema
from imaginarium.schemas.toolspec import ToolSource, ToolSpec, safe_name, write_tools
from imaginarium.stage import read_manifest, read_rows, write_stage

FLAN = STE / "general" / "flan_v2_2k.json"
# Source names as in the paper's CL_batches.json; rows carry the tool names.
BATCHES = [["add_date", "BART%%Advisory information"], ["Numbers%%Get math fact"], ["search"]]
SIZES = {"add_date": 12, safe_name("BART%%Advisory information"): 8, safe_name("Numbers%%Get math fact"): 10,
         "search": 5, "not_batched": 3}


def sft_row(api, number):
    call = {"id": "call_1", "type": "function", "function": {"name": api, "arguments": json.dumps({"n": number})}}
    return {"messages": [message("user", f"query {number} for {api}"), message("assistant", None, tool_calls=[call])],
            "tools": [{"type": "function", "function": {"name": api, "description": "d", "parameters": "{}"}}],
            "api": api, "origin_trial": f"{api}/0/{number}", "paraphrase_of": None, "source": "ste", "scores": None}


ROWS = [sft_row(api, n) for api, size in SIZES.items() for n in range(size)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = tmp_path_factory.mktemp("continual")
    batches = base / "batches.json"
    batches.write_text(json.dumps(BATCHES))
    general = base / "general.json"
    general.write_text(json.dumps([{"dialog_history": [{"role": "user", "content": f"say {i}"}], "response": str(i)}
                                   for i in range(7)]))
    rows = write_stage(base / "sft", "build_sft", {}, {}, ROWS, schema=arrow_schema("sft_row"))
    shuffled = list(ROWS)
    random.Random(1).shuffle(shuffled)
    write_stage(base / "shuffled", "build_sft", {"order": "shuffled"}, {}, shuffled, schema=arrow_schema("sft_row"))
    assert rows["counts"]["rows"] == len(ROWS)
    return {"batches": batches, "general": general, "sft": base / "sft", "shuffled": base / "shuffled"}


def build(files, out, round, rows=None, **options):
    config = ContinualConfig.from_flat(dict(batches=files["batches"], round=round, **options))
    manifest = build_continual(rows or files["sft"], out, config)
    return read_rows(out), manifest


def apis(rows):
    return [row["api"] for row in rows]


def test_round_counts_are_exact(files, tmp_path):
    rows, manifest = build(files, tmp_path / "r2", 2, replay_ratio=0.1, general=files["general"])
    # batch 2: all 5; batch 0: 20 rows -> 2; batch 1: 10 rows -> 1; general: all 7
    assert len(rows) == 5 + 2 + 1 + 7 == manifest["counts"]["rows"]
    assert manifest["counts"]["batch"] == 5 and manifest["counts"]["replay"] == {"0": 2, "1": 1}
    assert manifest["counts"]["general"] == 7 and manifest["counts"]["not_in_batches"] == 3
    assert apis(rows)[:5] == ["search"] * 5
    assert set(apis(rows)[5:7]) <= {"add_date", safe_name("BART%%Advisory information")}
    assert apis(rows)[7] == safe_name("Numbers%%Get math fact")
    assert "not_batched" not in apis(rows)
    assert manifest["extra"]["release_config"] == "continual_round_2"


def test_round_zero_is_its_batch_alone(files, tmp_path):
    rows, manifest = build(files, tmp_path / "r0", 0)
    assert sorted(apis(rows)) == sorted(["add_date"] * 12 + [safe_name("BART%%Advisory information")] * 8)
    assert manifest["counts"]["replay"] == {}


def test_replay_ratio_rounds_half_up(files, tmp_path):
    assert [replay_count(n, 0.1) for n in (0, 4, 5, 14, 15, 20)] == [0, 0, 1, 1, 2, 2]
    rows, manifest = build(files, tmp_path / "r1", 1, replay_ratio=0.25)
    assert manifest["counts"]["replay"] == {"0": 5}  # 20 * 0.25
    assert len(rows) == 10 + 5


def test_replay_sample_is_stable_across_runs_input_order_and_rounds(files, tmp_path):
    first, _ = build(files, tmp_path / "a", 2, replay_ratio=0.3)
    again, _ = build(files, tmp_path / "b", 2, replay_ratio=0.3, rows=files["shuffled"])
    assert [content_hash(r) for r in first[5:]] == [content_hash(r) for r in again[5:]]
    round_one, _ = build(files, tmp_path / "c", 1, replay_ratio=0.3)
    batch0 = lambda rows: [content_hash(r) for r in rows if r["api"] != safe_name("Numbers%%Get math fact") and r["api"] != "search"]  # noqa: E731
    assert batch0(round_one) == batch0(first) and len(batch0(first)) == 6
    other_seed, _ = build(files, tmp_path / "d", 2, replay_ratio=0.3, seed=5)
    assert [content_hash(r) for r in other_seed[5:]] != [content_hash(r) for r in first[5:]]


def test_general_rows_have_no_tools(files, tmp_path):
    rows, _ = build(files, tmp_path / "g", 1, general=files["general"], general_count=3)
    general = [r for r in rows if r["source"] == "general"]
    assert len(general) == 3
    for row in general:
        assert row["tools"] == [] and row["api"] == "" and row["origin_trial"] is None
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert row["messages"][1]["content"] == row["messages"][0]["content"].removeprefix("say ")
        assert all(m["tool_calls"] is None for m in row["messages"])


@pytest.mark.skipif(not FLAN.is_file(), reason="the STE reference data is not here")
def test_every_row_of_a_round_renders_through_a_real_chat_template(files, tmp_path, tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    rows, _ = build(files, tmp_path / "r2", 2, replay_ratio=0.5, general=files["general"])
    for row in rows:
        messages, tools = to_template_messages(row)
        text = tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=False)
        assert all(m["content"] in text for m in messages)
        assert ("You can call these tools" in text) == bool(row["tools"])


@pytest.mark.skipif(not FLAN.is_file(), reason="the STE reference data is not here")
def test_the_papers_general_data_converts():
    rows = general_rows(FLAN)
    assert len(rows) == 2000 and all(r["tools"] == [] and r["messages"][-1]["role"] == "assistant" for r in rows)
    sample = general_rows(FLAN, count=50, seed=3)
    assert len(sample) == 50 and sample == general_rows(FLAN, count=50, seed=3)


def test_source_names_map_through_a_tools_file(tmp_path):
    tool = ToolSpec(name="bart_advisory", source_name="BART%%Advisory information", source=ToolSource(format="toolbench"))
    write_tools(tmp_path / "tools.jsonl", [tool])
    assert batch_index(BATCHES, tmp_path / "tools.jsonl")["bart_advisory"] == 0
    assert batch_index(BATCHES)[safe_name("BART%%Advisory information")] == 0


def test_bad_inputs_are_named(files, tmp_path):
    with pytest.raises(InputError, match="round 3 does not exist"):
        build(files, tmp_path / "x", 3)
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps([["search"], ["search"]]))
    with pytest.raises(InputError, match="'search' is in batch 0 and in batch 1"):
        build_continual(files["sft"], tmp_path / "y", ContinualConfig(batches=twice, round=1))
    broken = tmp_path / "general.json"
    broken.write_text(json.dumps([{"dialog_history": [{"role": "user", "content": "hi"}], "response": "ok"},
                                  {"dialog_history": [{"role": "robot", "content": "hi"}], "response": "ok"}]))
    with pytest.raises(InputError, match=r"general.json: item 1: field dialog_history/0"):
        build(files, tmp_path / "z", 0, general=broken)
    assert not (tmp_path / "z" / "manifest.json").exists()


def test_input_rows_are_checked(tmp_path, files):
    odd = dict(ROWS[0], messages=[dict(ROWS[0]["messages"][0], role="robot")])
    write_stage(tmp_path / "odd", "build_sft", {}, {}, [ROWS[1], odd], schema=arrow_schema("sft_row"))
    with pytest.raises(InputError, match=r"row 1, field messages/0/role: 'robot'"):
        build_continual(tmp_path / "odd", tmp_path / "out", ContinualConfig(batches=files["batches"], round=0))
    write_stage(tmp_path / "react", "build_sft", {}, {}, [{"prompt": "p", "completion": "c", "api": "search"}])
    with pytest.raises(InputError, match="expected chat rows"):
        build_continual(tmp_path / "react", tmp_path / "out", ContinualConfig(batches=files["batches"], round=0))


def test_cli_round(files, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "imaginarium.cli", "build", "continual", str(files["sft"]), "-o", str(out),
               "--batches", str(files["batches"]), "--round", "1", "--replay-ratio", "0.1",
               "--general", str(files["general"])]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert read_manifest(out)["counts"]["rows"] == 10 + 2 + 7
    done = subprocess.run([*command[:-4], "--round", "9"], capture_output=True, text=True)
    assert done.returncode == 2 and "round 9 does not exist" in done.stderr
