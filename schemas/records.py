"""Record schemas: the contract between stages.

The JSON Schema files in schemas/records/ are the single source of truth for the rows that
stages write (episode trials, SFT rows, preference and ranking rows, eval items). The Arrow
schema and the `datasets.Features` of each record are derived from them here, so a dataset
has exactly one Arrow schema and the two descriptions cannot drift apart.

Fields whose shape varies per tool (tool parameters, call arguments, observations) are JSON
strings, marked with `contentMediaType: application/json`; nullable fields use a type list
with "null" (or `anyOf` with a null branch for a nullable object).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from importlib import resources
from typing import Any

import jsonschema
import pyarrow as pa

from imaginarium.errors import InputError

RECORDS = ("episode_trial", "sft_row", "preference_row", "ranking_row", "eval_item")

_SCALARS = {"string": pa.string(), "integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_()}


@functools.cache
def record_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of a record, e.g. `record_schema("sft_row")`."""
    if name not in RECORDS:
        raise KeyError(f"unknown record {name!r}; known: {', '.join(RECORDS)}")
    text = resources.files("imaginarium.schemas").joinpath("records", f"{name}.json").read_text("utf-8")
    return json.loads(text)


@functools.cache
def arrow_schema(name: str) -> pa.Schema:
    """The Arrow schema of a record, derived from its JSON Schema."""
    schema = record_schema(name)
    return pa.schema([_field(key, sub, key in schema["required"]) for key, sub in schema["properties"].items()])


def features(name: str):
    """The `datasets.Features` of a record (imported lazily: datasets is slow to import)."""
    from datasets import Features

    return Features.from_arrow_schema(arrow_schema(name))


def validate_rows(name: str, rows: Iterable[dict[str, Any]], *, where: str = "") -> None:
    """Raise InputError naming the first row and field that break the record's schema."""
    validator = jsonschema.Draft202012Validator(record_schema(name))
    for index, row in enumerate(rows):
        error = jsonschema.exceptions.best_match(validator.iter_errors(row))
        if error is not None:
            field = "/".join(str(p) for p in error.absolute_path) or "(row)"
            raise InputError(f"row {index}, field {field}: {error.message}", where=where or name)


def _field(name: str, schema: dict[str, Any], required: bool) -> pa.Field:
    arrow_type, nullable = _arrow_type(schema)
    return pa.field(name, arrow_type, nullable=nullable or not required)


def _arrow_type(schema: dict[str, Any]) -> tuple[pa.DataType, bool]:
    """Arrow type of a (sub)schema and whether it admits null."""
    if "anyOf" in schema:
        branches = [b for b in schema["anyOf"] if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError("only `anyOf: [X, null]` maps to Arrow")
        arrow_type, _ = _arrow_type(branches[0])
        return arrow_type, True
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    nullable = "null" in types
    (kind,) = [t for t in types if t != "null"]
    if kind == "array":
        item_type, _ = _arrow_type(schema["items"])
        return pa.list_(item_type), nullable
    if kind == "object":
        required = set(schema.get("required", []))
        fields = [_field(key, sub, key in required) for key, sub in schema["properties"].items()]
        return pa.struct(fields), nullable
    return _SCALARS[kind], nullable
