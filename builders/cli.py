"""`imaginarium build`: training sets from kept trials (sft) and continual-learning rounds."""

from __future__ import annotations

import json

import click

from imaginarium.builders.chat import DEFAULT_SYSTEM


@click.group()
def build() -> None:
    """Build training sets: SFT rows (chat with tools, or ReAct text) and continual rounds."""


@build.command("sft")
@click.argument("trials", type=click.Path(file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Output stage directory.")
@click.option("--tools", required=True, type=click.Path(dir_okay=False),
              help="tools.jsonl with every tool the trials use (`imaginarium tools import`).")
@click.option("--format", "format", type=click.Choice(["chat", "react"]), default="chat", show_default=True,
              help="chat: OpenAI/HF tool-calling messages + tools; react: STE Action/Observation text.")
@click.option("--with-tool-response", is_flag=True,
              help="Add the second turn: the tool's response, then the final answer. "
              "Without it an example ends at the call.")
@click.option("--calls", type=click.Choice(["ok", "all"]), default="ok", show_default=True,
              help="ok: only calls that ran without error; all: keep failed calls and their errors before the retry.")
@click.option("--simulated-ok/--no-simulated-ok", default=True, show_default=True,
              help="Whether a call answered by the response simulator counts as successful (as in filter).")
@click.option("--system", default=DEFAULT_SYSTEM, show_default="a short tool-use instruction",
              help="System message of chat rows ('' for none).")
@click.option("--max-tools", default=5, show_default=True, type=click.IntRange(min=1),
              help="Tools shown per example: its API, the tools it calls, then nearest neighbours.")
@click.option("--embedding-model", default=None, help="Sentence-transformers model name or path for the neighbours "
              "[default: the bundled all-MiniLM-L6-v2].")
@click.option("--seed", default=0, show_default=True, help="Seed of the order of the tools shown.")
@click.option("--tool-token", is_flag=True, help="ReAct: write the call name as <tool_NAME>.")
@click.option("--release-config", default=None, help="Config name in a release [default: sft or sft_react].")
def sft_command(trials, out, tools, format, with_tool_response, calls, simulated_ok, system, max_tools,
                embedding_model, seed, tool_token, release_config) -> None:
    """Build SFT rows from a stage directory of episode trials (explore, filter or augment output)."""
    from imaginarium.builders.sft import build_sft

    manifest = build_sft(trials, out, tools, format=format, with_tool_response=with_tool_response,
                         calls=calls, simulated_ok=simulated_ok, system=system, max_tools=max_tools,
                         embedding_model=embedding_model, seed=seed, tool_token=tool_token,
                         release_config=release_config)
    counts = manifest["counts"]
    click.echo(f"{out}: {counts['rows']} rows from {counts['trials']} trials; skipped: {json.dumps(counts['skipped'])}")


@build.command("continual")
@click.argument("rows", type=click.Path(file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Output stage directory.")
@click.option("--batches", required=True, type=click.Path(dir_okay=False),
              help="JSON list of batches of API source names (e.g. STE's CL_batches.json).")
@click.option("--round", "round", required=True, type=click.IntRange(min=0), help="The round to build (0-based).")
@click.option("--replay-ratio", default=0.1, show_default=True, type=click.FloatRange(0, 1),
              help="Share of each earlier batch's rows replayed (a seeded sample).")
@click.option("--general", default=None, type=click.Path(dir_okay=False),
              help="General instruction data with no tools: JSON list of {dialog_history, response}.")
@click.option("--general-count", default=None, type=click.IntRange(min=0),
              help="Use a seeded sample of this many general rows [default: all].")
@click.option("--tools", default=None, type=click.Path(dir_okay=False),
              help="tools.jsonl to map the batches' source names to tool names [default: safe_name].")
@click.option("--seed", default=0, show_default=True, help="Seed of the replay and general samples.")
def continual_command(rows, out, batches, round, replay_ratio, general, general_count, tools, seed) -> None:
    """Build one continual-learning round from chat rows (a `build sft --format chat` output)."""
    from imaginarium.builders.continual import build_continual

    manifest = build_continual(rows, out, batches, round, replay_ratio=replay_ratio, general=general,
                               general_count=general_count, tools=tools, seed=seed)
    counts = manifest["counts"]
    click.echo(f"{out}: {counts['rows']} rows (batch {counts['batch']}, replay {json.dumps(counts['replay'])}, "
               f"general {counts['general']}, in no batch {counts['not_in_batches']})")
