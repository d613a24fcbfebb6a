"""`imaginarium train render | check | run`: Axolotl configs pinned to a release, proven by Axolotl."""

from __future__ import annotations

import json
import sys

import click

from imaginarium.axolotl_configs.render import TEMPLATES
from imaginarium.options import PATH, TEXT


@click.group()
def train() -> None:
    """Fine-tune with Axolotl on a release: render a config, check it with Axolotl, run it.

    `check` and `run` need the Axolotl environment (`make axolotl-env`), a separate virtualenv
    that imaginarium reaches only through subprocesses.
    """


@train.command("render")
@click.option("--dataset", type=TEXT, required=True, help="OWNER/NAME@vX.Y.Z (a published release) or a release directory.")
@click.option("--template", required=True, type=click.Choice(TEMPLATES), help="Which recipe.")
@click.option("--base-model", type=TEXT, required=True, help="Model id or local path to fine-tune.")
@click.option("--config", "configs", type=TEXT, multiple=True,
              help="The release's config to train on (default: sft; preference_text for dpo). "
                   "continual: one per round, in order.")
@click.option("--chat-template", type=TEXT, default=None,
              help="Named Axolotl template that renders tools, or a .jinja file (default: the base model's own).")
@click.option("--set", "overrides", type=TEXT, multiple=True, metavar="KEY=VALUE", help="Override a setting (value read as YAML).")
@click.option("--cpu", is_flag=True, help="Settings Axolotl needs on CPU: no fp16/bf16/tf32, no Triton LoRA kernels.")
@click.option("-o", "--out", "output", required=True, type=PATH,
              help="The YAML file to write (continual: a directory for round-K.yml).")
def render_command(dataset, template, base_model, configs, chat_template, overrides, cpu, output) -> None:
    """Render an Axolotl config pinned to one release of the dataset."""
    from imaginarium.axolotl_configs.render import header, render_config, render_continual, write_config

    if template == "continual":
        for path in render_continual(dataset, base_model, configs, output, chat_template=chat_template,
                                     overrides=overrides, cpu=cpu):
            click.echo(path)
        return
    if len(configs) > 1:
        raise click.UsageError("--config once, except for the continual template")
    config = render_config(dataset, template, base_model, config=configs[0] if configs else None,
                           chat_template=chat_template, overrides=overrides, cpu=cpu)
    click.echo(write_config(config, output, header(dataset, template)))


@train.command("check")
@click.argument("config", type=PATH)
@click.option("--rows", type=click.IntRange(min=0), default=8, show_default=True, help="Rows to preprocess and check (0: validation only).")
@click.option("--env", "env_dir", type=PATH, default=None,
              help="The Axolotl virtualenv (default: $IMAGINARIUM_AXOLOTL_ENV or .venv-axolotl).")
@click.option("--log", type=PATH, default=None, help="Keep Axolotl's own output in this file.")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def check_command(config, rows, env_dir, log, as_json) -> None:
    """Validate CONFIG with Axolotl itself, flag unknown keys, preprocess rows and check the masking.

    Exit code 1 when anything is wrong (the report says what, per row).
    """
    from imaginarium.axolotl_configs.check import check_config, summary

    report = check_config(config, rows=rows, env_dir=env_dir, log=log)
    click.echo(json.dumps(report, indent=2) if as_json else "\n".join(summary(report)))
    if not report["ok"]:
        sys.exit(1)


@train.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("config", type=PATH)
@click.option("--dry-run", is_flag=True, help="Print the command instead of running it.")
@click.option("--env", "env_dir", type=PATH, default=None,
              help="The Axolotl virtualenv (default: $IMAGINARIUM_AXOLOTL_ENV or .venv-axolotl).")
@click.argument("axolotl_args", nargs=-1, type=click.UNPROCESSED)
def run_command(config, dry_run, env_dir, axolotl_args) -> None:
    """Launch `axolotl train CONFIG [AXOLOTL_ARGS...]` in the Axolotl environment."""
    from imaginarium.axolotl_configs.run import run_training

    code = run_training(config, env_dir=env_dir, dry_run=dry_run, extra_args=axolotl_args)
    if code:
        sys.exit(code)
