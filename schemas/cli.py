"""`imaginarium tools ...`: import tool descriptions into tools.jsonl, validate it, look inside.

Thin shells over `validate_tools` and `read_tools` (`tools import` and `tools call` are in the
executor layer); bad input raises InputError, which the top-level CLI prints as one line (exit 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from imaginarium.cli import LazyGroup
from imaginarium.errors import InputError
from imaginarium.options import PATH
from imaginarium.schemas.toolspec import ToolSpec, read_tools

DECODER = "outlines_core"
_DESCRIPTION_WIDTH = 60


# `tools import` (it lists live MCP servers) and `tools call` live with the executor, a layer
# above: named here, imported only when used.
@click.group(cls=LazyGroup, lazy_commands={"import": "imaginarium.executor.tools_import:import_command",
                                           "call": "imaginarium.executor.cli:call_command"})
def tools() -> None:
    """Import, validate and inspect tool descriptions (tools.jsonl, one ToolSpec per line).

    \b
    Example:
      imaginarium tools import functions.json -o tools.jsonl
      imaginarium tools validate tools.jsonl
      imaginarium tools show tools.jsonl get_current_weather
    """


@tools.command("validate")
@click.argument("file", type=PATH)
def validate_command(file: Path) -> None:
    """Check a tools.jsonl file: every line a valid ToolSpec, every parameters schema valid
    under JSON Schema Draft 2020-12, names unique.

    Also lists, per tool, the schema keywords the constrained decoder (outlines_core) will not
    enforce while generating calls; those are warnings, not failures (exit 0). An invalid file
    exits with 2, naming the line at fault.

    \b
    Example:
      imaginarium tools validate out/tools.jsonl
    """
    loaded, unenforced = validate_tools(file)
    for name, keywords in unenforced.items():
        for keyword in keywords:
            click.echo(f"warning: {name} {keyword}")
    click.echo(f"{file}: {len(loaded)} tools valid")


def validate_tools(file: str | Path) -> tuple[list[ToolSpec], dict[str, list[str]]]:
    """The tools of `file` (read_tools validates each line, schemas included) and, per tool
    name, the parameter keywords the constrained decoder will not enforce (only tools with any),
    as `unenforced_keywords` words them: "/properties/days: minimum (why)"."""
    loaded = read_tools(file)
    from imaginarium.schemas.constraints import unenforced_keywords

    unenforced = {}
    for tool in loaded:
        keywords = unenforced_keywords(tool.parameters, decoder=DECODER)
        if keywords:
            unenforced[tool.name] = keywords
    return loaded, unenforced


@tools.command("show")
@click.argument("file", type=PATH)
@click.argument("name", required=False)
def show_command(file: Path, name: str | None) -> None:
    """Show the tools of a tools.jsonl file as a table, or one tool in full.

    Without NAME: one row per tool (name, source name, number of parameters, required
    parameters, description). With NAME (the tool's name or its source name): the whole
    ToolSpec as JSON.

    \b
    Example:
      imaginarium tools show out/tools.jsonl
      imaginarium tools show out/tools.jsonl "BART%%Advisory information"
    """
    from rich.console import Console

    loaded = read_tools(file)
    console = Console()
    if name is None:
        console.print(tools_table(loaded))
        return
    tool = find_tool(loaded, name, file)
    click.echo(json.dumps(tool.model_dump(mode="json", exclude_none=True), indent=2, ensure_ascii=False))


def find_tool(loaded: list[ToolSpec], name: str, file: str | Path) -> ToolSpec:
    for tool in loaded:
        if name in (tool.name, tool.source_name):
            return tool
    raise InputError(f"no tool named {name!r}", where=str(file))


def tools_table(loaded: list[ToolSpec]):
    """A rich Table with one row per tool."""
    from rich.table import Column, Table

    table = Table(
        Column("name", overflow="fold"),
        Column("source name", overflow="fold"),
        Column("#params", justify="right"),
        "required",
        "description",
        title=f"{len(loaded)} tools",
    )
    for tool in loaded:
        description = " ".join(tool.description.split())
        if len(description) > _DESCRIPTION_WIDTH:
            description = description[: _DESCRIPTION_WIDTH - 1] + "…"
        table.add_row(
            tool.name,
            tool.source_name,
            str(len(tool.parameters.get("properties", {}))),
            ", ".join(tool.parameters.get("required", [])),
            description,
        )
    return table

