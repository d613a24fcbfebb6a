"""`imaginarium eval` and `imaginarium predict`: parse the options, call evaluate() / predict(), print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from imaginarium.evaluation.evaluate import EvalConfig
from imaginarium.evaluation.predict import PredictConfig
from imaginarium.options import PATH, cli_options, out_option, parse_cli


@click.command("eval")
@click.argument("predictions", type=PATH)
@cli_options(EvalConfig)
@click.option("--by", type=click.Choice(["api", "batch"]), default="api", show_default=True,
              help="Breakdown shown in the table (both are in --json when --batches is given).")
@click.option("--ground/--no-ground", default=None,
              help="Map unknown API names to the closest known one (default: on for ste-paper only).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@out_option("Write one JSON line per item: parse, match, reason.", directory=False, required=False)
def eval_command(predictions: Path, by: str, ground: bool | None, as_json: bool, out: Path | None, **params: Any) -> None:
    """Score PREDICTIONS: well-formed %, API match %, correct %, overall and per API or batch.

    Outputs are parsed from the raw model text (ReAct, OpenAI tool_calls or JSON calls), never
    from cached verdicts. Items that need an LLM judge (--args-match judge, or ste-paper items
    with no stored judgment) are judged by the --judge-* model. Example, the STE paper's protocol
    on its published results:

        imaginarium eval mistral_FT.json --format ste --args-match ste-paper --json
    """
    from imaginarium.evaluation.evaluate import evaluate

    config = parse_cli(EvalConfig, {**params, "ground": ground})
    if by == "batch" and not config.batches:
        raise click.UsageError("--by batch needs --batches FILE")
    report = evaluate(predictions, config, out=out)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        _print_table(report, by)


def _print_table(report: dict, by: str) -> None:
    from rich.console import Console
    from rich.table import Table

    key = "by_batch" if by == "batch" else "by_api"
    table = Table(title=f"{report['counts']['items']} items, arguments: {report['args_match']}")
    for column in (by.upper() if by == "api" else "batch", "items", "well-formed %", "API match %", "correct %"):
        table.add_column(column, justify="left" if column in ("API", "batch") else "right")
    for name, row in report.get(key, {}).items():
        table.add_row(name, str(row["counts"]["items"]), f"{row['wellformed']:.1f}", f"{row['api_match']:.1f}", f"{row['correct']:.1f}")
    table.add_section()
    table.add_row("overall", str(report["counts"]["items"]), f"{report['wellformed']:.1f}",
                  f"{report['api_match']:.1f}", f"{report['correct']:.1f}", style="bold")
    Console().print(table)


@click.command("predict")
@click.option("--test", "test", required=True, type=PATH,
              help="Test items in the STE shape (tool_test.json, a list, or JSONL).")
@out_option("Predictions file to write (STE shape).", directory=False)
@cli_options(PredictConfig)
def predict_command(test: Path, out: Path, **params: Any) -> None:
    """Generate a predictions file that `imaginarium eval --format ste` scores.

    Each test query is shown its tools and must answer `Action: NAME` / `Action Input: {...}`
    (generation is constrained to that shape). With --demos K, the K training examples whose
    queries are nearest by embedding are shown as demonstrations (the STE paper's ICL setting).
    """
    from imaginarium.evaluation.predict import predict

    summary = predict(test, out, parse_cli(PredictConfig, params))
    click.echo(f"{summary['items']} predictions written to {summary['out']}")
