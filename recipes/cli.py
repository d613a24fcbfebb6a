"""`imaginarium run RECIPE`: the recipe runner as a command."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("run")
@click.argument("recipe")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory (default: runs/<recipe name>).")
@click.option("--no-progress", is_flag=True, help="No progress bars (for logs and CI).")
def run_command(recipe: str, out: Path | None, no_progress: bool) -> None:
    """Run the stages of RECIPE (a YAML file, or a packaged recipe name such as `quickstart`).

    Stages whose inputs and settings are unchanged are skipped; an interrupted stage resumes.

    \b
    Example:
      imaginarium run recipes/quickstart.yaml -o runs/quickstart
    """
    from imaginarium.recipes.runner import find_recipe, load_recipe, run_recipe
    from imaginarium.recipes.summary import summary_lines

    outputs = run_recipe(recipe, out, progress=not no_progress, echo=click.echo)
    kinds = {stage["name"]: stage["uses"] for stage in load_recipe(find_recipe(recipe))["stages"]}
    for line in summary_lines(outputs, kinds):
        click.echo(line)
