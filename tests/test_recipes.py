"""The recipe runner: stages chained by name, unchanged stages skipped, bad recipes refused."""

from pathlib import Path

import pytest
import yaml

from imaginarium.errors import InputError
from imaginarium.recipes.runner import find_recipe, run_recipe
from imaginarium.stage import read_manifest, read_rows

TOOLSET = Path(__file__).resolve().parents[1] / "recipes" / "example_toolset"


def write_recipe(tmp_path, stages, **top):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"name": "t", **top, "stages": stages}))
    return path


def small_recipe(tmp_path, tiny_model):
    return write_recipe(tmp_path, [
        {"name": "tools", "uses": "tools", "with": {"sources": [str(TOOLSET / "python_tools.json")]}},
        {"name": "cache", "uses": "cache", "with": {"source": str(TOOLSET / "cache.jsonl")}},
        {"name": "explore", "uses": "explore", "with": {
            "tools": "@tools", "cache": "@cache", "apis": "add_date,calculator", "episodes": 1, "stm_slots": 1,
            "max_turns": 1, "max_query_chars": 16, "max_thought_chars": 8, "max_answer_chars": 16,
            "max_argument_chars": 8, "max_tokens": 64}},
    ], generation={"backend": "transformers", "model": str(tiny_model), "seed": 3})


def test_recipe_chains_stages_and_skips_unchanged_ones(tmp_path, tiny_model):
    recipe = small_recipe(tmp_path, tiny_model)
    messages = []
    outputs = run_recipe(recipe, tmp_path / "run", progress=False, echo=messages.append)
    assert set(outputs) == {"tools", "cache", "explore"}
    manifest = read_manifest(tmp_path / "run" / "explore")
    assert manifest["config"]["explore"]["seed"] == 3  # the recipe's generation defaults reach the stage
    assert sorted({r["api"] for r in read_rows(tmp_path / "run" / "explore")}) == ["add_date", "calculator"]
    assert (tmp_path / "run" / "recipe.yaml").read_text() == recipe.read_text()
    assert not any("skipped" in m for m in messages)

    messages.clear()
    run_recipe(recipe, tmp_path / "run", progress=False, echo=messages.append)
    assert "[explore] unchanged inputs and settings: skipped" in messages
    assert read_manifest(tmp_path / "run" / "explore")["created_at"] == manifest["created_at"]


@pytest.mark.parametrize("stages, message", [
    ([{"name": "x", "uses": "teleport"}], "unknown stage kind 'teleport'"),
    ([{"name": "x", "uses": "explore", "with": {"tools": "@nothing"}}], "@nothing is not an earlier stage"),
    ([{"name": "x", "uses": "tools", "with": {"sources": ["a.json"], "colour": "red"}}], "unknown key 'colour'"),
    ([{"name": "x", "uses": "explore", "with": {"tools": "t.jsonl", "episodes": "many"}}],
     "stages[0] (x): episodes: must be a valid integer"),
    ([{"name": "x", "uses": "explore", "with": {"tools": "t.jsonl", "episodes": 0}}],
     "stages[0] (x): episodes: must be greater than or equal to 1 (got 0)"),
    ([{"name": "x", "uses": "filter", "with": {"trials": "t", "require": ["faithful", "kind"]}}],
     "stages[0] (x): require: must be 'informative', 'faithful' or 'appropriate' (got 'kind')"),
    ([{"name": "x", "uses": "tools"}, {"name": "x", "uses": "tools"}], "duplicate stage name 'x'"),
    ([{"uses": "tools"}], "each stage needs `name` and `uses`"),
])
def test_bad_recipes_are_refused_with_the_stage_named(tmp_path, stages, message):
    with pytest.raises(InputError) as error:
        run_recipe(write_recipe(tmp_path, stages), tmp_path / "run", echo=lambda _: None)
    assert message in str(error.value) and "recipe.yaml" in str(error.value)


def test_packaged_recipes_are_found_by_name():
    assert find_recipe("quickstart").name == "quickstart.yaml"
    with pytest.raises(InputError, match="packaged: .*quickstart"):
        find_recipe("no-such-recipe")


def test_the_packaged_quickstart_runs_end_to_end(tmp_path, tiny_model):
    """The packaged recipe's stages chain (with the tiny model; CI runs `make quickstart` on the
    default model and checks its rows: tests/quickstart_check.py)."""
    outputs = run_recipe("quickstart", tmp_path / "qs", generation={"model": str(tiny_model)}, progress=False,
                         echo=lambda _: None)
    assert list(outputs) == ["tools", "cache", "explore", "filter", "augment", "sft"]
    explore, filtered, augmented, sft = (read_manifest(outputs[n]) for n in ("explore", "filter", "augment", "sft"))
    assert explore["counts"]["trials"] == 10 * 1 * 3  # 10 tools x 1 episode x 3 slots
    assert set(explore["counts"]["per_kind"]) == {"single", "parallel", "multiple", "irrelevant", "clarify", "multi_turn"}
    assert filtered["counts"]["kept"] + filtered["counts"]["dropped"] == explore["counts"]["trials"]
    assert augmented["counts"]["seeds"] == filtered["counts"]["kept"]
    assert sft["counts"]["rows"] >= 1, "the quickstart should end with training rows"
    for row in read_rows(outputs["sft"]):
        assert row["messages"][-1]["role"] == "assistant" and row["tools"]
