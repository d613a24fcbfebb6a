"""`imaginarium release build`: the Hub dataset layout, the card, provenance, determinism, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner
from fixtures_release import FUNNEL, make_preference_stage, make_sft_stage, preference_rows, sft_rows

from imaginarium.cli import cli
from imaginarium.errors import InputError
from imaginarium.executor.cache import CacheEntry, ResponseCache, export_cache
from imaginarium.hub_cards.release import build_release, read_release
from imaginarium.hub_cards.releases import diff_releases
from imaginarium.stage import write_stage


def _front_matter(readme: Path) -> dict:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


@pytest.fixture
def run_dir(tmp_path):
    """A recipe run directory: two built datasets, a response cache, a recipe, and an unrelated stage."""
    run = tmp_path / "run"
    make_sft_stage(run / "build" / "sft", sft_rows(9))
    make_preference_stage(run / "build" / "pref", preference_rows(3))
    with ResponseCache(tmp_path / "cache.sqlite") as cache:  # the real cache and its real export
        cache.put_many([CacheEntry("get_weather", {"city": "Oslo"}, '{"temp": 3}', created_at="2026-01-01T00:00:00Z"),
                        CacheEntry("get_weather", {"city": "Rome"}, '{"temp": 19}', created_at="2026-01-01T00:00:00Z"),
                        CacheEntry("convert_currency", {"amount": 1}, '{"result": 1.1}', source="simulated",
                                   created_at="2026-01-01T00:00:00Z")])
    export_cache(tmp_path / "cache.sqlite", run / "cache")
    write_stage(run / "explore", "explore", {"seed": 1}, {}, [{"api": "get_weather", "query": "q"}])
    (run / "recipe.yaml").write_text("name: toy\nexplore:\n  episodes: 2\n")
    return run


def test_run_directory_gives_the_hub_layout_card_and_provenance(run_dir, tmp_path):
    out = tmp_path / "release"
    info = build_release([run_dir], out, name="toy-tools", version="1.2.3", repo_id="me/toy-tools")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "assets/sft_rows_per_api.png",
        "data/preference/train-00000-of-00001.parquet",
        "data/sft/train-00000-of-00001.parquet",
        "provenance/manifests/preference.json",
        "provenance/manifests/sft.json",
        "provenance/provenance.json",
        "provenance/recipe.yaml",
        "provenance/release.json",
        "provenance/reports/sft/funnel.json",
        "provenance/response_cache/data/part-00000.parquet",
        "provenance/response_cache/manifest.json",
    ]
    assert info == read_release(out)
    assert info["configs"]["sft"]["rows"] == 9 and info["configs"]["sft"]["apis"] == {"convert_currency": 3, "get_weather": 6}
    assert "apis" not in info["configs"]["preference"]  # preference rows carry no api column
    assert pq.read_table(out / "data/sft/train-00000-of-00001.parquet").to_pylist() == sft_rows(9)

    meta = _front_matter(out / "README.md")
    assert meta["pretty_name"] == "toy-tools" and meta["license"] == "mit"
    assert meta["task_categories"] == ["text-generation"] and meta["size_categories"] == ["n<1K"]
    assert {"tool-use", "ste", "trice"} <= set(meta["tags"])
    assert meta["configs"] == [
        {"config_name": "preference", "data_files": [{"split": "train", "path": "data/preference/train-*"}]},
        {"config_name": "sft", "default": True, "data_files": [{"split": "train", "path": "data/sft/train-*"}]},
    ]
    sft_info = next(i for i in meta["dataset_info"] if i["config_name"] == "sft")
    assert sft_info["splits"][0]["num_examples"] == 9
    assert [f["name"] for f in sft_info["features"]][:3] == ["messages", "tools", "api"]

    provenance = json.loads((out / "provenance/provenance.json").read_text())
    sft = provenance["stages"]["sft"]
    assert sft["settings"] == {"backend": "transformers", "explorer.model": "HuggingFaceTB/SmolLM2-135M-Instruct",
                               "explorer.revision": "main", "explorer.seed": 7}
    assert sft["versions"]["pyarrow"] and sft["fingerprint"] and sft["models"][0]["role"] == "explorer"
    assert provenance["response_cache"]["counts"]["rows"] == 3
    cached = pq.read_table(out / "provenance/response_cache/data/part-00000.parquet").to_pylist()
    assert sorted(row["tool"] for row in cached) == ["convert_currency", "get_weather", "get_weather"]
    assert json.loads((out / "provenance/reports/sft/funnel.json").read_text()) == FUNNEL
    assert (out / "assets/sft_rows_per_api.png").read_bytes().startswith(b"\x89PNG\r\n")


def test_card_says_how_it_was_made_and_what_it_holds(run_dir, tmp_path):
    build_release([run_dir], tmp_path / "r", name="toy-tools", version="1.2.3", repo_id="me/toy-tools")
    card = (tmp_path / "r/README.md").read_text()
    for expected in [
        "# toy-tools (v1.2.3)",
        "Simulated trial and error (STE)",
        "Preferences from execution feedback (TRICE)",
        "| `sft` | build-sft | train | 9 |",
        "| `get_weather` | 6 |",
        "| judge | 10 | 2 | judge said the answer is wrong: 1; no final answer: 1 |",
        'load_dataset("me/toy-tools", "sft", revision="v1.2.3")',
        "type: chat_template",
        "train Axolotl on the rendered-text variant",
        "25.0% of the tool responses were simulated by a model rather than returned by the live API (real: 6, simulated: 2)",
        "success was judged by `HuggingFaceTB/SmolLM2-135M-Instruct`",
        "@inproceedings{wang2024ste",
        "@inproceedings{qiao2024trice",
        '"content": "Weather in city 0?"',
        "![Rows per API in sft](assets/sft_rows_per_api.png)",
        "holds 3 responses, 33.3% of them simulated (real: 2, simulated: 1)",
    ]:
        assert expected in card, expected


def test_card_leaves_out_what_no_stage_recorded(tmp_path):
    make_sft_stage(tmp_path / "sft", sft_rows(3), extra={}, funnel=None)
    build_release([tmp_path / "sft"], tmp_path / "r", name="bare", version="0.1.0")
    card = (tmp_path / "r/README.md").read_text()
    assert "Rows per API" in card and "STE" in card
    for absent in ["Filter funnel", "were simulated", "judged by", "TRICE)", "rl: dpo"]:
        assert absent not in card, absent
    assert 'load_dataset("OWNER/bare", "sft", revision="v0.1.0")' in card
    make_preference_stage(tmp_path / "pref", preference_rows(2))
    build_release([tmp_path / "pref"], tmp_path / "p", name="prefs", version="0.1.0")
    card = (tmp_path / "p/README.md").read_text()
    assert "TRICE" in card and "STE)" not in card and "Rows per API" not in card and "type: chat_template\n" not in card
    assert not (tmp_path / "p/assets").exists()


def test_build_is_deterministic(run_dir, tmp_path):
    build_release([run_dir], tmp_path / "a", name="toy", version="1.0.0")
    build_release([run_dir], tmp_path / "b", name="toy", version="1.0.0")
    a = {p.relative_to(tmp_path / "a"): p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()}
    b = {p.relative_to(tmp_path / "b"): p.read_bytes() for p in (tmp_path / "b").rglob("*") if p.is_file()}
    assert a == b


def test_shards_are_size_capped_and_named_for_the_hub(tmp_path):
    rows = sft_rows(10)
    make_sft_stage(tmp_path / "sft", rows)
    build_release([tmp_path / "sft"], tmp_path / "r", name="toy", version="1.0.0", max_shard_bytes=1500)
    shards = sorted((tmp_path / "r/data/sft").iterdir())
    assert len(shards) > 2
    assert [s.name for s in shards] == [f"train-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
    tables = [pq.read_table(s) for s in shards]
    assert all(t.nbytes <= 1500 or t.num_rows == 1 for t in tables)
    assert [row for t in tables for row in t.to_pylist()] == rows
    meta = _front_matter(tmp_path / "r/README.md")
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "data/sft/train-*"}]


def test_split_column_makes_splits_and_datasets_loads_the_directory(tmp_path):
    import datasets

    rows = [{**row, "split": "test" if i % 4 == 0 else "train"} for i, row in enumerate(sft_rows(8))]
    write_stage(tmp_path / "sft", "build-sft", {}, {}, rows, extra={"release_config": "sft"})
    build_release([tmp_path / "sft"], tmp_path / "r", name="toy", version="1.0.0")
    info = read_release(tmp_path / "r")
    assert {s: v["rows"] for s, v in info["configs"]["sft"]["splits"].items()} == {"train": 6, "test": 2}
    loaded = datasets.load_dataset(str(tmp_path / "r"), "sft")
    assert {name: split.num_rows for name, split in loaded.items()} == {"train": 6, "test": 2}
    assert "split" not in loaded["train"].column_names
    assert loaded["test"]["messages"][0][1]["content"] == "Weather in city 0?"


def test_named_inputs_and_diff_of_local_releases(tmp_path):
    make_sft_stage(tmp_path / "a", sft_rows(6))
    make_sft_stage(tmp_path / "b", sft_rows(7, offset=3))
    build_release([f"chat={tmp_path / 'a'}"], tmp_path / "r1", name="toy", version="1.0.0")
    build_release([f"chat={tmp_path / 'b'}"], tmp_path / "r2", name="toy", version="1.1.0")
    assert list(read_release(tmp_path / "r1")["configs"]) == ["chat"]
    diff = diff_releases(str(tmp_path / "r1"), str(tmp_path / "r2"))["configs"]["chat"]
    assert (diff["added"], diff["removed"]) == (4, 3)
    assert diff["apis"] == {"convert_currency": {"added": 1, "removed": 1}, "get_weather": {"added": 3, "removed": 2}}
    result = CliRunner().invoke(cli, ["release", "diff", str(tmp_path / "r1"), str(tmp_path / "r2")])
    assert result.exit_code == 0, result.output
    assert "chat: +4 -3 (6 -> 7 rows)" in result.output and "get_weather: +3 -2" in result.output


def _run_cli(args: list[str]) -> tuple[int, str]:
    """Run the real entry point (InputError -> one line, exit 2) and return (code, stderr)."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "imaginarium.cli", *args], capture_output=True, text=True)
    return result.returncode, result.stderr


def test_bad_input_exits_2_naming_what_is_wrong(run_dir, tmp_path):
    code, err = _run_cli(["release", "build", str(run_dir), "-o", str(tmp_path / "r"), "--name", "toy", "--version", "1.0"])
    assert code == 2 and "--version" in err and "X.Y.Z" in err
    (tmp_path / "empty").mkdir()
    code, err = _run_cli(["release", "build", str(tmp_path / "empty"), "-o", str(tmp_path / "r"), "--name", "toy", "--version", "1.0.0"])
    assert code == 2 and str(tmp_path / "empty") in err
    assert not (tmp_path / "r").exists()


def test_duplicate_configs_and_foreign_output_are_refused(tmp_path):
    make_sft_stage(tmp_path / "one", sft_rows(2))
    make_sft_stage(tmp_path / "two", sft_rows(3))
    with pytest.raises(InputError, match="two inputs give config 'sft'"):
        build_release([tmp_path / "one", tmp_path / "two"], tmp_path / "r", name="toy", version="1.0.0")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes/todo.txt").write_text("mine")
    with pytest.raises(InputError, match="not a release directory"):
        build_release([tmp_path / "one"], tmp_path / "notes", name="toy", version="1.0.0")
    with pytest.raises(InputError, match="imaginarium cache export"):
        build_release([tmp_path / "one"], tmp_path / "r", name="toy", version="1.0.0", cache=tmp_path / "notes/todo.txt")
    assert (tmp_path / "notes/todo.txt").read_text() == "mine"


def test_failed_rebuild_leaves_the_previous_release_intact(tmp_path):
    make_sft_stage(tmp_path / "good", sft_rows(3))
    build_release([tmp_path / "good"], tmp_path / "r", name="toy", version="1.0.0")
    before = {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    rows = [{**row, "split": "bad split!"} for row in sft_rows(2)]
    write_stage(tmp_path / "bad", "build-sft", {}, {}, rows, extra={"release_config": "sft"})
    with pytest.raises(InputError, match="column split"):
        build_release([tmp_path / "bad"], tmp_path / "r", name="toy", version="2.0.0")
    assert {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "good", "r"]  # no staging left behind


def test_card_shows_axolotl_dpo_only_for_rendered_text_preferences(tmp_path):
    from imaginarium.stage import write_stage

    rows = [{"prompt": f"<|user|>\nq{i}<|end|>\n", "chosen": "good", "rejected": "bad", "api": "a"} for i in range(2)]
    write_stage(tmp_path / "text", "rank", {}, {}, rows, extra={"release_config": "preference_text"})
    build_release([tmp_path / "text"], tmp_path / "r", name="prefs", version="0.2.0", repo_id="me/prefs")
    card = (tmp_path / "r/README.md").read_text()
    assert "rl: dpo" in card and "type: passthrough" in card
    assert 'data_files: ["data/preference_text/train-*.parquet"]' in card
    assert "revision: v0.2.0" in card
