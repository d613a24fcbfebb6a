"""The `imaginarium` command line: a click group whose commands live beside their code.

Each command is a thin shell over a Python function with the same parameters. Commands are
loaded lazily (name -> "module:attribute") so that `imaginarium --help` and light commands do
not pay for importing torch or transformers. Command modules keep heavy imports inside
functions for the same reason.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from imaginarium import __version__
from imaginarium.errors import InputError

# Command name -> "module:attribute". Add a line here to add a command.
COMMANDS = {
    "eval": "imaginarium.evaluation.cli:eval_command",
    "predict": "imaginarium.evaluation.cli:predict_command",
    "tools": "imaginarium.schemas.cli:tools",
    "explore": "imaginarium.generators.explore_cli:explore_command",
    "rank": "imaginarium.trice.cli:rank_command",
    "run": "imaginarium.recipes.cli:run_command",
    "filter": "imaginarium.filters.cli:filter_command",
    "augment": "imaginarium.generators.augment_cli:augment_command",
    "build": "imaginarium.builders.cli:build",
    "cache": "imaginarium.executor.cli:cache",
    "model": "imaginarium.models.cli:model",
    "generate": "imaginarium.models.cli:generate",
    "release": "imaginarium.hub_cards.cli:release",
    "publish": "imaginarium.hub_cards.cli:publish",
    "train": "imaginarium.axolotl_configs.cli:train",
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when the command is used."""

    def __init__(self, *args, lazy_commands: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy_commands:
            module_name, attribute = self.lazy_commands[name].split(":")
            return getattr(importlib.import_module(module_name), attribute)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="imaginarium")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Generate verified tool-use training data offline (STE and TRICE).

    Each command is one stage: it reads files or stage directories and writes a stage
    directory (parquet shards + manifest.json). Re-running a finished stage with the same
    inputs and config does nothing; an interrupted stage resumes where it stopped.
    """
    from imaginarium.secrets import LogRedactor

    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # no secret in any log line
        handler.addFilter(LogRedactor())


def main() -> None:
    """Entry point: bad input prints one line naming what is wrong and exits with code 2."""
    try:
        cli.main(standalone_mode=False)
    except InputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.UsageError as exc:  # a bad flag or value: one line, like every user error
        command = exc.ctx.command_path if exc.ctx is not None else "imaginarium"
        click.echo(f"error: {exc.format_message()} (see `{command} --help`)", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
