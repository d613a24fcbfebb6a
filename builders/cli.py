"""`imaginarium build`: training sets from kept trials (sft) and continual-learning rounds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from imaginarium.builders.continual import ContinualConfig
from imaginarium.builders.sft import SftConfig
from imaginarium.options import PATH, cli_options, out_option, parse_cli


@click.group()
def build() -> None:
    """Build training sets: SFT rows (chat with tools, or ReAct text) and continual rounds."""


@build.command("sft")
@click.argument("trials", type=PATH)
@out_option("Output stage directory.")
@click.option("--tools", required=True, type=PATH,
              help="tools.jsonl with every tool the trials use (`imaginarium tools import`).")
@cli_options(SftConfig)
def sft_command(trials: Path, out: Path, tools: Path, **params: Any) -> None:
    """Build SFT rows from a stage directory of episode trials (explore, filter or augment output)."""
    from imaginarium.builders.sft import build_sft

    manifest = build_sft(trials, tools, out, parse_cli(SftConfig, params))
    counts = manifest["counts"]
    click.echo(f"{out}: {counts['rows']} rows from {counts['trials']} trials; skipped: {json.dumps(counts['skipped'])}")


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
