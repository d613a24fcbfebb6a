"""`imaginarium build`: training sets from kept trials (sft), continual-learning rounds, BFCL test files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from imaginarium.builders.bfcl import BfclConfig
from imaginarium.builders.continual import ContinualConfig
from imaginarium.builders.scenarios import PreferenceConfig
from imaginarium.builders.sft import SftConfig
from imaginarium.options import PATH, cli_options, out_option, parse_cli

tools_option = click.option("--tools", required=True, type=PATH,
                            help="tools.jsonl with every tool the trials use (`imaginarium tools import`).")


@click.group()
def build() -> None:
    """Build training sets: SFT rows (chat with tools, or ReAct text) and continual rounds."""


@build.command("sft")
@click.argument("trials", type=PATH)
@out_option("Output stage directory.")
@tools_option
@cli_options(SftConfig)
def sft_command(trials: Path, out: Path, tools: Path, **params: Any) -> None:
    """Build SFT rows from a stage directory of episode trials (explore, filter or augment output)."""
    from imaginarium.builders.sft import build_sft

    manifest = build_sft(trials, tools, out, parse_cli(SftConfig, params))
    counts = manifest["counts"]
    click.echo(f"{out}: {counts['rows']} rows from {counts['trials']} trials; skipped: {json.dumps(counts['skipped'])}")


@build.command("bfcl")
@click.argument("trials", type=PATH)
@out_option("Output directory: BFCL question and possible-answer files.")
@tools_option
@cli_options(BfclConfig)
def bfcl_command(trials: Path, out: Path, tools: Path, **params: Any) -> None:
    """Export a held-out part of the trials as BFCL test files (questions + possible answers).

    Test a model on your own tools with BFCL's format; leave the same trials out of training
    with `build sft --holdout` (same fraction and seed):

        imaginarium build bfcl kept/ --tools tools.jsonl --holdout 0.1 -o bfcl-own/
        imaginarium build sft kept/ --tools tools.jsonl --holdout 0.1 -o sft/
        imaginarium predict --format bfcl --bfcl-data bfcl-own/ -o results.jsonl
        imaginarium eval results.jsonl --format bfcl --bfcl-data bfcl-own/
    """
    from imaginarium.builders.bfcl import build_bfcl

    manifest = build_bfcl(trials, tools, out, parse_cli(BfclConfig, params))
    click.echo(f"{out}: {manifest['items']} {manifest['category']} items from {manifest['held_out_trials']} held-out "
               f"trials of {manifest['trials']}; skipped: {json.dumps(manifest['skipped'])}")


@build.command("preference")
@click.argument("trials", type=PATH)
@out_option("Output directory: preference/ (and preference_text/ with --render-with) stage directories.")
@tools_option
@cli_options(PreferenceConfig)
def preference_command(trials: Path, out: Path, tools: Path, **params: Any) -> None:
    """Build DPO pairs from explored trials: when not to call, and executed failures.

    Irrelevant and clarify trials (explore --kinds) pair the right reply (a plain answer, a
    question) with a call the model made when one was forced; other trials pair a successful
    call with a failed one. --render-with MODEL also writes the pairs as the text Axolotl's DPO
    trains on.
    """
    from imaginarium.builders.scenarios import build_preferences

    manifests = build_preferences(trials, tools, out, parse_cli(PreferenceConfig, params))
    counts = manifests["preference"].get("counts") or {}
    click.echo(f"{out}: {counts.get('pairs', 0)} preference pairs; per kind: {json.dumps(counts.get('per_kind', {}))}")


@build.command("continual")
@click.argument("rows", type=PATH)
@out_option("Output stage directory.")
@cli_options(ContinualConfig)
def continual_command(rows: Path, out: Path, **params: Any) -> None:
    """Build one continual-learning round from chat rows (a `build sft --format chat` output)."""
    from imaginarium.builders.continual import build_continual

    manifest = build_continual(rows, out, parse_cli(ContinualConfig, params))
    counts = manifest["counts"]
    click.echo(f"{out}: {counts['rows']} rows (batch {counts['batch']}, replay {json.dumps(counts['replay'])}, "
               f"general {counts['general']}, in no batch {counts['not_in_batches']})")
