"""TRICE preference pairs proven by Axolotl itself: `rank` -> release -> dpo config -> `train check`.

Needs the Axolotl environment (`make axolotl-env`, .venv-axolotl); skipped without it. `make
axolotl-ci` (run by .ci/run) runs this module beside tests/test_axolotl_env.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imaginarium.axolotl_configs.environment import DEFAULT_DIR, ENV_VAR
from imaginarium.axolotl_configs.render import header, render_config, write_config

ROOT = Path(__file__).resolve().parents[1]
ENV = Path(os.environ.get(ENV_VAR) or ROOT / DEFAULT_DIR)
DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.skipif(not (ENV / "bin" / "axolotl").exists(),
                                reason=f"no Axolotl environment at {ENV}: `make axolotl-env` (or `make axolotl-ci`)")


def test_rank_dpo_rows_pass_axolotls_check(tiny_model, tmp_path):
    from imaginarium.hub_cards.release import build_release
    from imaginarium.trice.rank import RankConfig, rank

    out = tmp_path / "trice"
    config = RankConfig.from_flat(dict(candidates=2, model=str(tiny_model), min_calls=1, max_turns=1,
                                       max_thought_chars=8, max_answer_chars=12, max_argument_chars=16, max_tokens=96,
                                       batch_size=10, render_with=str(tiny_model)))
    manifests = rank(DATA / "trice_math.jsonl", out, config, progress=False)
    pairs = manifests["preference_text"]["counts"]["rows"]
    release = tmp_path / "release"
    build_release([out / "sft", out / "preference_text"], release, name="trice-test", version="1.0.0",
                  repo_id="imaginarium/trice-test")
    config = render_config(str(release), "dpo", str(tiny_model), cpu=True, overrides=[
        "max_steps=2", "gradient_accumulation_steps=1", "save_strategy=no", f"output_dir={tmp_path / 'out'}",
        f"dataset_prepared_path={tmp_path / 'prepared'}"])
    assert config["datasets"][0]["path"].endswith("data/preference_text")
    write_config(config, tmp_path / "dpo.yml", header(str(release), "dpo"))
    env = {**os.environ, ENV_VAR: str(ENV), "HF_HUB_OFFLINE": "1", "TORCHDYNAMO_DISABLE": "1"}
    result = subprocess.run([sys.executable, "-m", "imaginarium.cli", "train", "check", str(tmp_path / "dpo.yml"),
                             "--json"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=540)
    assert result.stdout.startswith("{"), result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert result.returncode == 0, json.dumps(report, indent=2)
    assert report["kind"] == "dpo" and report["unknown_keys"] == [] and report["validation_errors"] == []
    assert len(report["rows"]) == min(8, pairs)
    assert all(row["ok"] and not row["problems"] for row in report["rows"])
