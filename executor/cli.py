"""`imaginarium cache ...` (export, import, stats) and `imaginarium tools call`.

Thin shells over the functions of cache.py and executor.py. `call` is attached to the `tools`
group in schemas/cli.py; the heavy backend imports happen only in simulate mode.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from pydantic import Field

from imaginarium.executor.cache import ResponseCache, export_cache, import_entries
from imaginarium.executor.executor import MODES
from imaginarium.executor.observation import Observation
from imaginarium.executor.options import ExecutionOptions
from imaginarium.models.options import GenerationOptions
from imaginarium.options import PATH, Options, cli_options, out_option, parse_cli
from imaginarium.schemas.toolspec import read_tools


class CallConfig(Options):
    """How `tools call` runs one call: the execution options, and a model for simulate mode."""

    generation: GenerationOptions = Field(default_factory=GenerationOptions)
    execution: ExecutionOptions = Field(default_factory=ExecutionOptions)


def call_tool(tools_file: str | Path, name: str, arguments: str, config: CallConfig | None = None) -> Observation:
    """Run one call of tool `name` with `arguments` (JSON text) and return its observation.

    Raises:
        InputError: a missing or broken tools file, a corrupt cache.
    """
    from imaginarium.executor.options import open_executor
    from imaginarium.models.options import open_backend

    config = config or CallConfig()
    tools = read_tools(tools_file)
    used = [tool.name for tool in tools if name in (tool.name, tool.source_name)] or [name]
    with open_executor(tools, config.execution, simulator_backend=lambda: open_backend(config.generation),
                       used=used) as executor:
        return executor.execute({"name": name, "arguments": arguments})


@click.command("call")
@click.argument("tools_file", metavar="TOOLS", type=PATH)
@click.argument("name")
@click.argument("arguments", metavar="ARGS_JSON", default="{}")
@cli_options(CallConfig)
@click.option("--mode", "mode", type=click.Choice(MODES), hidden=True, help="The same as --cache-mode.")
def call_command(tools_file: Path, name: str, arguments: str, mode: str | None, **params: Any) -> None:
    """Call tool NAME of the tools file TOOLS with ARGS_JSON and print the observation as JSON.

    Bad arguments, cache misses in replay mode and failing tools are printed as error
    observations (exit 0): they are results, not crashes. Python tools (built-ins) run in
    every mode; in simulate mode the --model writes the responses of the others.

    \b
    Example:
      imaginarium tools call out/tools.jsonl add_date '{"date": "2024-02-27", "days": 3}'
      imaginarium tools call out/tools.jsonl get_weather '{"city": "Oslo"}' --cache cache.sqlite
    """
    if mode is not None:
        params["cache_mode"] = mode
    observation = call_tool(tools_file, name, arguments, parse_cli(CallConfig, params))
    click.echo(json.dumps(observation.to_dict(), ensure_ascii=False, indent=2))


@click.group()
def cache() -> None:
    """Export, import and inspect response caches (SQLite files of tool responses)."""


@cache.command("export")
@click.argument("cache_file", metavar="CACHE", type=PATH)
@out_option("Directory to write (parquet shards + manifest.json).")
def export_command(cache_file: Path, out: Path) -> None:
    """Export every entry of CACHE to a parquet directory that a release can ship.

    \b
    Example:
      imaginarium cache export out/cache.sqlite -o release/cache
    """
    manifest = export_cache(cache_file, out)
    click.echo(f"exported {manifest['counts']['rows']} entries to {out}")


@cache.command("import")
@click.argument("source", type=PATH)
@click.option("-o", "--out", "--into", "into", required=True, type=PATH,
              help="Cache file to add the entries to (created if absent).")
def import_command(source: Path, into: Path) -> None:
    """Add the entries of SOURCE (an exported directory, or a JSON Lines file) to a cache.

    A real response replaces a simulated one for the same call, never the reverse. A corrupt
    row is skipped and counted; if every row is corrupt, nothing is written (exit 2).

    \b
    Example:
      imaginarium cache import release/cache --into out/cache.sqlite
    """
    report = import_entries(source, into)
    line = f"imported {report.imported} entries into {into}"
    if report.skipped:
        line += f", skipped {report.skipped} corrupt {'row' if report.skipped == 1 else 'rows'} " \
                f"(first: {report.first_skipped})"
    click.echo(line)


@cache.command("stats")
@click.argument("cache_file", metavar="CACHE", type=PATH)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def stats_command(cache_file: Path, as_json: bool) -> None:
    """Show the number of entries per tool and source (real, simulated) in CACHE.

    Corrupt rows are left out, and counted in a warning on stderr.
    """
    with ResponseCache(cache_file, create=False, readonly=True) as response_cache:
        stats = response_cache.stats()
        skipped, first = response_cache.corrupt_rows, response_cache.first_corrupt
    if skipped:  # on stderr: --json output stays JSON
        click.echo(f"warning: skipped {skipped} corrupt {'row' if skipped == 1 else 'rows'} (first: {first})", err=True)
    if as_json:
        click.echo(json.dumps(stats, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("tool", "real", "simulated", title=f"{cache_file}: {sum(sum(s.values()) for s in stats.values())} entries")
    for tool, by_source in stats.items():
        table.add_row(tool, str(by_source["real"]), str(by_source["simulated"]))
    Console().print(table)
