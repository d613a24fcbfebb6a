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

from imaginarium.errors import InputError
from imaginarium.generators.backend import Constraint, GenerationRequest
from imaginarium.generators.defaults import GenerationDefaults

DEFAULTS = GenerationDefaults()
DEFAULT_PROMPT = "Produce one example."


@click.group(invoke_without_command=True)
@click.pass_context
def model(ctx: click.Context) -> None:
    """The default model and the tiny test model: where they come from, conversion, checks.

    Without a subcommand: the same as `imaginarium model show`.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(show)


_model_name = click.argument("name", default=DEFAULTS.model, required=False)


@model.command("show")
@_model_name
def show(name: str) -> None:
    """Where an embedded model comes from (package, file, licence) and where its conversion lives."""
    from imaginarium.generators.default_model import describe

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
    from imaginarium.generators.default_model import ensure_model

    click.echo(str(ensure_model(name)))


@model.command("check")
@_model_name
def check(name: str) -> None:
    """Re-hash a conversion against its recorded sizes and sha256; exit 1 when it does not match.

    A conversion that fails is converted again on next use (or run `imaginarium model convert`).
    """
    from imaginarium.generators.default_model import check_model

    report = check_model(name)
    if report["ok"]:
        click.echo(f"{report['model']}: OK, {len(report['files'])} files match ({report['path']})")
        return
    for problem in report["problems"]:
        click.echo(f"{report['model']}: {problem}", err=True)
    raise SystemExit(1)


@model.command("tiny")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to save the model and tokenizer into.")
@click.option("--seed", default=0, show_default=True, help="Seed for the weights (same seed, same files).")
def tiny(out_dir: Path, seed: int) -> None:
    """Build the tiny random-weight Llama model (about a second) and print its directory.

    Its text is meaningless but its constrained outputs are valid: the fast tests use it
    (`--model tiny`). Load it with AutoModelForCausalLM.from_pretrained(DIR).
    """
    from imaginarium.generators.tiny_model import build_tiny_model

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


def generate_results(
    backend: str = DEFAULTS.backend,
    model: str = DEFAULTS.model,
    revision: str | None = None,
    schema: str | Path | None = None,
    regex: str | None = None,
    choice: str | None = None,
    n: int = 20,
    seed: int = DEFAULTS.seed,
    max_tokens: int = DEFAULTS.max_tokens,
    temperature: float = DEFAULTS.temperature,
    top_p: float = DEFAULTS.top_p,
    prompt: str = DEFAULT_PROMPT,
    structured_backend: str | None = None,
    base_url: str | None = None,
) -> list[dict[str, Any]]:
    """Generate `n` seeded samples for one user prompt; one dict per result."""
    from imaginarium.generators.backends import open_backend

    if n < 1:
        raise InputError("must be at least 1", where="--n")
    if backend != "transformers" and structured_backend is not None:
        raise InputError(f"only the transformers backend takes it, not {backend}", where="--structured-backend")
    constraint = load_constraint(schema, regex, choice)
    engine = open_backend(backend, model, revision=revision, structured_backend=structured_backend, base_url=base_url)
    request = GenerationRequest(
        messages=[{"role": "user", "content": prompt}], constraint=constraint, max_tokens=max_tokens,
        temperature=temperature, top_p=top_p, seed=seed, n=n,
    )
    results = []
    for completion in engine.generate([request]):
        result = {"text": completion.text, "value": completion.value, "finish_reason": completion.finish_reason}
        if completion.error:
            result["error"] = completion.error
        results.append(result)
    return results


@click.command()
@click.option("--backend", type=click.Choice(["transformers", "vllm", "openai"]), default=DEFAULTS.backend, show_default=True,
              help="Generation engine.")
@click.option("--model", default=DEFAULTS.model, show_default=True,
              help="HF model id, local path, or 'tiny' / 'tiny:SEED' for the embedded tiny model.")
@click.option("--revision", default=None, help="Model revision (branch, tag or commit) to load.")
@click.option("--schema", type=click.Path(dir_okay=False, path_type=Path), default=None, help="JSON Schema file the output must match.")
@click.option("--regex", default=None, help="Regex the output must match.")
@click.option("--choice", default=None, help="Comma-separated choices, e.g. yes,no.")
@click.option("--n", default=20, show_default=True, help="Number of samples.")
@click.option("--seed", default=DEFAULTS.seed, show_default=True, help="Seed: same seed, same samples.")
@click.option("--max-tokens", default=DEFAULTS.max_tokens, show_default=True, help="Token limit per sample (finish_reason=length when hit).")
@click.option("--temperature", default=DEFAULTS.temperature, show_default=True, help="Sampling temperature (0 = greedy).")
@click.option("--top-p", default=DEFAULTS.top_p, show_default=True, help="Nucleus sampling mass.")
@click.option("--prompt", default=DEFAULT_PROMPT, show_default=True, help="The user message.")
@click.option("--structured-backend", type=click.Choice(["llguidance", "outlines_core", "xgrammar"]), default=None,
              help=f"transformers only: constraint engine [default: {DEFAULTS.structured_backend}].")
@click.option("--base-url", default=None, help="openai only: server root including /v1, e.g. http://127.0.0.1:8000/v1.")
def generate(**kwargs: Any) -> None:
    """Generate samples from a model, optionally constrained, and print one JSON object per result.

    Each line has text, value (the parsed value of a valid constrained result, else null) and
    finish_reason (stop, length = cut by --max-tokens, invalid, error).

    Example: imaginarium generate --model tiny --choice yes,no --n 5
    """
    for result in generate_results(**kwargs):
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
