"""`predict`: a predictions file from any backend, optionally with retrieved demonstrations.

Input: a test file in the STE shape (tool_test.json: API name -> items, a list of items, or
JSONL), each item with `query`, `action`, `action_input`, and `API_name_list` /
`api_descriptions` for the tools shown.

Tools shown per query: the item's `API_name_list` with its `api_descriptions` text, or, with
`neighbours` (api2neighbors.json's shape: API -> names), the gold API's neighbours, described
from a tools.jsonl (`tools`, matched by name or source name).

Demonstrations (the STE paper's in-context setting): with `demos=K`, each test query gets the
K training examples whose queries are nearest by embedding (imaginarium.embeddings, cosine),
shown in the prompt as `User Query / Action / Action Input` examples.

Generation is constrained to a ReAct-shaped regex: `Action: <one of the shown names>` then
`Action Input: {...}` with a flat JSON object (up to `max_args` keys, 8 by default; string,
number, boolean or null values of bounded length, so that a call fits in max_tokens). The regex keeps outputs
parseable by `eval`'s ReAct parser; what the model puts in it is what gets scored.

Output: the STE results shape (API name -> items, each the test item plus `model_output`,
`finish_reason` and `demos`), written atomically; `imaginarium eval PRED --format ste` scores it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from imaginarium.atomic import atomic_write_text
from imaginarium.errors import InputError
from imaginarium.evaluation.bfcl.data import SCORED
from imaginarium.evaluation.items import check_name, check_names, check_values, document_rows, json_object
from imaginarium.models.backend import Backend
from imaginarium.models.options import GenerationOptions, open_backend
from imaginarium.options import Options, comma_list
from imaginarium.schemas.jsonpointer import join
from imaginarium.trice.questions import BadRows, JsonProblem, Row, loads, read_document, read_jsonl, read_text

TEMPLATES = Path(__file__).parent / "templates"
_KEY = r'"[A-Za-z_][A-Za-z0-9_]{0,31}"'
_VALUE = r'(?:"[^"\\\x00-\x1f]{0,64}"|-?(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,6})?|true|false|null)'
_PAIR = f"{_KEY}: {_VALUE}"
_REGEX_SPECIAL = set(r".^$*+?{}[]\|()/")


def regex_literal(text: str) -> str:
    """`text` as a regex matching itself; only metacharacters are escaped (grammar engines
    reject some of Python's re.escape escapes, such as an escaped space)."""
    return "".join("\\" + char if char in _REGEX_SPECIAL else char for char in text)


def call_regex(names: list[str], max_args: int = 8) -> str:
    """The ReAct-shaped regex: one of `names`, then a flat JSON object of up to `max_args` arguments."""
    alternatives = "|".join(regex_literal(name) for name in names)
    pairs = f"(?:{_PAIR}(?:, {_PAIR}){{0,{max_args - 1}}})?" if max_args > 0 else ""
    return f"Action: (?:{alternatives})\nAction Input: \\{{{pairs}\\}}"


def load_test_items(path: str | Path, bad: BadRows | None = None) -> list[dict[str, Any]]:
    """Items of an STE-shaped test file (object API -> items, list, or JSONL), in file order,
    each checked by `check_test_item`.

    Args:
        path: the file.
        bad: where bad rows go; None: the first bad row raises (after the whole file is read).
    """
    return [row.value for row in _read_items(path, bad)]


def _read_items(path: str | Path, bad: BadRows | None = None) -> list[Row]:
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", where=str(path))
    collect = bad if bad is not None else BadRows()
    items = []
    for row in _rows(path, collect):
        try:
            check_values(row.value, row.where)
            check_test_item(row.value, row.where)
            items.append(row)
        except InputError as exc:
            collect.add(exc)
    if bad is None:
        collect.check()
    return items


def _rows(path: Path, bad: BadRows) -> Iterator[Row]:
    """The rows of a JSON document (object API -> items, or a list) or of a JSONL file."""
    text = read_text(path)
    if not text.strip():
        return iter([])
    try:
        data = loads(text)
    except JsonProblem as exc:
        if not _looks_like_jsonl(text, exc):
            raise InputError(exc.message, where=f"{path}:{exc.line}") from None
        return read_jsonl(path, bad, text)
    if isinstance(data, dict) and ("query" in data or "action" in data) and \
            not all(isinstance(group, list) for group in data.values()):
        return iter([Row(f"{path}:1", 0, data)])  # JSONL with one row
    return document_rows(path, data, bad)


def _looks_like_jsonl(text: str, problem: JsonProblem) -> bool:
    """Whether a text that is not one JSON value is JSON Lines: one value followed by more, or
    a first line too deep to parse that is one value on its own, or one of the first three
    lines an object on its own (the lines before it broken)."""
    if problem.kind == "syntax" and problem.detail == "Extra data":
        return True
    lines = [line for _, line in zip(range(3), (line for line in text.split("\n") if line.strip()))]
    if problem.kind == "deep-unparsed":
        first = lines[0] if lines else ""
        return first.count("[") + first.count("{") == first.count("]") + first.count("}")
    if problem.kind != "syntax":
        return False
    for line in lines:
        try:
            if isinstance(loads(line), dict):
                return True
        except JsonProblem:
            continue
    return False


def check_test_item(item: Any, where: str) -> None:
    """The shape `predict` relies on: `query` text, `action` a tool name, `action_input` a JSON
    object (or its text), `API_name_list` tool names and `api_descriptions` text when given."""
    if not isinstance(item, dict):
        raise InputError("an item must be a JSON object", where=where)
    for key in ("query", "action", "action_input"):
        if key not in item:
            raise InputError(f"missing field {key}", where=where)
    if not isinstance(item["query"], str) or not item["query"].strip():
        raise InputError("field query: must be a non-empty string", where=where)
    check_name(item["action"], where, "action")
    json_object(item["action_input"], where, "action_input")
    check_names(item.get("API_name_list"), where, "API_name_list")
    if not isinstance(item.get("api_descriptions", ""), (str, type(None))):
        raise InputError("field api_descriptions: must be a string", where=where)


def nearest_demos(queries: list[str], pool: list[dict[str, Any]], k: int, embedder: str | None = None) -> list[list[int]]:
    """For each query, the indices of the `k` pool items with the nearest query embeddings."""
    from imaginarium.embeddings import embed, top_k

    if k <= 0 or not pool:
        return [[] for _ in queries]
    pool_vectors = embed([item["query"] for item in pool], model=embedder)
    query_vectors = embed(queries, model=embedder)
    indices, _ = top_k(query_vectors, pool_vectors, k)
    return [list(map(int, row)) for row in indices]


@functools.lru_cache(maxsize=1)
def _template():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             autoescape=False, trim_blocks=False)
    return env.get_template("predict_react.jinja")


def _as_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def build_messages(item: dict[str, Any], tools: list[dict[str, str]], tools_text: str,
                   demos: list[dict[str, Any]]) -> list[dict[str, str]]:
    """System prompt (tools, format, demonstrations) and the user's query."""
    demo_rows = [{"query": d["query"], "action": d["action"], "action_input": " ".join(_as_text(d["action_input"]).split())}
                 for d in demos]
    system = _template().render(tools=tools, tools_text=tools_text, demos=demo_rows).strip()
    return [{"role": "system", "content": system}, {"role": "user", "content": item["query"]}]


def shown_tools(item: dict[str, Any], neighbours: dict[str, list[str]] | None,
                 catalogue: dict[str, str]) -> tuple[list[str], list[dict[str, str]], str]:
    """(names, [{name, description}], verbatim descriptions text) of the tools shown for `item`."""
    if neighbours is not None:
        if item["action"] not in neighbours:
            raise InputError(f"no neighbours for API {item['action']!r}", where="neighbours")
        names = list(neighbours[item["action"]])
    else:
        names = list(item.get("API_name_list") or [item["action"]])
    if catalogue:
        missing = [name for name in names if name not in catalogue]
        if missing:
            raise InputError(f"tool {missing[0]!r} is not in the tools file", where="tools")
        return names, [{"name": n, "description": catalogue[n]} for n in names], ""
    if neighbours is not None:
        raise InputError("--neighbours needs --tools to describe the tools shown")
    return names, [], str(item.get("api_descriptions", ""))


def _predict_generation() -> GenerationOptions:
    return GenerationOptions(temperature=0.0, max_tokens=512)  # one answer per item: greedy


class PredictConfig(Options):
    """How predictions are generated for a test file."""

    generation: GenerationOptions = Field(default_factory=_predict_generation)
    format: Literal["ste", "bfcl"] = Field("ste", description=(
        "ste: predict an STE-shaped test file (--test); bfcl: predict BFCL's test items (--bfcl-data, --category) "
        "and write BFCL's result format."))
    bfcl_data: Path | None = Field(None, json_schema_extra={"exists": True}, description=(
        "BFCL's data directory, or an `eval export` directory (default: the installed bfcl-eval package's data)."))
    category: list[Literal[SCORED]] = Field(default_factory=list, description=(  # type: ignore[valid-type]
        "BFCL categories to predict, comma-separated (default: all that eval scores and --bfcl-data has)."))
    @field_validator("category", mode="before")
    @classmethod
    def _categories(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("name at least one category (or leave the option out for all)")
        return comma_list(value)

    call_format: Literal["json", "native"] = Field("json", description=(
        "--format bfcl: json: the project's constrained JSON act format (any backend); native: the tools go to "
        "the model's chat template and its tool-call text is parsed."))
    demos: int = Field(0, ge=0, le=100, description="In-context demonstrations per query: the K nearest training examples.")
    demo_pool: Path | None = Field(None, json_schema_extra={"exists": True},
                                   description="Training examples (STE shape) to retrieve demonstrations from.")
    neighbours: Path | None = Field(None, json_schema_extra={"exists": True},
                                    description="API -> tools shown (api2neighbors.json's shape); needs --tools.")
    tools: Path | None = Field(None, json_schema_extra={"exists": True}, description="tools.jsonl describing the tools shown.")
    limit: int | None = Field(None, ge=1, description="Only the first N test items (per category with --format bfcl).")
    max_args: int = Field(8, ge=0, le=64, description="Most arguments the call regex allows.")
    embedder: str | None = Field(None, min_length=1, description=(
        "Embedding model for --demos (default: the bundled all-MiniLM-L6-v2)."))
    batch_size: int = Field(64, ge=1, le=100_000, description="Items per backend call.")
    skip_invalid: bool = Field(False, description=(
        "Skip malformed test and demo rows (a count and the first reasons on stderr) instead of failing."))


def predict(test: str | Path | None, out: str | Path, config: PredictConfig | None = None, *,
            backend: Backend | None = None) -> dict[str, Any]:
    """Generate one call per test item and write an STE-shaped predictions file to `out`; with
    `config.format == "bfcl"`, predict BFCL's items and write BFCL's result format instead
    (evaluation/bfcl/predict.py).

    Args:
        test: test items in the STE shape (tool_test.json, a list, or JSONL); None for bfcl.
        out: the predictions file to write (atomically), which `evaluate(..., fmt="ste")` scores.
        config: the settings (default: `PredictConfig()`: the default model, greedy).
        backend: a backend already open (default: opened from `config.generation`).

    Returns:
        A summary: items, backend, model, demos, out.

    Raises:
        InputError: a missing or malformed test, demo, neighbours or tools file; a malformed
            row (unless `config.skip_invalid`: then it is skipped and reported on stderr). All
            are checked before any model loads.

    Example:
        >>> from imaginarium import predict, PredictConfig
        >>> predict("tool_test.json", "predictions.json", PredictConfig(limit=20))
    """
    config = config or PredictConfig()
    if config.format == "bfcl":
        return _predict_bfcl(out, config, backend)
    if test is None:
        raise InputError("--test is needed (the STE test items), or --format bfcl")
    demos, demo_pool, neighbours, tools = config.demos, config.demo_pool, config.neighbours, config.tools
    limit, max_args, embedder = config.limit, config.max_args, config.embedder
    max_tokens, seed = config.generation.max_tokens, config.generation.seed
    from imaginarium.models.backend import Constraint, GenerationRequest

    if demos and not demo_pool:
        raise InputError("--demos needs --demo-pool (the training examples)")
    if neighbours and not tools:
        raise InputError("--neighbours needs --tools to describe the tools shown")
    # Every row of every input is checked before any model (embedder or generator) loads.
    bad = BadRows(config.skip_invalid)
    rows = _read_items(test, bad)
    pool = [row.value for row in _read_items(demo_pool, bad)] if demos and demo_pool else []
    neighbour_map = _load_neighbours(neighbours) if neighbours else None
    catalogue = _catalogue(tools) if tools else {}
    items, tools_shown = [], []
    for row in rows:
        try:
            tools_shown.append(shown_tools(row.value, neighbour_map, catalogue))
        except InputError as exc:
            bad.add(InputError(str(exc), where=row.where))
            continue
        items.append(row.value)
    bad.check()
    if not items:
        raise bad.nothing_left("test items", str(test)) if bad else InputError("no test items", where=str(test))
    items, tools_shown = items[: limit if limit else None], tools_shown[: limit if limit else None]
    demo_indices = nearest_demos([item["query"] for item in items], pool, demos, embedder)

    requests = []
    for item, chosen, (names, shown, text) in zip(items, demo_indices, tools_shown):
        requests.append(GenerationRequest(
            messages=build_messages(item, shown, text, [pool[i] for i in chosen]),
            constraint=Constraint.regex(call_regex(names, max_args)), max_tokens=max_tokens,
            temperature=config.generation.temperature, top_p=config.generation.top_p, seed=seed,
        ))
    engine = backend or open_backend(config.generation)
    completions = _generate(engine, requests, config.batch_size)

    grouped: dict[str, list[dict[str, Any]]] = {}
    for item, completion, chosen in zip(items, completions, demo_indices):
        prediction = {**item, "model_output": completion.text, "finish_reason": completion.finish_reason,
                      "demos": [pool[i]["query"] for i in chosen]}
        if completion.error:
            prediction["generation_error"] = completion.error
        grouped.setdefault(item["action"], []).append(prediction)
    atomic_write_text(out, json.dumps(grouped, ensure_ascii=False, indent=1) + "\n")
    summary = {"items": len(items), "backend": engine.name, "model": engine.model, "demos": demos, "out": str(out)}
    return {**summary, "skipped_invalid": len(bad)} if bad else summary


def _predict_bfcl(out: str | Path, config: PredictConfig, backend: Backend | None) -> dict[str, Any]:
    from imaginarium.evaluation.bfcl.data import check_category
    from imaginarium.evaluation.bfcl.predict import predict_bfcl
    from imaginarium.evaluation.bfcl.score import data_root

    if config.demos or config.neighbours or config.tools:
        raise InputError("--demos, --neighbours and --tools are for STE test files, not --format bfcl")
    root = data_root(config.bfcl_data)
    categories = [check_category(c) for c in config.category] or None
    g = config.generation
    # the model opens only after every input is read and checked (predict_bfcl calls it then)
    return predict_bfcl(out, backend=backend or (lambda: open_backend(g)), bfcl_root=root, categories=categories,
                        limit=config.limit,
                        call_format=config.call_format, max_tokens=g.max_tokens, temperature=g.temperature,
                        top_p=g.top_p, seed=g.seed, batch_size=config.batch_size)


def _generate(generator, requests, chunk: int):
    from rich.progress import Progress

    completions = []
    with Progress(transient=True) as progress:
        task = progress.add_task("predicting", total=len(requests))
        for start in range(0, len(requests), chunk):
            completions.extend(generator.generate(requests[start : start + chunk]))
            progress.advance(task, len(requests[start : start + chunk]))
    return completions


def _load_neighbours(path: str | Path) -> dict[str, list[str]]:
    """api2neighbors.json's shape: API name -> names of the tools shown."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", where=str(path))
    data = read_document(path)
    if not isinstance(data, dict):
        raise InputError("expected an object API name -> list of tool names", where=str(path))
    for api, names in data.items():
        if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
            raise InputError("must be a list of tool names", where=f"{path}#{join('', api)}")
    return data


def _catalogue(tools: str | Path) -> dict[str, str]:
    """Tool name (and source name) -> description with the parameters schema, from tools.jsonl."""
    from imaginarium.schemas.toolspec import read_tools

    catalogue = {}
    for tool in read_tools(tools):
        text = f"{tool.description} Parameters (JSON Schema): {json.dumps(tool.parameters, ensure_ascii=False)}"
        catalogue[tool.name] = catalogue[tool.source_name] = text
    return catalogue
