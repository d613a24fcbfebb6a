"""Behaviour only a real model shows, on the embedded default model (SmolLM2-135M-Instruct).

The fast suite runs on the random tiny model, whose text means nothing. These tests check what
needs meaning: imagined queries carry the values a tool needs, and long-term memory keeps the
exploration from repeating itself. Seeded, so each run imagines the same queries.
"""

from __future__ import annotations

import re

import pytest
from paths import ROOT

from imaginarium.executor.executor import Executor
from imaginarium.generators.explore import ExploreConfig, explore_stage
from imaginarium.generators.quality import exploration_quality
from imaginarium.models.factory import make_backend
from imaginarium.schemas.importers import import_files
from imaginarium.stage import read_rows

TOOLSET = ROOT / "recipes" / "example_toolset"
# Queries only: no calls (max_turns=0), no reflection, short answers.
QUERIES_ONLY = dict(stm_slots=1, max_turns=0, no_reflection=True, temperature=0.5, top_p=0.9, max_query_chars=100,
                    max_thought_chars=24, max_answer_chars=32, max_tokens=64)


@pytest.fixture(scope="module")
def backend():
    return make_backend("transformers", "smollm2-135m")


@pytest.fixture(scope="module")
def toolset(tmp_path_factory):
    tools, _ = import_files([TOOLSET / "python_tools.json", TOOLSET / "openapi.yaml"])
    path = tmp_path_factory.mktemp("tools") / "tools.jsonl"
    path.write_text("".join(t.to_json() + "\n" for t in tools))
    return tools, path


def queries(tmp_path, backend, toolset, api: str, **config) -> list[dict]:
    tools, path = toolset
    explore_stage(tmp_path, path, tools, [api], backend, Executor(tools, None, "replay"),
                  ExploreConfig.from_flat({**QUERIES_ONLY, **config}), progress=False)
    return read_rows(tmp_path)


def test_imagined_queries_are_english_and_carry_concrete_values(tmp_path, backend, toolset):
    """Six independent imaginations (no memory) per tool: English sentences, and a good share
    name the values a call needs: a number, or a name (a city, a currency) after the first word."""
    apis = ["calculator", "get_current_weather", "get_exchange_rate"]
    tools, path = toolset
    explore_stage(tmp_path, path, tools, apis, backend, Executor(tools, None, "replay"),
                  ExploreConfig.from_flat({**QUERIES_ONLY, "episodes": 6, "no_ltm": True}), progress=False)
    texts = [row["query"] for row in read_rows(tmp_path)]
    assert len(texts) == 18
    for text in texts:
        words = re.findall(r"[A-Za-z]+", text)
        assert len(words) >= 3 and sum(map(len, words)) >= len(text) / 2, text  # mostly words, not code
    concrete = [t for t in texts if re.search(r"\d", t) or re.search(r"\s[A-Z][A-Za-z]+", t)]
    assert len(concrete) >= len(texts) / 3, texts


def test_long_term_memory_lowers_the_share_of_repeated_queries(tmp_path, backend, toolset):
    def repeated_share(rows):
        report = exploration_quality(rows)
        return (report["trials"] - report["distinct_queries"] + report["near_duplicates"]) / report["trials"]

    with_memory = queries(tmp_path / "ltm", backend, toolset, "lookup_country", episodes=6)
    without = queries(tmp_path / "no-ltm", backend, toolset, "lookup_country", episodes=6, no_ltm=True)
    assert repeated_share(with_memory) < repeated_share(without), (
        [r["query"] for r in with_memory], [r["query"] for r in without])
