"""`imaginarium cache ...` (export, import, stats) and `imaginarium tools call`.

Thin shells over the functions of cache.py and executor.py. `call` is attached to the `tools`
group in schemas/cli.py; the heavy backend imports happen only in simulate mode.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from imaginarium.errors import InputError
from imaginarium.executor.cache import ResponseCache, export_cache, import_cache
from imaginarium.executor.executor import MODES, Executor
from imaginarium.executor.http import ApiKey, HttpExecutor
from imaginarium.executor.observation import DEFAULT_MAX_CHARS, Observation
from imaginarium.schemas.toolspec import read_tools


def call_tool(
    tools_file: str | Path,
    name: str,
    arguments: str,
    cache: str | Path | None = None,
    mode: str = "replay",
    max_chars: int = DEFAULT_MAX_CHARS,
    timeout_s: float = 10.0,
    api_keys: tuple[str, ...] = (),
    server_url: str | None = None,
    cache_errors: bool = False,
    backend: str = "transformers",
    model: str | None = None,
) -> Observation:
    """Run one call of tool `name` with `arguments` (JSON text) and return its observation."""
    tools = read_tools(tools_file)
    simulator = None
    if mode == "simulate":
        if model is None:
            raise InputError("--mode simulate needs --model (and optionally --backend)")
        from imaginarium.executor.simulate import Simulator
        from imaginarium.generators.backends import make_backend

        simulator = Simulator(make_backend(backend, model))
    http = HttpExecutor(timeout_s=timeout_s, api_keys=tuple(ApiKey.parse(k) for k in api_keys), server_url=server_url)
    response_cache = ResponseCache(cache) if cache is not None else None
    try:
        executor = Executor(tools, response_cache, mode, http=http, simulator=simulator, max_chars=max_chars,
                            cache_errors=cache_errors, python_timeout_s=timeout_s)
        return executor.execute({"name": name, "arguments": arguments})
    finally:
        if response_cache is not None:
            response_cache.close()


@click.command("call")
@click.argument("tools_file", metavar="TOOLS", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("name")
@click.argument("arguments", metavar="ARGS_JSON", default="{}")
@click.option("--cache", type=click.Path(dir_okay=False, path_type=Path), help="Response cache file (SQLite).")
@click.option("--mode", type=click.Choice(MODES), default="replay", show_default=True,
              help="replay: cache only; record: run live and fill the cache; simulate: an LLM writes misses.")
@click.option("--max-chars", type=int, default=DEFAULT_MAX_CHARS, show_default=True,
              help="Longest observation content; longer is cut with a visible marker.")
@click.option("--timeout", "timeout_s", type=float, default=10.0, show_default=True, help="Seconds per live call.")
@click.option("--api-key", "api_keys", multiple=True, metavar="[GLOB@]header:NAME=ENV",
              help="Send the key in environment variable ENV as header (or query:) NAME to matching tools. Repeatable.")
@click.option("--server-url", help="Send HTTP tools' requests to this server instead of their own (e.g. a local mock).")
@click.option("--cache-errors", is_flag=True, help="Also cache real error responses (HTTP 4xx/5xx, tool exceptions).")
@click.option("--backend", default="transformers", show_default=True, help="Simulate mode: backend name.")
@click.option("--model", help="Simulate mode: model path or name ('tiny' for the embedded tiny model).")
def call_command(tools_file: Path, name: str, arguments: str, cache: Path | None, mode: str, max_chars: int,
                 timeout_s: float, api_keys: tuple[str, ...], server_url: str | None, cache_errors: bool,
                 backend: str, model: str | None) -> None:
    """Call tool NAME of the tools file TOOLS with ARGS_JSON and print the observation as JSON.

    Bad arguments, cache misses in replay mode and failing tools are printed as error
    observations (exit 0): they are results, not crashes. Python tools (built-ins) run in
    every mode.

    \b
    Example:
      imaginarium tools call out/tools.jsonl add_date '{"date": "2024-02-27", "days": 3}'
      imaginarium tools call out/tools.jsonl get_weather '{"city": "Oslo"}' --cache cache.sqlite
    """
    observation = call_tool(tools_file, name, arguments, cache, mode, max_chars, timeout_s, api_keys, server_url,
                            cache_errors, backend, model)
    click.echo(json.dumps(observation.to_dict(), ensure_ascii=False, indent=2))


@click.group()
def cache() -> None:
    """Export, import and inspect response caches (SQLite files of tool responses)."""


@cache.command("export")
@click.argument("cache_file", metavar="CACHE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write (parquet shards + manifest.json).")
def export_command(cache_file: Path, output: Path) -> None:
    """Export every entry of CACHE to a parquet directory that a release can ship.

    \b
    Example:
      imaginarium cache export out/cache.sqlite -o release/cache
    """
    manifest = export_cache(cache_file, output)
    click.echo(f"exported {manifest['counts']['rows']} entries to {output}")


@cache.command("import")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--into", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Cache file to add the entries to (created if absent).")
def import_command(source: Path, into: Path) -> None:
    """Add the entries of SOURCE (an exported directory, or a JSON Lines file) to a cache.

    A real response replaces a simulated one for the same call, never the reverse.

    \b
    Example:
      imaginarium cache import release/cache --into out/cache.sqlite
    """
    count = import_cache(source, into)
    click.echo(f"imported {count} entries into {into}")


@cache.command("stats")
@click.argument("cache_file", metavar="CACHE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def stats_command(cache_file: Path, as_json: bool) -> None:
    """Show the number of entries per tool and source (real, simulated) in CACHE."""
    with ResponseCache(cache_file, create=False, readonly=True) as response_cache:
        stats = response_cache.stats()
    if as_json:
        click.echo(json.dumps(stats, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("tool", "real", "simulated", title=f"{cache_file}: {sum(sum(s.values()) for s in stats.values())} entries")
    for tool, by_source in stats.items():
        table.add_row(tool, str(by_source["real"]), str(by_source["simulated"]))
    Console().print(table)
