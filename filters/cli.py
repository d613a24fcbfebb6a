"""`imaginarium filter`: parse the options into a FilterConfig, run `filter_stage`, print the funnel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from imaginarium.filters.filter import FilterConfig
from imaginarium.options import PATH, cli_options, out_option, parse_cli


def funnel_lines(funnel: dict[str, Any]) -> list[str]:
    """The filter's funnel as lines for a person: rows kept per step with the drop reasons, per API."""
    lines = [f"filter funnel: {funnel['input']} trials in"]
    for step in funnel["steps"]:
        reasons = ", ".join(f"{reason} x{n}" for reason, n in sorted(step["dropped"].items(), key=lambda kv: -kv[1]))
        lines.append(f"  {step['name']:<13} kept {step['kept']:>6}" + (f"   dropped: {reasons}" if reasons else ""))
    for api, counts in funnel["per_api"].items():
        lines.append(f"  {api[:48]:<48} {counts['input']:>5} -> {counts['kept']:>5}")
    return lines


@click.command("filter")
@click.argument("trials", type=PATH)
@out_option("Stage directory to write.")
@cli_options(FilterConfig)
def filter_command(trials: Path, out: Path, **params: Any) -> None:
    """Keep the episode trials worth training on; every dropped one keeps its reason.

    Steps: a final answer; at least one call executed without error; the LLM judge (informative,
    faithful, appropriate); exact and semantic dedupe. Writes funnel.json and dropped.parquet beside
    the data and prints the funnel.

    \b
    Example:
      imaginarium filter runs/explore -o runs/filtered --model Qwen/Qwen2.5-7B-Instruct
      imaginarium filter runs/explore -o runs/filtered --no-judge
    """
    from imaginarium.filters.filter import filter_stage

    manifest = filter_stage(trials, out, parse_cli(FilterConfig, params))
    for line in funnel_lines(manifest["extra"]["funnel"]):
        click.echo(line)
