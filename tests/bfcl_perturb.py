"""A perturbation set over BFCL's test data, to compare imaginarium's checker with bfcl-eval's.

For every item of the AST categories, the gold itself (first and last acceptable value of each
parameter) and perturbed versions of it, each a decoded call list `[{name: {arg: value}}]` (for
Java and JavaScript, values as source text, as BFCL's decoder gives them); for the irrelevance
categories, outputs with and without calls. Each case is `(kind, item, result)`; the kinds are
the issue's list (wrong name, missing required argument, extra unknown argument, "5" for 5, an
int where a float is expected, a value outside the allowed ones, optional omitted, parallel calls
reordered or dropped, a call where none is expected) plus string normalisation, a float for an
integer, a boolean for an integer and wrong element types in lists.

Deterministic: no randomness, so a disagreement found once is found again.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from imaginarium.evaluation.bfcl.checker import category_rule, language_of
from imaginarium.evaluation.bfcl.data import BfclItem
from imaginarium.evaluation.bfcl.java_js import encode_value
from imaginarium.evaluation.bfcl.java_js_calls import parse_calls


def _doc(item: BfclItem, name: str) -> dict[str, Any]:
    return next((doc for doc in item.functions if doc["name"] == name), {"parameters": {"properties": {}}})


def _schema(item: BfclItem, name: str, param: str) -> dict[str, Any]:
    return _doc(item, name).get("parameters", {}).get("properties", {}).get(param, {})


def _encode(item: BfclItem, name: str, param: str, value: Any) -> Any:
    language = language_of(item.category)
    if language == "python":
        return value
    schema = _schema(item, name, param)
    nested = (schema.get("items") or {}).get("type") if isinstance(schema.get("items"), dict) else None
    try:
        source = encode_value(value, schema.get("type", "any"), nested, language)
        # what BFCL's decoder hands the checker: the argument's text as its parser reads it
        return parse_calls(f"{name}({param}={source})", language)[0][name][param]
    except (ValueError, KeyError, IndexError):
        return str(value)


def _concrete(value: Any, pick: int) -> Any:
    """A possible-answer value made concrete: a dict's (or a list of dicts') keys hold their own
    lists of alternatives in BFCL's golds; take one of each, leaving out optional-only keys."""
    if isinstance(value, dict):
        out = {}
        for key, options in value.items():
            choices = [v for v in options if v != ""] if isinstance(options, list) else [options]
            if choices:
                out[key] = _concrete(choices[pick], pick)
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [_concrete(v, pick) for v in value]
    return value


def gold_calls(item: BfclItem, pick: int = 0) -> list[dict[str, dict[str, Any]]]:
    """The gold as a decoded call list: each parameter's first (pick 0) or last (pick -1)
    acceptable value; parameters whose only value is "" (may be omitted) left out."""
    calls = []
    for gold in item.golds or []:
        name, params = next(iter(gold.items()))
        args = {}
        for param, values in params.items():
            choices = [v for v in values if v != ""]
            if choices:
                args[param] = _encode(item, name, param, _concrete(choices[pick], pick))
        calls.append({name: args})
    return calls


def _with(calls: list[dict[str, dict]], index: int, change) -> list[dict[str, dict]]:
    calls = copy.deepcopy(calls)
    name = next(iter(calls[index]))
    result = change(name, calls[index][name])
    if result is not None:
        calls[index] = result
    return calls


def _first(params: dict[str, Any], want) -> str | None:
    return next((key for key, value in params.items() if want(key, value)), None)


def _normalised_variant(text: str) -> str:
    """Case and BFCL-ignored punctuation changed: equal after BFCL's standardisation."""
    return text.upper().replace(" ", " -") if " " in text else text.upper() + "."


def cases(item: BfclItem) -> Iterator[tuple[str, Any]]:
    """`(kind, result)` pairs for one item."""
    rule = category_rule(item.category)
    if rule in ("irrelevance", "relevance"):
        doc = item.functions[0] if item.functions else {"name": "lookup"}
        required = doc.get("parameters", {}).get("required", [])
        yield "no call (text)", "I cannot answer that with the functions I have."
        yield "no call (empty list)", []
        yield "a call where none is expected", [{doc["name"]: dict.fromkeys(required, "x")}]
        yield "a call as Python text", f"[{doc['name']}()]"
        yield "broken call text", f"[{doc['name']}(a=]"
        return
    python = language_of(item.category) == "python"
    gold = gold_calls(item)
    yield "gold", gold
    yield "gold, last alternatives", gold_calls(item, -1)
    yield "no call", []
    yield "wrong name", _with(gold, 0, lambda name, args: {name + "_v2": args})
    first_name = next(iter(gold[0]))
    required = _doc(item, first_name).get("parameters", {}).get("required", [])
    present = [key for key in required if key in gold[0][first_name]]
    if present:
        yield "missing required argument", _with(gold, 0, lambda name, args: {name: {k: v for k, v in args.items() if k != present[0]}})
    yield "extra unknown argument", _with(gold, 0, lambda name, args: {name: {**args, "unknown_extra": "1" if not python else 1}})
    answers = next(iter((item.golds or [{}])[0].values()), {})
    optional = [key for key, values in answers.items() if "" in values and key in gold[0][first_name]]
    if optional:
        yield "optional omitted", _with(gold, 0, lambda name, args: {name: {k: v for k, v in args.items() if k != optional[0]}})
    not_optional = [key for key, values in answers.items() if "" not in values and key not in required and key in gold[0][first_name]]
    if not_optional:
        yield "non-optional omitted", _with(gold, 0, lambda name, args: {name: {k: v for k, v in args.items() if k != not_optional[0]}})
    args0 = gold[0][first_name]
    if python:
        number = _first(args0, lambda k, v: type(v) is int)
        if number:
            yield '"5" for 5', _with(gold, 0, lambda name, args: {name: {**args, number: str(args[number])}})
            yield "10.0 for an integer", _with(gold, 0, lambda name, args: {name: {**args, number: float(args[number])}})
            yield "a boolean for an integer", _with(gold, 0, lambda name, args: {name: {**args, number: True}})
            yield "value outside the allowed ones (number)", _with(gold, 0, lambda name, args: {name: {**args, number: args[number] + 1000}})
        floating = _first(args0, lambda k, v: type(v) is float)
        if floating:
            yield "an int where a float is expected", _with(gold, 0, lambda name, args: {name: {**args, floating: int(args[floating])}})
        listed = _first(args0, lambda k, v: type(v) is list and v and all(type(x) in (int, float) for x in v))
        if listed:
            yield "list elements as strings", _with(gold, 0, lambda name, args: {name: {**args, listed: [str(x) for x in args[listed]]}})
        dicted = _first(args0, lambda k, v: type(v) is dict and v)
        if dicted:
            yield "dict with an extra key", _with(gold, 0, lambda name, args: {name: {**args, dicted: {**args[dicted], "zz_extra": 1}}})
            key = next(iter(args0[dicted]))
            yield "dict with a key dropped", _with(gold, 0, lambda name, args: {name: {**args, dicted: {k: v for k, v in args[dicted].items() if k != key}}})
    text = _first(args0, lambda k, v: type(v) is str and v.strip())
    if text:
        yield "string case and punctuation", _with(gold, 0, lambda name, args: {name: {**args, text: _normalised_variant(args[text])}})
        yield "value outside the allowed ones (string)", _with(gold, 0, lambda name, args: {name: {**args, text: args[text] + " Zanzibar"}})
        yield "string for a non-string (5 as text)", _with(gold, 0, lambda name, args: {name: {**args, text: 5}})
    if len(gold) > 1:
        yield "parallel calls reordered", list(reversed(gold))
        yield "parallel call dropped", gold[:-1]
        yield "parallel call duplicated", gold + gold[:1]
        yield "parallel calls rotated", gold[1:] + gold[:1]
    else:
        yield "the call twice", gold + gold
