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
              help="Map unknown API names to the closest known one: the ste-paper protocol only (its default).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@out_option("Write one JSON line per item: parse, match, reason.", directory=False, required=False)
def eval_command(predictions: Path, by: str, ground: bool | None, as_json: bool, out: Path | None, **params: Any) -> None:
    """Score PREDICTIONS: well-formed %, API match %, correct %, overall and per API or batch;
    or, with --format bfcl, a BFCL result file: accuracy per category and BFCL's summary.

    Outputs are parsed from the raw model text (ReAct, OpenAI tool_calls or JSON calls), never
    from cached verdicts. Items that need an LLM judge (--args-match judge, or ste-paper items
    with no stored judgment) are judged by the --judge-* model. Example, the STE paper's protocol
    on its published results:

        imaginarium eval mistral_FT.json --format ste --args-match ste-paper --json

    BFCL's own rules on a BFCL result file (questions and possible answers from --bfcl-data, by
    default the installed bfcl-eval package's data):

        imaginarium eval results.jsonl --format bfcl --args-match bfcl -o items.jsonl
    """
    from imaginarium.evaluation.evaluate import evaluate

    config = parse_cli(EvalConfig, {**params, "ground": ground})
    if by == "batch" and not config.batches:
        raise click.UsageError("--by batch needs --batches FILE")
    report = evaluate(predictions, config, out=out)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    elif report.get("format") == "bfcl":
        _print_bfcl(report)
    else:
        _print_table(report, by)


def _print_bfcl(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    table = Table(title=f"BFCL: {report['items']} items, arguments: bfcl")
    for column in ("category", "items", "correct", "accuracy %"):
        table.add_column(column, justify="left" if column == "category" else "right")
    for name, row in report["by_category"].items():
        table.add_row(name, str(row["items"]), str(row["correct"]), cell(row["accuracy"]))
    table.add_section()
    table.add_row("overall", str(report["items"]), str(report["correct"]), cell(report["accuracy"]), style="bold")
    summary = report["summary"]
    rows = [("non-live AST summary", summary["non_live"]["ast_summary"]), ("non-live simple", summary["non_live"]["simple"]),
            ("live AST summary", summary["live"]["ast_summary"]), ("irrelevance", summary["irrelevance"]),
            ("relevance", summary["relevance"])]
    table.add_section()
    for name, value in rows:
        if value is not None:
            table.add_row(name, "", "", cell(value))
    Console().print(table)


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
@click.option("--test", "test", type=PATH,
              help="Test items in the STE shape (tool_test.json, a list, or JSONL); not with --format bfcl.")
@out_option("Predictions file to write (STE shape, or BFCL result lines with --format bfcl).", directory=False)
@cli_options(PredictConfig)
def predict_command(test: Path | None, out: Path, **params: Any) -> None:
    """Generate a predictions file that `imaginarium eval` scores.

    STE (default): each test query is shown its tools and must answer `Action: NAME` /
    `Action Input: {...}` (generation is constrained to that shape). With --demos K, the K
    training examples whose queries are nearest by embedding are shown as demonstrations (the
    STE paper's ICL setting).

    BFCL (--format bfcl): every item of the chosen categories (--category, --limit per category)
    from --bfcl-data, answered in the constrained JSON act format or the model's native tool
    calls (--call-format), written as BFCL result lines:

        imaginarium predict --format bfcl --category simple_python,irrelevance --limit 20 -o results.jsonl
        imaginarium eval results.jsonl --format bfcl --args-match bfcl
    """
    from imaginarium.evaluation.predict import predict

    config = parse_cli(PredictConfig, params)
    if config.format == "ste" and test is None:
        raise click.UsageError("--test is required (or --format bfcl)")
    if config.format == "bfcl" and test is not None:
        raise click.UsageError("--test is for STE test files; --format bfcl reads --bfcl-data")
    summary = predict(test, out, config)
    click.echo(f"{summary['items']} predictions written to {summary['out']}")
