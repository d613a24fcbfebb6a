"""Rendering Axolotl configs (no Axolotl needed): pinning, chat templates, refusals, overrides.

The checks that need Axolotl itself are in tests/test_axolotl_env.py (`make axolotl-ci`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest
import yaml
from click.testing import CliRunner
from fixtures_axolotl import make_release

from imaginarium.axolotl_configs import render
from imaginarium.builders.preference_text import chat_messages, chat_tools, render_preference_rows
from imaginarium.errors import InputError
from imaginarium.models.tiny import CHAT_TEMPLATE

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n'}}{% endfor %}")


@pytest.fixture(scope="module")
def release(tiny_model, tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("axolotl-release"), tiny_model)


@pytest.fixture(scope="module")
def chatml_model(tiny_model, tmp_path_factory):
    """The tiny model's tokenizer with a chat template that drops tools (like Axolotl's chatml)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.chat_template = CHATML
    out = tmp_path_factory.mktemp("chatml-model")
    tokenizer.save_pretrained(out)
    return out


def test_sft_config_pins_the_release_and_keeps_tools(release, tiny_model):
    config = render.render_config(str(release), "sft-lora", str(tiny_model))
    assert config["base_model"] == str(tiny_model)
    assert config["chat_template"] == "tokenizer_default"  # the tiny model's own renders tools
    assert config["datasets"] == [{
        "path": str(release.resolve()), "name": "sft", "split": "train", "type": "chat_template",
        "field_messages": "messages", "field_tools": "tools", "roles_to_train": ["assistant"], "train_on_eos": "turn",
    }]
    # STE paper defaults
    assert (config["num_epochs"], config["learning_rate"], config["warmup_ratio"], config["sequence_len"]) == (2, 2e-5, 0.03, 2048)
    assert config["adapter"] == "lora"
    head = render.header(str(release), "sft-lora")
    content_hash = json.loads((release / "provenance/release.json").read_text())["configs"]["sft"]["content_hash"]
    assert "axolotl-test v1.0.0" in head and content_hash in head


def test_hub_release_pins_the_revision(tiny_model):
    sft = render.render_config("imaginarium/ste-tools@v1.2.3", "sft-full", str(tiny_model))
    assert sft["datasets"][0]["path"] == "imaginarium/ste-tools"
    assert sft["datasets"][0]["revision"] == "v1.2.3"
    assert "adapter" not in sft
    dpo = render.render_config("imaginarium/ste-tools@v1.2.3", "dpo", str(tiny_model))
    assert dpo["rl"] == "dpo"
    assert dpo["datasets"] == [{"path": "imaginarium/ste-tools", "revision": "v1.2.3",
                                "data_files": ["data/preference_text/train-*.parquet"], "split": "train",
                                "type": "passthrough"}]
    assert "at revision v1.2.3" in render.header("imaginarium/ste-tools@v1.2.3", "dpo")


@pytest.mark.parametrize("spec", ["imaginarium/ste-tools", "imaginarium/ste-tools@main", "no-such-dir"])
def test_unpinned_or_unknown_dataset_is_refused(spec, tiny_model):
    with pytest.raises(InputError, match="OWNER/NAME@vX.Y.Z"):
        render.render_config(spec, "sft-lora", str(tiny_model))


def test_dpo_config_points_at_text_rows(release, tiny_model):
    config = render.render_config(str(release), "dpo", str(tiny_model))
    assert config["datasets"] == [{"path": str(release.resolve() / "data/preference_text"), "split": "train",
                                   "type": "passthrough"}]


def test_wrong_row_kind_is_refused(release, tiny_model):
    with pytest.raises(InputError, match="needs text rows"):
        render.render_config(str(release), "dpo", str(tiny_model), config="sft")
    with pytest.raises(InputError, match="needs chat rows"):
        render.render_config(str(release), "sft-lora", str(tiny_model), config="preference_text")
    with pytest.raises(InputError, match="no config 'nope'; it has: preference_text, sft"):
        render.render_config(str(release), "sft-lora", str(tiny_model), config="nope")


def test_templates_that_drop_tools_are_refused(release, tiny_model, chatml_model, tmp_path):
    with pytest.raises(InputError, match="'chatml' template drops tools"):
        render.render_config(str(release), "sft-lora", str(tiny_model), chat_template="chatml")
    with pytest.raises(InputError, match="drops the tool list, the assistant's tool call"):
        render.render_config(str(release), "sft-lora", str(chatml_model))
    no_tools = tmp_path / "no-tools.jinja"
    no_tools.write_text(CHATML)
    with pytest.raises(InputError, match="drops the tool list"):
        render.render_config(str(release), "sft-lora", str(tiny_model), chat_template=str(no_tools))
    with pytest.raises(InputError, match="neither a named Axolotl template"):
        render.render_config(str(release), "sft-lora", str(tiny_model), chat_template="my_template")


def test_templates_that_render_tools_are_used(release, tiny_model, chatml_model, tmp_path):
    config = render.render_config(str(release), "sft-lora", str(chatml_model), chat_template="qwen_25")
    assert config["chat_template"] == "qwen_25"
    own = tmp_path / "tools.jinja"
    own.write_text(CHAT_TEMPLATE)
    config = render.render_config(str(release), "sft-lora", str(chatml_model), chat_template=str(own))
    assert (config["chat_template"], config["chat_template_jinja"]) == ("jinja", CHAT_TEMPLATE)


def test_base_model_not_available_offline_needs_a_named_template(release):
    with pytest.raises(InputError, match="cannot read the chat template of 'someone/unknown-model' offline"):
        render.render_config(str(release), "sft-lora", "someone/unknown-model")
    config = render.render_config(str(release), "sft-lora", "someone/unknown-model", chat_template="llama4")
    assert config["chat_template"] == "llama4"


def test_named_template_lists_cover_axolotl_without_overlap():
    assert not render.TOOL_TEMPLATES & render.DROPS_TOOLS
    assert "chatml" in render.DROPS_TOOLS and "qwen_25" in render.TOOL_TEMPLATES


def test_overrides_and_cpu_settings(release, tiny_model):
    config = render.render_config(str(release), "sft-qlora", str(tiny_model), cpu=True,
                                  overrides=["max_steps=2", "save_strategy=no", "special_tokens.pad_token=<|end|>",
                                             "learning_rate=1e-4", "bf16=true"])
    assert config["max_steps"] == 2 and config["save_strategy"] == "no"  # not YAML 1.1's false
    assert config["special_tokens"] == {"pad_token": "<|end|>"}
    assert config["learning_rate"] == 1e-4
    assert config["bf16"] is True  # --set wins over --cpu
    assert all(config[key] is False for key in ("fp16", "tf32", "lora_mlp_kernel", "lora_qkv_kernel", "lora_o_kernel"))
    assert config["adapter"] == "qlora" and config["load_in_4bit"] is True
    with pytest.raises(InputError, match="KEY=VALUE"):
        render.render_config(str(release), "sft-lora", str(tiny_model), overrides=["max_steps"])


def test_continual_rounds_chain_their_models(release, tiny_model, tmp_path):
    paths = render.render_continual(str(release), str(tiny_model), ["sft", "sft"], tmp_path / "rounds")
    first, second = (yaml.safe_load(p.read_text()) for p in paths)
    assert [p.name for p in paths] == ["round-1.yml", "round-2.yml"]
    assert first["base_model"] == str(tiny_model)
    assert second["base_model"] == first["output_dir"] == "./outputs/continual/round-1"
    assert second["output_dir"] == "./outputs/continual/round-2"
    assert "adapter" not in second  # full fine-tuning: each round's output is a whole model
    assert "Round 2 of 2: starts from ./outputs/continual/round-1" in paths[1].read_text()


def test_preference_rows_render_to_prompt_and_completions(tiny_model):
    from fixtures_release import preference_rows
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    row = preference_rows(1)[0]
    (text,) = render_preference_rows([row], tokenizer)
    tools = chat_tools(row["tools"])
    full = tokenizer.apply_chat_template(chat_messages(row["prompt"] + row["chosen"]), tools=tools, tokenize=False)
    assert text["prompt"] + text["chosen"] == full
    assert text["prompt"].endswith("<|assistant|>\n") and "the get_weather API" in text["prompt"]
    assert text["chosen"].startswith('<call>{"name": "get_weather", "arguments": {"city": "Town0"}}</call>')
    assert "Nowhere" in text["rejected"] and "Nowhere" not in text["chosen"]
    assert json.loads(text["chosen_calls"]) == [{"name": "get_weather", "arguments": '{"city": "Town0"}'}]
    assert text["chosen_answer"] == "18 degrees."


def test_cli_render_writes_yaml_and_refuses_chatml(release, tiny_model, tmp_path):
    from imaginarium.cli import cli

    out = tmp_path / "axolotl.yml"
    result = CliRunner().invoke(cli, ["train", "render", "--dataset", str(release), "--template", "sft-lora",
                                      "--base-model", str(tiny_model), "--cpu", "--set", "max_steps=2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(out.read_text())["max_steps"] == 2
    bad = tmp_path / "bad.yml"
    proc = subprocess.run([sys.executable, "-m", "imaginarium.cli", "train", "render", "--dataset", str(release),
                           "--template", "sft-lora", "--base-model", str(tiny_model), "--chat-template", "chatml",
                           "-o", str(bad)], capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2
    assert "--chat-template: Axolotl's 'chatml' template drops tools and tool calls" in proc.stderr
    assert not bad.exists()


def test_check_and_run_need_the_environment(tmp_path):
    from imaginarium.axolotl_configs.check import check_config

    config = tmp_path / "axolotl.yml"
    config.write_text("base_model: x\n")
    with pytest.raises(InputError, match="make axolotl-env"):
        check_config(config, env_dir=tmp_path / "missing")


def test_run_dry_run_prints_the_command(tmp_path, capsys):
    from imaginarium.axolotl_configs.run import run_training

    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to(sys.executable)
    config = tmp_path / "axolotl.yml"
    config.write_text("base_model: x\n")
    assert run_training(config, env_dir=env, dry_run=True) == 0
    printed = capsys.readouterr().out
    assert f"{env}/bin/axolotl train {config}" in printed
    assert "AXOLOTL_DO_NOT_TRACK=1" in printed and "HF_HUB_OFFLINE=1" in printed and "WANDB_MODE=disabled" in printed


def test_known_keys_include_aliases():
    """The checker's unknown-key rule: a key is known when it is a field name or an alias."""
    path = Path(render.__file__).with_name("axolotl_check_script.py")
    spec = importlib.util.spec_from_file_location("axolotl_check_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)  # imports nothing from Axolotl at module level

    class Model(pydantic.BaseModel):
        learning_rate: float = 0.0
        model_type: str = pydantic.Field(default="", alias="type_of_model")

    assert script.known_keys(Model) == {"learning_rate", "model_type", "type_of_model"}
