"""`imaginarium tools import`: tool descriptions from files and from live MCP servers -> tools.jsonl.

Files are read by the importers (schemas/importers); live MCP servers are asked for their
`tools/list` through the executor's MCP client, which is why this module sits in the executor
layer. A tool imported from a server keeps its binding (server name, transport, command and args
or URL, and the *names* of the environment variables and headers it needs, never their values),
so `explore --cache-mode record` and `tools call` can run it later.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import click
from pydantic import Field, field_validator

from imaginarium.errors import InputError
from imaginarium.options import PATH, Options, cli_options, named_list, out_option, parse_cli
from imaginarium.schemas.importers import FORMATS, FormatName, import_files
from imaginarium.schemas.importers.base import Skipped, bare_message, where
from imaginarium.schemas.importers.mcp import McpServer, command_server, load, read_servers, url_server
from imaginarium.schemas.toolspec import ToolSpec, write_tools

NonEmpty = Annotated[str, Field(min_length=1)]


class NothingImported(InputError):
    """No tool survived: `skipped` says why for each (the command prints them all)."""

    def __init__(self, message: str, *, where: str | None = None, skipped: list[Skipped] | None = None):
        super().__init__(message, where=where)
        self.skipped = skipped or []


class ImportConfig(Options):
    """How `tools import` reads its sources: the format of files, and which live MCP servers to list."""

    format: Literal["auto"] | FormatName = Field(
        "auto", description="Input format of the files; auto picks the first that fits, trying " + ", ".join(FORMATS) + ".")
    skip_invalid: bool = Field(False, description="Skip broken files and tools (each reported) instead of failing.")
    mcp_config: Path | None = Field(None, description=(
        'An mcpServers JSON file ({"mcpServers": {name: {"command", "args", "env"} | {"url", "headers"}}}): list the '
        "tools of its servers (all, or those named with --mcp-server)."))
    mcp_server: list[NonEmpty] = Field(default_factory=list, json_schema_extra={"metavar": "NAME,..."},
                                  description="The servers of --mcp-config to import (default: all).")
    mcp_command: list[NonEmpty] = Field(default_factory=list, json_schema_extra={"multiple": True, "metavar": '"CMD ARGS"'},
                                   description="A stdio MCP server to start and list, as one command line. Repeatable.")
    mcp_url: list[Annotated[str, Field(pattern=r"^https?://\S+$")]] = Field(
        default_factory=list, json_schema_extra={"multiple": True, "metavar": "URL"},
                               description="A streamable-HTTP MCP server to list (its endpoint, e.g. http://host/mcp). "
                                           "Repeatable.")
    mcp_start_timeout: float = Field(30.0, gt=0, le=3600, json_schema_extra={"fingerprint": False},
                                     description="Seconds an MCP server may take to start and answer.")
    allow_empty: bool = Field(False, description=(
        "Keep tools with neither a description nor parameters (normally a sign of an unresolved "
        "reference or a broken source)."))
    allow_python_import: bool = Field(False, description=(
        "Let a Python tool listing import the modules it names. This RUNS their code; only for listings you "
        "trust. The package's own built-ins need no permission."))

    _lists = field_validator("mcp_server", mode="before")(named_list)

    def servers(self) -> list[McpServer]:
        """The live servers these options name, in order (config entries, commands, URLs).

        Raises:
            InputError: a bad servers file, or a --mcp-server name it does not have.
        """
        chosen: list[McpServer] = []
        if self.mcp_config is not None:
            entries = read_servers(self.mcp_config)
            unknown = [name for name in self.mcp_server if name not in entries]
            if unknown:
                raise InputError(f"no MCP server named {unknown[0]!r} (the file has: {', '.join(entries) or 'none'})",
                                 where=str(self.mcp_config))
            chosen += [entries[name] for name in (self.mcp_server or list(entries))]
        elif self.mcp_server:
            raise InputError("--mcp-server names servers of --mcp-config; give the file too")
        chosen += [command_server(command) for command in self.mcp_command]
        chosen += [url_server(url) for url in self.mcp_url]
        names = collections.Counter(server.binding.server for server in chosen)
        twice = [name for name, count in names.items() if count > 1]
        if twice:
            raise InputError(f"two MCP servers named {twice[0]!r}: give them distinct names in an mcpServers file")
        return chosen


def list_server_tools(server: McpServer, clients: Any) -> list[ToolSpec]:
    """The tools of one live server, each bound to it.

    Raises:
        InputError: the server did not start or answered no valid listing, or a tool of it is
            broken; the message names the server and the tool.
    """
    name = server.binding.server
    raw = clients.list_tools(server)
    source = f"mcp-server:{name}"
    tools = []
    for index, entry in enumerate(raw):
        tool_name = entry.get("name") if isinstance(entry, dict) else None
        try:
            tools += load({"tools": [entry]}, source, binding=server.binding)
        except InputError as exc:
            label = f"tool {tool_name!r}" if isinstance(tool_name, str) else f"tool #{index}"
            raise InputError(f"MCP server {name!r}, {label}: {bare_message(exc)}") from None
    for index, tool in enumerate(tools):
        tool.source.pointer = f"/tools/{index}"
    return tools


def import_tools(sources: Iterable[str | Path], out: str | Path, config: ImportConfig | None = None, *,
                 warnings: list[Skipped] | None = None) -> tuple[list[ToolSpec], list[Skipped]]:
    """Import tool descriptions from files and live MCP servers into the tools file `out`.

    Args:
        sources: JSON or YAML files (OpenAI functions, OpenAPI 3, ToolBench/RapidAPI, MCP
            tools/list results, Python tool listings); may be empty when servers are given.
        out: the tools.jsonl to write, atomically, only when every tool is well (or
            `skip_invalid` is set).
        config: the format, whether to skip broken tools, and the MCP servers to list.
        warnings: a list that receives (where, why) for what was dropped without dropping a
            tool (a broken response schema).

    Returns:
        The tools written and the skipped ones as (where, why).

    Raises:
        InputError: a missing, unreadable or malformed source (naming the file and pointer), a
            server that does not start or lists a broken tool (naming the server and tool), two
            tools with one name, or nothing to write.

    Example:
        >>> from imaginarium import import_tools, ImportConfig
        >>> tools, skipped = import_tools(["openapi.yaml"], "tools.jsonl")
        >>> tools, _ = import_tools([], "mcp.jsonl", ImportConfig(mcp_config="servers.json"))
    """
    config = config or ImportConfig()
    sources = list(sources)
    if any(Path(source).resolve() == Path(out).resolve() for source in sources):
        raise InputError("the output is one of the inputs; write the tools file elsewhere", where=str(out))
    servers = config.servers()
    if not sources and not servers:
        raise InputError("nothing to import: give SOURCES, --mcp-config, --mcp-command or --mcp-url")
    tools, skipped = (import_files(sources, config.format, config.skip_invalid, warnings=warnings,
                                   allow_python_import=config.allow_python_import) if sources else ([], []))
    if servers:
        from imaginarium.executor.mcp import McpClients

        seen = {tool.name: where(tool.source.file or "", tool.source.pointer) for tool in tools}
        with McpClients(start_timeout_s=config.mcp_start_timeout, timeout_s=config.mcp_start_timeout) as clients:
            for server in servers:
                try:
                    found = list_server_tools(server, clients)
                except InputError as exc:
                    if not config.skip_invalid:
                        raise
                    skipped.append((f"mcp-server:{server.binding.server}", bare_message(exc)))
                    continue
                for tool in found:
                    if tool.name in seen:
                        problem = (f"MCP server {server.binding.server!r}: duplicate tool name {tool.name!r} "
                                   f"(also at {seen[tool.name]})")
                        if not config.skip_invalid:
                            raise InputError(problem)
                        skipped.append((f"mcp-server:{server.binding.server}", problem))
                        continue
                    seen[tool.name] = where(tool.source.file or "", tool.source.pointer)
                    tools.append(tool)
    if not config.allow_empty:
        tools = _without_empty(tools, skipped if config.skip_invalid else None)
    if not tools:
        reason = f" ({len(skipped)} skipped; the first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise NothingImported(f"no tools to write{reason}", where=str(out), skipped=skipped)
    write_tools(out, tools)
    return tools, skipped


def _without_empty(tools: list[ToolSpec], skipped: list[Skipped] | None) -> list[ToolSpec]:
    """The tools that say something: an empty one (no description, no parameters) raises, or is
    recorded in `skipped` when given."""
    kept = []
    for tool in tools:
        if tool.description.strip() or tool.parameters.get("properties"):
            kept.append(tool)
            continue
        problem = InputError(f"tool {tool.source_name!r} has neither a description nor parameters (an unresolved "
                             "reference? --allow-empty keeps it)", where=where(tool.source.file or "", tool.source.pointer))
        if skipped is None:
            raise problem
        skipped.append((problem.where or "", bare_message(problem)))
    return kept


@click.command("import")
@click.argument("sources", nargs=-1, type=PATH)
@out_option("tools.jsonl to write.", directory=False)
@cli_options(ImportConfig)
def import_command(sources: tuple[Path, ...], out: Path, **params: Any) -> None:
    """Import tool descriptions from SOURCES (JSON or YAML files) and live MCP servers into one tools.jsonl.

    Formats: OpenAI function/tool lists, OpenAPI 3 documents, ToolBench/RapidAPI API
    descriptions (STE's API_descriptions.json, BMTools entries, ToolBench per-tool files) and
    MCP tools/list results. Live MCP servers: an mcpServers file (--mcp-config), a command
    (--mcp-command, stdio) or a URL (--mcp-url, streamable HTTP); their tools keep how to reach
    the server, so `explore --cache-mode record` can call them. Any broken input fails the whole
    import (exit 2, no output file) unless --skip-invalid.

    \b
    Example:
      imaginarium tools import functions.json petstore.yaml -o out/tools.jsonl
      imaginarium tools import API_descriptions.json --format toolbench -o tools.jsonl
      imaginarium tools import --mcp-config servers.json -o mcp.jsonl
      imaginarium tools import --mcp-command "mcp-server-time --local-timezone UTC" -o time.jsonl
    """
    warnings: list[Skipped] = []
    try:
        written, skipped = import_tools(sources, out, parse_cli(ImportConfig, params), warnings=warnings)
    except NothingImported as exc:
        for place, why in exc.skipped:
            click.echo(f"skipped {place}: {why}", err=True)
        raise
    for place, why in warnings:
        click.echo(f"warning: {place}: {why}", err=True)
    for place, why in skipped:
        click.echo(f"skipped {place}: {why}", err=True)
    per_source = collections.Counter(tool.source.file for tool in written)
    for path in sources:
        click.echo(f"{per_source.pop(str(path), 0):6d} tools  {path}")
    for server, count in per_source.items():
        click.echo(f"{count:6d} tools  {server}")
    summary = f"wrote {len(written)} tools to {out}"
    notes = [f"{len(skipped)} skipped"] * bool(skipped) + [f"{len(warnings)} warnings"] * bool(warnings)
    click.echo(summary + (f" ({', '.join(notes)})" if notes else ""))
