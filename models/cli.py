"""`imaginarium model ...` and `imaginarium generate`: thin shells over Python functions.

`generate` is the quickest way to try a model with a schema: it prints one JSON object per
result (text, value, finish_reason), so its output pipes into jq or a file.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import Field, field_validator

from imaginarium.errors import InputError
from imaginarium.models.backend import Constraint, GenerationRequest
from imaginarium.models.options import DEFAULT_MODEL, GenerationOptions
from imaginarium.options import PATH, Options, cli_options, comma_list, parse_cli

DEFAULT_PROMPT = "Produce one example."


@click.group(invoke_without_command=True)
@click.pass_context
def model(ctx: click.Context) -> None:
    """The default model and the tiny test model: where they come from, conversion, checks.

    Without a subcommand: the same as `imaginarium model show`.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(show)


_model_name = click.argument("name", default=DEFAULT_MODEL, required=False)


@model.command("show")
@_model_name
def show(name: str) -> None:
    """Where an embedded model comes from (package, file, licence) and where its conversion lives."""
    from imaginarium.models.default import describe

    info = describe(name)
    click.echo(f"{info['model']}: {info['title']} ({info['license']}), from {info['upstream']}")
    click.echo(f"  package   {info['package']} " + (f"installed: {info['gguf']}" if info["installed"]
                                                    else f"NOT installed: run `{info['install']}`"))
    click.echo(f"  converted {info['path']}" + ("" if info["converted"] else
                                                 " (not yet: converted on first use, or by `imaginarium model convert`)"))


@model.command("convert")
@_model_name
def convert(name: str) -> None:
    """Convert an embedded model now (normally done on first use) and print its directory."""
    from imaginarium.models.default import ensure_model

    click.echo(str(ensure_model(name)))


@model.command("check")
@_model_name
def check(name: str) -> None:
    """Re-hash a conversion against its recorded sizes and sha256; exit 1 when it does not match.

    A conversion that fails is converted again on next use (or run `imaginarium model convert`).
    """
    from imaginarium.models.default import check_model

    report = check_model(name)
    if report["ok"]:
        click.echo(f"{report['model']}: OK, {len(report['files'])} files match ({report['path']})")
        return
    for problem in report["problems"]:
        click.echo(f"{report['model']}: {problem}", err=True)
    raise SystemExit(1)


@model.command("tiny")
@click.option("-o", "--out", "out_dir", required=True, type=PATH,
              help="Directory to save the model and tokenizer into.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed for the weights (same seed, same files).")
def tiny(out_dir: Path, seed: int) -> None:
    """Build the tiny random-weight Llama model (about a second) and print its directory.

    Its text is meaningless but its constrained outputs are valid: the fast tests use it
    (`--model tiny`). Load it with AutoModelForCausalLM.from_pretrained(DIR).
    """
    from imaginarium.models.tiny import build_tiny_model

    click.echo(str(build_tiny_model(out_dir, seed=seed)))


def load_constraint(schema: str | Path | None = None, regex: str | None = None, choice: str | None = None) -> Constraint | None:
    """The constraint named by at most one of a JSON Schema file, a regex and a comma-separated choice."""
    given = [name for name, value in (("--schema", schema), ("--regex", regex), ("--choice", choice)) if value is not None]
    if len(given) > 1:
        raise InputError(f"give at most one of --schema, --regex and --choice (got {' and '.join(given)})")
    if schema is not None:
        path = Path(schema)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError("no such file", where=str(path)) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"not a JSON Schema file: {exc}", where=str(path)) from None
        from jsonschema.exceptions import SchemaError
        from jsonschema.validators import validator_for

        if not isinstance(document, dict):
            raise InputError("a JSON Schema must be an object", where=str(path))
        try:
            validator_for(document).check_schema(document)
        except SchemaError as exc:
            raise InputError(f"invalid JSON Schema: {exc.message}", where=str(path)) from None
        return Constraint.json(document)
    if regex is not None:
        try:
            re.compile(regex)
        except re.error as exc:
            raise InputError(f"invalid regex: {exc}", where="--regex") from None
        return Constraint.regex(regex)
    if choice is not None:
        options = [option.strip() for option in choice.split(",") if option.strip()]
        if not options:
            raise InputError("no choices given", where="--choice")
        return Constraint.choice(options)
    return None


def _generate_generation() -> GenerationOptions:
    return GenerationOptions(temperature=0.7, top_p=0.95, max_tokens=512)


class GenerateConfig(Options):
    """One prompt, sampled `n` times, optionally under a constraint."""

    generation: GenerationOptions = Field(default_factory=_generate_generation)
    prompt: str = Field(DEFAULT_PROMPT, min_length=1, description="The user message.")
    n: int = Field(20, ge=1, le=100_000, description="Number of samples.")
    schema_file: Path | None = Field(None, json_schema_extra={"flag": "--schema", "exists": True},
                                     description="JSON Schema file the output must match.")
    regex: str | None = Field(None, min_length=1, description="Regex the output must match.")
    choice: list[str] | None = Field(None, min_length=1, description="Choices the output must be one of, e.g. yes,no.")

    _lists = field_validator("choice", mode="before")(comma_list)


def generate_results(config: GenerateConfig | None = None) -> list[dict[str, Any]]:
    """Generate `config.n` seeded samples for one user prompt; one dict per result.

    Raises:
        InputError: more than one constraint given, or a constraint that is not valid.
    """
    from imaginarium.models.options import open_backend

    config = config or GenerateConfig()
    choice = ",".join(config.choice) if config.choice else None
    constraint = load_constraint(config.schema_file, config.regex, choice)
    engine = open_backend(config.generation)
    sampling = config.generation
    request = GenerationRequest(
        messages=[{"role": "user", "content": config.prompt}], constraint=constraint, max_tokens=sampling.max_tokens,
        temperature=sampling.temperature, top_p=sampling.top_p, seed=sampling.seed, n=config.n,
    )
    results = []
    for completion in engine.generate([request]):
        result = {"text": completion.text, "value": completion.value, "finish_reason": completion.finish_reason}
        if completion.error:
            result["error"] = completion.error
        results.append(result)
    return results


@click.command()
@cli_options(GenerateConfig)
def generate(**params: Any) -> None:
    """Generate samples from a model, optionally constrained, and print one JSON object per result.

    Each line has text, value (the parsed value of a valid constrained result, else null) and
    finish_reason (stop, length = cut by --max-tokens, invalid, error).

    Example: imaginarium generate --model tiny --choice yes,no --n 5
    """
    for result in generate_results(parse_cli(GenerateConfig, params)):
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
