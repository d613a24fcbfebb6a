"""What `make quickstart` promises, checked on its output (CI runs it after `make quickstart`).

Not part of `make test` (the quickstart takes about 3 minutes on the real default model): run it
with `.venv/bin/python -m pytest tests/quickstart_check.py` after `make quickstart`. The output
directory is out/quickstart, or $QUICKSTART_OUT.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jsonschema
import pytest

from imaginarium.schemas.toolspec import read_tools
from imaginarium.stage import read_manifest, read_rows

OUT = Path(os.environ.get("QUICKSTART_OUT", Path(__file__).resolve().parents[1] / "out" / "quickstart"))


@pytest.fixture(scope="module")
def rows():
    if read_manifest(OUT / "sft") is None:
        pytest.fail(f"no finished quickstart in {OUT}: run `make quickstart` first")
    return read_rows(OUT / "sft")


def test_at_least_ten_rows_from_the_default_model(rows):
    assert len(rows) >= 10
    explore = read_manifest(OUT / "explore")
    assert explore["config"]["explore"]["model"] == "smollm2-135m"
    assert {row["model"] for row in read_rows(OUT / "explore")} == {"smollm2-135m"}


def test_queries_are_english(rows):
    for row in rows:
        query = next(m["content"] for m in row["messages"] if m["role"] == "user")
        words = re.findall(r"[A-Za-z]+", query)
        assert len(words) >= 3 and query.isascii(), query


def test_every_call_is_valid_for_its_tool(rows):
    tools = {tool.name: tool for tool in read_tools(OUT / "tools.jsonl")}
    calls = [call for row in rows for m in row["messages"] for call in m.get("tool_calls") or []]
    assert calls
    for call in calls:
        jsonschema.validate(json.loads(call["function"]["arguments"]), tools[call["function"]["name"]].parameters)


def test_the_quality_report_is_there(rows):
    quality = json.loads((OUT / "explore" / "quality.json").read_text())
    assert quality["trials"] == 30 and 0 <= quality["with_ok_call"] <= 1


def test_the_exploration_mixes_every_scenario_kind(rows):
    from imaginarium.schemas.kinds import KINDS

    explored = read_rows(OUT / "explore")
    assert {row["kind"] for row in explored} == set(KINDS)
    assert {row["kind"] or "single" for row in rows} == set(KINDS)  # and a row of every kind is kept
