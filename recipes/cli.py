"""`imaginarium run RECIPE`: the recipe runner as a command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from imaginarium.models.options import GenerationOptions
from imaginarium.options import PATH, check_values, cli_options


@click.command("run")
@click.argument("recipe")
@click.option("-o", "--out", type=PATH,
              help="Run directory (default: runs/<recipe name>).")
@click.option("--no-progress", is_flag=True, help="No progress bars (for logs and CI).")
@cli_options(GenerationOptions, show_defaults=False)
def run_command(recipe: str, out: Path | None, no_progress: bool, **params: Any) -> None:
    """Run the stages of RECIPE (a YAML file, or a packaged recipe name such as `quickstart`).

    Stages whose inputs and settings are unchanged are skipped; an interrupted stage resumes.
    Generation options given here (--model, --backend, --base-url, ...) override the recipe's
    `generation:` block for every stage that generates.

    \b
    Example:
      imaginarium run recipes/quickstart.yaml -o runs/quickstart
      imaginarium run quickstart --backend openai --base-url http://127.0.0.1:8000/v1 --model my-model
    """
    from imaginarium.recipes.runner import find_recipe, load_recipe, run_recipe
    from imaginarium.recipes.summary import summary_lines

    given = {name: value for name, value in params.items() if value not in (None, ())}
    check_values(GenerationOptions, given)
    outputs = run_recipe(recipe, out, generation=given, progress=not no_progress, echo=click.echo)
    kinds = {stage["name"]: stage["uses"] for stage in load_recipe(find_recipe(recipe))["stages"]}
    for line in summary_lines(outputs, kinds):
        click.echo(line)
