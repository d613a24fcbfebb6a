"""One check, shared by every backend, that a generated text satisfies its constraint.

Constrained decoding (Outlines, vLLM's structured outputs, a server's `response_format`)
should only produce matching text, but engines differ in what they enforce (bounds, lengths,
patterns) and servers are outside our control. So every backend passes each constrained text
through `validate_completion` before reporting it as valid, and all of them agree on what
"valid" means: JSON that validates with jsonschema, a full regex match, or an exact choice.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

import jsonschema

from imaginarium.jsonutil import canonical_json
from imaginarium.models.backend import Completion, Constraint


def validate_completion(constraint: Constraint | None, text: str) -> tuple[bool, Any, str | None]:
    """Check `text` against `constraint`: `(ok, value, error)`.

    `value` is the parsed JSON for a json constraint and the text itself for regex and choice
    (None when not ok); `error` says what is wrong when not ok. With no constraint any text is
    fine and the value is None.
    """
    if constraint is None:
        return True, None, None
    if constraint.kind == "json":
        return _check_json(constraint.value, text)
    if constraint.kind == "regex":
        try:
            pattern = _compiled_regex(constraint.value)
        except re.error as exc:
            return False, None, f"the regex {constraint.value!r} does not compile: {exc}"
        if pattern.fullmatch(text):
            return True, text, None
        return False, None, f"text does not match the regex {constraint.value!r}"
    if constraint.kind == "choice":
        if text in constraint.value:
            return True, text, None
        return False, None, f"text is not one of the {len(constraint.value)} choices"
    return False, None, f"unknown constraint kind {constraint.kind!r}"


def judged_completion(constraint: Constraint | None, text: str, engine_reason: str | None) -> Completion:
    """A Completion for `text` as an engine or server finished it, judged against `constraint`.

    `length` (cut by max_tokens) is never valid; `stop` (or an engine's `None`/`tool_calls`)
    is `stop` with the parsed value when the text validates and `invalid` otherwise; any other
    reason (`abort`, `content_filter`, ...) is an `error`. Indices and token counts are the
    caller's to fill in.
    """
    if engine_reason == "length":
        return Completion(text, "length", error="cut by max_tokens")
    if engine_reason not in ("stop", "tool_calls", None):
        return Completion(text, "error", error=f"generation finished with {engine_reason!r}")
    ok, value, problem = validate_completion(constraint, text)
    if not ok:
        return Completion(text, "invalid", error=problem)
    return Completion(text, "stop", value=value)


def _check_json(schema: dict[str, Any], text: str) -> tuple[bool, Any, str | None]:
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except ValueError as exc:
        return False, None, f"not valid JSON: {exc}"
    try:
        validator = _validator(canonical_json(schema))
    except jsonschema.SchemaError as exc:
        return False, None, f"the schema itself is invalid: {exc.message}"
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        return False, None, f"schema violation at {where}: {error.message}"
    return True, value, None


def _reject_constant(name: str) -> Any:
    """NaN and Infinity are accepted by Python's json but are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    """A number such as 1e999 is valid JSON text but overflows to infinity: reject it, since
    no tool can receive it and canonical JSON (cache keys) cannot represent it."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


@lru_cache(maxsize=4096)
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    """A checked validator per distinct schema (keyed by canonical JSON), built once."""
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@lru_cache(maxsize=1024)
def _compiled_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
