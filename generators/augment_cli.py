"""`imaginarium augment`: parse the options into an AugmentConfig, run `augment`, print the counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from imaginarium.generators.augment import AugmentConfig
from imaginarium.options import PATH, cli_options, out_option, parse_cli


@click.command("augment")
@click.argument("trials", type=PATH)
@out_option("Stage directory to write.")
@cli_options(AugmentConfig)
def augment_command(trials: Path, out: Path, **params: Any) -> None:
    """Paraphrase kept queries up to a target per API, then dedupe again.

    Paraphrases per query = min(round(target / kept) - 1, max-paraphrases), as in STE; each
    paraphrase copies its seed's calls, observations and answer and records `paraphrase_of`.

    \b
    Example:
      imaginarium augment runs/filtered -o runs/augmented --target-per-api 150 --max-paraphrases 6
    """
    from imaginarium.generators.augment import augment

    counts = augment(trials, out, parse_cli(AugmentConfig, params))["counts"]
    click.echo(f"augment: {counts['seeds']} seeds + {counts['paraphrases_kept']} paraphrases kept "
               f"({counts['paraphrases_generated']} generated, {counts['duplicates_dropped']} duplicates dropped)")
