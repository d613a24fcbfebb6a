"""`imaginarium explore`: parse the options into an ExploreConfig, run `explore`, print the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from imaginarium.generators.explore import ExploreConfig
from imaginarium.generators.quality import format_quality
from imaginarium.options import PATH, cli_options, out_option, parse_cli


@click.command("explore")
@click.option("--tools", required=True, type=PATH, help="tools.jsonl to explore.")
@out_option("Stage directory to write.")
@cli_options(ExploreConfig)
def explore_command(tools: Path, out: Path, **params: Any) -> None:
    """Explore APIs by simulated trial and error (STE) and write episode trials.

    For every API at once: imagine a query (seeing the queries already explored and whether each
    succeeded), call tools under their JSON Schemas, execute against the response cache, answer,
    and reflect. Finished trials are written as they come; an interrupted run resumes. Ends with
    the run's quality report.

    \b
    Example:
      imaginarium explore --tools tools.jsonl --episodes 2 --stm-slots 2 \\
          --cache cache.sqlite --cache-mode simulate -o runs/explore
    """
    from imaginarium.generators.explore import explore

    config = parse_cli(ExploreConfig, params)
    manifest = explore(tools, out, config)
    run = manifest.get("extra", {}).get("run", {})
    counts = manifest["counts"]
    click.echo(f"{counts['trials']} trials ({counts['succeeded']} judged successful by reflection) -> {out}")
    if run:
        hits = f", {run['prefix_hit_share']:.0%} of prompt tokens from the prefix cache" if "prefix_hit_share" in run else ""
        click.echo(f"wall {run['wall_seconds']:.1f} s, {run['backend_share']:.0%} inside the backend, "
                   f"{run['prompt_tokens']} prompt + {run['completion_tokens']} completion tokens{hits}")
    if run.get("engine") == "ray":
        click.echo(f"ray: {run['replicas']} replicas, {run['shards']} shards, "
                   f"{run['worker_deaths']} worker deaths survived ({run['dispatches']} dispatches)")
    for line in format_quality(manifest.get("extra", {}).get("quality", {})):
        click.echo(line)
