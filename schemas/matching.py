"""Are a predicted call's arguments correct? By string (the STE paper's rule) or by AST.

- `string_match`: the STE paper's rule: every gold key is present in the prediction with the
  same value after `str`, strip and lowercase. Extra predicted keys are ignored.
- `ast_match`: a type-aware check in the spirit of BFCL's AST checker, guided by the tool's
  JSON Schema (see `ast_match` for the rules and the gold syntax for alternatives).

Each returns `MatchResult(correct, reason, method)`. These sit below both evaluation (which
scores predictions) and TRICE (which scores candidates against a gold call); evaluation adds the
LLM judge on top (evaluation/match.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jsonschema

ANY = "$any"            # gold value {"$any": [a, b]}: any of the alternatives is correct
OPTIONAL = "$optional"  # gold value {"$any": [...], "$optional": true}: the key may be omitted


@dataclass
class MatchResult:
    correct: bool
    reason: str
    method: str


# -- string ---------------------------------------------------------------------------------
def _norm(value: Any) -> str:
    return str(value).strip().lower()


def string_match(gold: dict[str, Any], pred: dict[str, Any] | None) -> MatchResult:
    """Every gold key present with the same value after str + strip + lowercase."""
    if not isinstance(pred, dict):
        return MatchResult(False, "the prediction has no arguments object", "string")
    for key, value in gold.items():
        if key not in pred:
            return MatchResult(False, f"missing key {key!r}", "string")
        if _norm(pred[key]) != _norm(value):
            return MatchResult(False, f"{key!r}: {pred[key]!r} != {value!r}", "string")
    return MatchResult(True, "all gold keys match", "string")


# -- AST --------------------------------------------------------------------------------------
def ast_match(gold: dict[str, Any], pred: Any, schema: dict[str, Any] | None = None) -> MatchResult:
    """Type-aware argument check, BFCL style. Rules:

    - required keys of the schema must be present; every gold key must be present unless the
      gold marks it optional (`{"$any": [...], "$optional": true}`);
    - no unexpected keys: a predicted key must be in the gold or in the schema's properties
      (a schema property the gold does not mention is accepted when its value validates
      against that property's schema); only an explicit `additionalProperties` opens the rest;
    - numbers compare by value (90 == 90.0, but 90.5 is not an integer); booleans are not
      numbers; a string "90" is only accepted where the schema says string (and then 90 is not);
    - strings compare after strip + casefold;
    - a gold value may list alternatives: `{"$any": ["NYC", "New York"]}`;
    - arrays compare element by element in order (with the `items` schema); objects recurse
      with their own `properties` / `required`.
    Without a schema, types follow the gold's JSON types and unexpected keys are those not in
    the gold.
    """
    reason = _match_object(gold, pred, schema, "")
    return MatchResult(reason is None, reason or "arguments match", "ast")


def _alternatives(gold: Any) -> tuple[list[Any], bool]:
    if isinstance(gold, dict) and ANY in gold:
        return list(gold[ANY]), bool(gold.get(OPTIONAL, False))
    if isinstance(gold, dict) and gold.get(OPTIONAL) is True and len(gold) == 1:
        return [], True
    return [gold], False


def _where(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _match_object(gold: Any, pred: Any, schema: dict[str, Any] | None, path: str) -> str | None:
    where = path or "arguments"
    if not isinstance(pred, dict):
        return f"{where}: expected an object, got {type(pred).__name__}"
    if not isinstance(gold, dict):
        return f"{where}: the gold is not an object"
    properties = (schema or {}).get("properties", {}) or {}
    required = (schema or {}).get("required", []) or []
    extra = (schema or {}).get("additionalProperties", False)
    for key in required:
        if key not in pred:
            return f"{_where(path, key)}: missing required key"
    for key, value in gold.items():
        if key not in pred and not _alternatives(value)[1]:
            return f"{_where(path, key)}: missing key"
    for key, value in pred.items():
        here = _where(path, key)
        if key in gold:
            reason = _match_any(gold[key], value, properties.get(key), here)
        elif key in properties:
            reason = _validates(value, properties[key], here)
        elif extra is True or isinstance(extra, dict):
            reason = _validates(value, extra, here) if isinstance(extra, dict) else None
        else:
            reason = f"{here}: unexpected key"
        if reason:
            return reason
    return None


def _match_any(gold: Any, pred: Any, schema: dict[str, Any] | None, path: str) -> str | None:
    options, _ = _alternatives(gold)
    if not options:
        return _validates(pred, schema, path) if schema else None
    reasons = [_match_value(option, pred, schema, path) for option in options]
    if any(reason is None for reason in reasons):
        return None
    if len(options) == 1:
        return reasons[0]
    return f"{path}: {pred!r} is none of {options!r}"


def _schema_type(schema: dict[str, Any] | None, gold: Any) -> str:
    declared = (schema or {}).get("type")
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), None)
    if declared:
        return declared
    if isinstance(gold, bool):
        return "boolean"
    if isinstance(gold, (int, float)):
        return "number"
    if isinstance(gold, str):
        return "string"
    if isinstance(gold, list):
        return "array"
    if isinstance(gold, dict):
        return "object"
    return "null"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _match_value(gold: Any, pred: Any, schema: dict[str, Any] | None, path: str) -> str | None:
    kind = _schema_type(schema, gold)
    if pred is None and gold is None:
        return None
    if kind == "string":
        if not isinstance(pred, str):
            return f"{path}: expected a string, got {json.dumps(pred)}"
        if _norm_text(pred) != _norm_text(str(gold) if not isinstance(gold, str) else gold):
            return f"{path}: {pred!r} != {gold!r}"
        return None
    if kind in ("number", "integer"):
        if not _is_number(pred):
            return f"{path}: expected a number, got {json.dumps(pred)}"
        if kind == "integer" and isinstance(pred, float) and not pred.is_integer():
            return f"{path}: expected an integer, got {pred}"
        if not _is_number(gold) or float(pred) != float(gold):
            return f"{path}: {pred!r} != {gold!r}"
        return None
    if kind == "boolean":
        if not isinstance(pred, bool):
            return f"{path}: expected a boolean, got {json.dumps(pred)}"
        return None if pred == gold else f"{path}: {pred!r} != {gold!r}"
    if kind == "array":
        if not isinstance(pred, list) or not isinstance(gold, list):
            return f"{path}: expected an array, got {json.dumps(pred)}"
        if len(pred) != len(gold):
            return f"{path}: {len(pred)} items, expected {len(gold)}"
        items = (schema or {}).get("items")
        for index, (g, p) in enumerate(zip(gold, pred)):
            reason = _match_any(g, p, items if isinstance(items, dict) else None, f"{path}[{index}]")
            if reason:
                return reason
        return None
    if kind == "object":
        return _match_object(gold, pred, schema, path)
    return None if pred == gold else f"{path}: {pred!r} != {gold!r}"


def _norm_text(text: str) -> str:
    return text.strip().casefold()


def _validates(value: Any, schema: dict[str, Any] | None, path: str) -> str | None:
    if not schema:
        return None
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(value))
    return None if error is None else f"{path}: {error.message}"


# -- several calls ------------------------------------------------------------------------------
def assign_calls(golds: int, preds: int, fits, *, ordered: bool = False) -> list[int] | None:
    """A one-to-one assignment of `preds` predicted calls to `golds` gold calls, or None.

    `fits(g, p)` says whether predicted call p satisfies gold call g. Ordered: call i must fit
    gold i. Unordered: a maximum bipartite matching (augmenting paths), so a prediction that
    fits two golds never blocks the one that fits only one: greedy first-fit, which BFCL uses,
    can fail where a valid assignment exists. Counts must be equal. Returns pred index per gold.
    """
    if golds != preds:
        return None
    if ordered:
        return list(range(golds)) if all(fits(i, i) for i in range(golds)) else None
    table = [[p for p in range(preds) if fits(g, p)] for g in range(golds)]
    owner: list[int | None] = [None] * preds  # pred -> the gold it serves

    def augment(g: int, seen: set[int]) -> bool:
        for p in table[g]:
            if p in seen:
                continue
            seen.add(p)
            if owner[p] is None or augment(owner[p], seen):  # type: ignore[arg-type]
                owner[p] = g
                return True
        return False

    for g in range(golds):
        if not augment(g, set()):
            return None
    result = [0] * golds
    for p, served in enumerate(owner):
        if served is not None:
            result[served] = p
    return result
