"""`imaginarium rank`: parse the options into a RankConfig, run `rank`, print the statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from imaginarium.options import PATH, cli_options, out_option, parse_cli
from imaginarium.trice.rank import RankConfig


def stats_lines(stats: dict[str, dict[str, Any]]) -> list[str]:
    """The per-task statistics as lines for a person."""
    lines = []
    for task, s in stats.items():
        per = s["candidates_per_question"]
        lines.append(f"{task}: {s['questions']} questions, {per['mean']:g} candidates each "
                     f"(min {per['min']}, max {per['max']}), "
                     f"{s['share_with_preference_signal']:.0%} with a better and a worse candidate")
        lines.append("  scores: " + ", ".join(f"{k}: {v}" for k, v in s["score_distribution"].items()))
    return lines


@click.command("rank")
@click.argument("questions", type=PATH)
@out_option("Directory to write: ranking/, preference/, sft/ (and preference_text/) stage directories.")
@cli_options(RankConfig, exclude=("temperature",))
def rank_command(questions: Path, out: Path, **params: Any) -> None:
    """Rank K executed candidates per question against the gold (TRICE) and write SFT and preference data.

    QUESTIONS: a JSONL file (or stage directory) of {id, question, answer, task: qa|math|call,
    tools, call}, or a stage directory of STE episode trials (successful ones become questions).

    \b
    Example:
      imaginarium rank tests/data/trice_math.jsonl -o runs/trice --candidates 4 --model tiny \\
          --render-with tiny
    """
    from imaginarium.trice.rank import rank

    manifests = rank(questions, out, parse_cli(RankConfig, params))
    ranking = manifests["ranking"]
    click.echo(f"{ranking['counts']['rows']} questions, {ranking['counts']['candidates']} candidates -> "
               f"{out}/ranking")
    for line in stats_lines(ranking.get("extra", {}).get("stats", {})):
        click.echo(line)
    click.echo(f"{manifests['preference']['counts']['rows']} preference pairs, "
               f"{manifests['sft']['counts']['rows']} SFT rows")
