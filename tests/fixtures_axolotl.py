"""A release and a tiny model for the Axolotl recipe tests.

The release holds an `sft` config of chat rows with tools (sft_row schema) and a
`preference_text` config: preference rows (preference_row schema) rendered to text with the tiny
model's chat template. Rows are hand-written (tests/fixtures_release.py) until the SFT and
preference builders exist; they are checked against the record schemas before use.
"""

from __future__ import annotations

from pathlib import Path

from fixtures_release import make_sft_stage, preference_rows, sft_rows

from imaginarium.axolotl_configs.preference_text import ARROW_SCHEMA, render_preference_rows
from imaginarium.schemas.records import validate_rows
from imaginarium.stage import write_stage


def make_tiny_model(directory: Path) -> Path:
    from imaginarium.generators.tiny_model import build_tiny_model

    return build_tiny_model(directory, seed=0)


def make_release(root: Path, model_dir: Path, *, rows: int = 8) -> Path:
    """A release directory with the `sft` and `preference_text` configs (version 1.0.0)."""
    from transformers import AutoTokenizer

    from imaginarium.hub_cards.release import build_release

    sft = sft_rows(rows)
    validate_rows("sft_row", sft)
    preferences = preference_rows(rows)
    validate_rows("preference_row", preferences)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    text_rows = render_preference_rows(preferences, tokenizer)
    sft_dir = make_sft_stage(root / "stages/sft", sft)
    text_dir = root / "stages/preference_text"
    write_stage(text_dir, "render-preference-text", {"model": str(model_dir)}, {}, text_rows, schema=ARROW_SCHEMA,
                extra={"release_config": "preference_text"})
    release = root / "release"
    build_release([sft_dir, text_dir], release, name="axolotl-test", version="1.0.0", repo_id="imaginarium/axolotl-test")
    return release
