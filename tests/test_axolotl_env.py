"""The recipes proven by Axolotl itself: render -> check -> 2 CPU training steps (sft-lora, dpo).

Needs the Axolotl environment (`make axolotl-env`, .venv-axolotl); skipped without it. `make
axolotl-ci` (run by .ci/run) creates it and runs this module. Each check and each training run
is a real `imaginarium train ...` process that starts Axolotl in its own virtualenv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fixtures_axolotl import make_release

from imaginarium.axolotl_configs.environment import DEFAULT_DIR, ENV_VAR
from imaginarium.axolotl_configs.render import header, render_config, write_config

ROOT = Path(__file__).resolve().parents[1]
ENV = Path(os.environ.get(ENV_VAR) or ROOT / DEFAULT_DIR)

pytestmark = pytest.mark.skipif(not (ENV / "bin" / "axolotl").exists(),
                                reason=f"no Axolotl environment at {ENV}: `make axolotl-env` (or `make axolotl-ci`)")


def imaginarium(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, ENV_VAR: str(ENV), "HF_HUB_OFFLINE": "1", "TORCHDYNAMO_DISABLE": "1"}
    return subprocess.run([sys.executable, "-m", "imaginarium.cli", "train", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=540)


@pytest.fixture(scope="module")
def work(tiny_model, tmp_path_factory):
    """The release, and the sft-lora and dpo configs rendered for 2 CPU steps."""
    root = tmp_path_factory.mktemp("axolotl-env")
    release = make_release(root, tiny_model)
    for template in ("sft-lora", "dpo"):
        config = render_config(str(release), template, str(tiny_model), cpu=True, overrides=[
            "max_steps=2", "gradient_accumulation_steps=1", "save_strategy=no", f"output_dir={root / ('out-' + template)}",
            f"dataset_prepared_path={root / 'prepared'}"])
        write_config(config, root / f"{template}.yml", header(str(release), template))
    return root


def variant(work: Path, name: str, change) -> Path:
    """A copy of the sft-lora config with one deliberate mistake."""
    config = yaml.safe_load((work / "sft-lora.yml").read_text())
    change(config)
    path = work / f"{name}.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def check(work: Path, config: Path, *extra: str) -> tuple[int, dict]:
    result = imaginarium("check", str(config), "--json", *extra, cwd=work)
    assert result.stdout.startswith("{"), result.stderr[-3000:]
    return result.returncode, json.loads(result.stdout)


@pytest.mark.parametrize("template", ["sft-lora", "dpo"])
def test_rendered_config_passes_axolotls_check(work, template):
    code, report = check(work, work / f"{template}.yml")
    assert code == 0, json.dumps(report, indent=2)
    assert report["axolotl_version"] == "0.19.0"
    assert report["unknown_keys"] == [] and report["validation_errors"] == []
    assert report["capabilities"]["bf16"] is False  # this machine's (CPU) capabilities
    assert [row["row"] for row in report["rows"]] == list(range(8))
    assert all(row["ok"] and not row["problems"] for row in report["rows"])
    if template == "sft-lora":
        assert all(0 < row["trained_tokens"] < row["tokens"] for row in report["rows"])


def test_bad_enum_and_unknown_key_are_rejected(work):
    def mistakes(config):
        config["datasets"][0]["train_on_eos"] = "sometimes"
        config["lora_rank"] = 8
        config["datasets"][0]["field_tool"] = "tools"

    result = imaginarium("check", str(variant(work, "bad-enum", mistakes)), "--rows", "0", cwd=work)
    assert result.returncode == 1
    assert "unknown key (Axolotl would ignore it): lora_rank" in result.stdout
    assert "unknown key (Axolotl would ignore it): datasets[0].field_tool" in result.stdout
    # The SFT entry is validated as one (the bare union would accept it as a DPO entry).
    assert "invalid: datasets[0].train_on_eos: Input should be 'all', 'turn', 'last' or 'none'" in result.stdout
    assert result.stdout.rstrip().endswith("FAILED")


def test_chat_template_that_drops_tools_is_rejected(work):
    code, report = check(work, variant(work, "chatml", lambda c: c.update(chat_template="chatml")))
    assert code == 1
    assert report["chat_template_problems"] == ["the chat template (chatml) drops the tool list",
                                                "the chat template (chatml) drops the assistant's tool calls"]


def test_trained_tool_responses_are_reported_per_row(work):
    code, report = check(work, variant(work, "train-tool", lambda c: c["datasets"][0].update(
        roles_to_train=["assistant", "tool"])), "--rows", "2")
    assert code == 1
    assert [row["ok"] for row in report["rows"]] == [False, False]
    assert report["rows"][0]["problems"] == ['tool response is trained: \'{"temp_c": 14, "sky": "clear"}\'']


@pytest.mark.parametrize("template", ["sft-lora", "dpo"])
def test_two_training_steps_on_cpu(work, template):
    result = imaginarium("run", str(work / f"{template}.yml"), cwd=work)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "2/2" in output and "train_loss" in output
    assert (work / f"out-{template}" / "adapter_model.safetensors").is_file()


def test_when_not_to_call_pairs_pass_axolotls_dpo_check(tiny_model, tmp_path):
    """The scenario kinds' preference pairs (builders/scenarios.py: a plain answer or a question
    chosen over a call, a good call over a failed one), rendered and checked by Axolotl itself."""
    from test_build_sft import TOOLS, write_trials
    from test_kinds import KIND_TRIALS

    from imaginarium.builders.scenarios import PreferenceConfig, build_preferences
    from imaginarium.hub_cards.release import build_release
    from imaginarium.schemas.toolspec import write_tools

    write_tools(tmp_path / "tools.jsonl", TOOLS)
    trials = write_trials(tmp_path / "trials", KIND_TRIALS, extra_columns=True)
    build_preferences(trials, tmp_path / "tools.jsonl", tmp_path / "pref",
                      PreferenceConfig(max_tools=3, render_with=str(tiny_model)), progress=False)
    release = tmp_path / "release"
    build_release([tmp_path / "pref" / "preference_text"], release, name="kinds-dpo", version="1.0.0",
                  repo_id="imaginarium/kinds-dpo")
    config = render_config(str(release), "dpo", str(tiny_model), cpu=True, overrides=[
        "max_steps=1", f"output_dir={tmp_path / 'out'}", f"dataset_prepared_path={tmp_path / 'prepared'}"])
    write_config(config, tmp_path / "dpo.yml", header(str(release), "dpo"))
    code, report = check(tmp_path, tmp_path / "dpo.yml")
    assert code == 0, json.dumps(report, indent=2)[-3000:]
    assert report["validation_errors"] == [] and len(report["rows"]) == 3
    assert all(row["ok"] and not row["problems"] for row in report["rows"])
