"""`imaginarium eval` and `imaginarium predict`: thin shells over evaluate() and predict()."""

from __future__ import annotations

import json

import click

from imaginarium.evaluation.evaluate import ARGS_MATCHERS
from imaginarium.evaluation.items import FORMATS


def _judge_backend(backend: str | None, model: str | None):
    if backend is None and model is None:
        return None
    if not (backend and model):
        raise click.UsageError("--judge-backend and --judge-model go together")
    from imaginarium.generators.backends import make_backend

    return make_backend(backend, model)


@click.command("eval")
@click.argument("predictions", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="ste", show_default=True,
              help="ste: the STE results JSON; jsonl: STE-shaped items, one per line; chat: gold + OpenAI message per line.")
@click.option("--args-match", type=click.Choice(ARGS_MATCHERS), default="string", show_default=True,
              help="How arguments are judged correct (ste-paper: the STE paper's protocol).")
@click.option("--by", type=click.Choice(["api", "batch"]), default="api", show_default=True,
              help="Breakdown shown in the table (both are in --json when --batches is given).")
@click.option("--batches", type=click.Path(dir_okay=False), help="Batches of APIs (CL_batches.json's shape) for --by batch.")
@click.option("--tools", type=click.Path(dir_okay=False), help="tools.jsonl whose parameter schemas guide --args-match ast (matched by name or source name).")
@click.option("--ground/--no-ground", default=None,
              help="Map unknown API names to the closest known one (default: on for ste-paper only).")
@click.option("--judge-backend", help="Backend of the LLM judge (transformers | vllm | openai).")
@click.option("--judge-model", help="Model of the LLM judge.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("-o", "--items-out", type=click.Path(dir_okay=False), help="Write one JSON line per item: parse, match, reason.")
def eval_command(predictions, fmt, args_match, by, batches, tools, ground, judge_backend, judge_model, as_json, items_out):
    """Score PREDICTIONS: well-formed %, API match %, correct %, overall and per API or batch.

    Outputs are parsed from the raw model text (ReAct, OpenAI tool_calls or JSON calls), never
    from cached verdicts. Example, the STE paper's protocol on its published results:

        imaginarium eval mistral_FT.json --format ste --args-match ste-paper --json
    """
    from imaginarium.evaluation.evaluate import evaluate

    if by == "batch" and not batches:
        raise click.UsageError("--by batch needs --batches FILE")
    report = evaluate(
        predictions, fmt=fmt, args_match=args_match, batches=batches, tools=tools, ground=ground,
        judge=_judge_backend(judge_backend, judge_model), items_out=items_out,
    )
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
@click.option("--test", "test", required=True, type=click.Path(dir_okay=False),
              help="Test items in the STE shape (tool_test.json, a list, or JSONL).")
@click.option("--backend", required=True, help="transformers | vllm | openai.")
@click.option("--model", required=True, help="Model name or path (`tiny` = the embedded tiny model).")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="Predictions file to write (STE shape).")
@click.option("--demos", type=int, default=0, show_default=True, help="In-context demonstrations per query: the K nearest training examples.")
@click.option("--demo-pool", type=click.Path(dir_okay=False), help="Training examples (STE shape) to retrieve demonstrations from.")
@click.option("--neighbours", type=click.Path(dir_okay=False), help="API -> tools shown (api2neighbors.json's shape); needs --tools.")
@click.option("--tools", type=click.Path(dir_okay=False), help="tools.jsonl describing the tools shown.")
@click.option("--limit", type=int, help="Only the first N test items.")
@click.option("--max-tokens", type=int, default=512, show_default=True)
@click.option("--max-args", type=int, default=8, show_default=True, help="Most arguments the call regex allows.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--embedder", help="Embedding model for --demos (default: the bundled all-MiniLM-L6-v2).")
def predict_command(test, backend, model, out, demos, demo_pool, neighbours, tools, limit, max_tokens, max_args, seed, embedder):
    """Generate a predictions file that `imaginarium eval --format ste` scores.

    Each test query is shown its tools and must answer `Action: NAME` / `Action Input: {...}`
    (generation is constrained to that shape). With --demos K, the K training examples whose
    queries are nearest by embedding are shown as demonstrations (the STE paper's ICL setting).
    """
    from imaginarium.evaluation.predict import predict

    summary = predict(test, backend, model, out, demos=demos, demo_pool=demo_pool, neighbours=neighbours,
                      tools=tools, limit=limit, max_tokens=max_tokens, max_args=max_args, seed=seed, embedder=embedder)
    click.echo(f"{summary['items']} predictions written to {summary['out']}")
