"""BFCL's AST checker, written from its documented rules: is a list of decoded calls right?

A *call* is `(name, arguments)`; a *gold call* is `{name: {param: [acceptable values]}}` as in
BFCL's possible-answer files, where `""` among the values means the parameter may be omitted.
A *function doc* is BFCL's (`{"name", "parameters": {"type": "dict", "properties", "required"}}`,
Python, Java or JavaScript type names) or an already converted JSON Schema doc (`number`,
`object`, no type): both are read here, so `--args-match bfcl` works on tools.jsonl too.

The rules, in BFCL's order, with its error codes (`Verdict.error_type`):
- count: simple and live_simple need exactly one call (`simple_function_checker:wrong_count`);
  multiple needs as many calls as golds (one); parallel ones as many as golds, in any order.
- name: the gold's name, or (BFCL maps dots to underscores for APIs that forbid dots) the name
  with `.` written `_` (`simple_function_checker:wrong_func_name`);
- every required parameter present (`:missing_required`); every given parameter in the doc and
  in the gold (`:unexpected_param`);
- types: Python's own types, exact (True is not an integer, 10.0 is not an integer); an integer
  where a float is expected is accepted; a value whose type is that of the gold's values is
  accepted as a "variable" (the gold wrote a name where the doc says dict, say) and then compared
  as is; lists are checked one level deep against the gold list's element types
  (`type_error:simple`, `type_error:nested`). Java and JavaScript values arrive as source text and
  are converted by the declared type first (java_js.py); a non-text value there is
  `type_error:java` / `type_error:js`.
- values: strings compare after `standardize` (lowercase; spaces and `,./-_*^` removed; `'` read
  as `"`), in lists too; dicts key by key (a key the gold lacks is wrong, a gold key may be
  missing only when `""` is among its values); lists of dicts in order; anything else by Python
  equality (`value_error:string`, `:list/tuple`, `:dict_key`, `:dict_value`, `:list_dict_count`,
  `:others`);
- every gold parameter not given must allow omission (`:missing_optional`).

Where this differs from bfcl-eval on purpose (docs/evaluation.md lists each class):
parallel calls are matched by assignment (schemas.matching.assign_calls), not BFCL's greedy
first fit, so a call that fits two golds never blocks the only fit of another; and inputs that
make bfcl-eval raise (a doc without `required`, an unknown type name, a list type without
`items`, Java `Set`/`Queue`) get a verdict instead of an exception.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from imaginarium.evaluation.bfcl.java_js import convert_value
from imaginarium.schemas.matching import assign_calls

Language = Literal["python", "java", "javascript"]
Call = tuple[str, dict[str, Any]]

PYTHON_TYPES: dict[str, type] = {
    "string": str, "integer": int, "float": float, "boolean": bool, "array": list, "tuple": list,
    "dict": dict, "any": str,
    "number": float, "object": dict,  # the JSON Schema names of a converted doc
}
JAVA_TYPES: dict[str, type] = {
    "byte": int, "short": int, "integer": int, "float": float, "double": float, "long": int, "boolean": bool,
    "char": str, "Array": list, "ArrayList": list, "Set": set, "HashMap": dict, "Hashtable": dict, "Queue": list,
    "Stack": list, "String": str, "any": str,
}
JS_TYPES: dict[str, type] = {
    "String": str, "integer": int, "float": float, "Bigint": int, "Boolean": bool, "dict": dict, "array": list,
    "any": str,
}
_NESTED = {"python": ("array", "tuple"), "java": ("Array", "ArrayList", "array"), "javascript": ("Array", "ArrayList", "array")}
_PUNCTUATION = re.compile(r"[ ,./\-_*^]")


@dataclass(frozen=True)
class Verdict:
    """One item's verdict: `valid`, and when not, BFCL's error code and a one-line reason."""

    valid: bool
    error_type: str = ""
    error: str = ""


OK = Verdict(True)


def standardize(text: str) -> str:
    """BFCL's string normal form: spaces and `,./-_*^` removed, lowercase, `'` read as `"`."""
    return _PUNCTUATION.sub("", text).lower().replace("'", '"')


def _std(value: Any) -> Any:
    return standardize(value) if type(value) is str else value


def category_rule(category: str) -> str:
    """How a category is checked: `irrelevance`, `relevance`, `parallel`, `multiple` or `simple`
    (BFCL decides by the name: `parallel` before `multiple`, so parallel_multiple is parallel)."""
    if "irrelevance" in category or category == "clarify":  # clarify: imaginarium's own, no call is right first
        return "irrelevance"
    if "relevance" in category:
        return "relevance"
    if "parallel" in category:
        return "parallel"
    if "multiple" in category:
        return "multiple"
    return "simple"


def language_of(category: str) -> Language:
    if category.endswith("java"):
        return "java"
    if category.endswith("javascript"):
        return "javascript"
    return "python"


# -- several calls -------------------------------------------------------------------------------
def check_calls(docs: Sequence[dict[str, Any]], calls: Sequence[Call], golds: Sequence[dict[str, dict[str, list]]],
                category: str, language: Language | None = None) -> Verdict:
    """The verdict on one item of an AST category (simple, multiple, parallel, live ones).

    Args:
        docs: the function docs the model was shown.
        calls: the decoded calls, in the model's order.
        golds: the possible answers, one `{name: {param: [values]}}` per expected call.
        category: the BFCL category (its name decides the rule: see `category_rule`).
        language: python, java or javascript (default: from the category's name).
    """
    language = language or language_of(category)
    rule = category_rule(category)
    if rule in ("irrelevance", "relevance"):
        raise ValueError(f"{category}: decided by whether a call was made, not by check_calls")
    if rule == "simple" and len(calls) != 1:
        return Verdict(False, "simple_function_checker:wrong_count", f"{len(calls)} calls; one was expected")
    if len(calls) != len(golds):
        code = "parallel_function_checker_no_order" if rule == "parallel" else "multiple_function_checker"
        return Verdict(False, f"{code}:wrong_count", f"{len(calls)} calls; {len(golds)} expected")
    if rule != "parallel":
        return check_call(_doc(docs, golds[0]), calls[0], golds[0], language)
    verdicts: dict[tuple[int, int], Verdict] = {}

    def fits(g: int, p: int) -> bool:
        verdicts[g, p] = check_call(_doc(docs, golds[g]), calls[p], golds[g], language)
        return verdicts[g, p].valid

    if assign_calls(len(golds), len(calls), fits) is not None:
        return OK
    alone = [g for g in range(len(golds)) if not any(verdicts[g, p].valid for p in range(len(calls)))]
    what = f"gold call {alone[0]} ({_name(golds[alone[0]])}) fits no call" if alone else "no one-to-one match"
    return Verdict(False, "parallel_function_checker_no_order:cannot_find_match", what)


def _name(gold: dict[str, Any]) -> str:
    return next(iter(gold))


def _doc(docs: Sequence[dict[str, Any]], gold: dict[str, Any]) -> dict[str, Any] | None:
    name = _name(gold)
    return next((doc for doc in docs if doc.get("name") == name), None)


# -- one call ------------------------------------------------------------------------------------
def check_call(doc: dict[str, Any] | None, call: Call, gold: dict[str, dict[str, list]], language: Language = "python") -> Verdict:
    """BFCL's simple_function_checker: one decoded call against one gold call and its doc."""
    expected = _name(gold)
    answers = gold[expected]
    name, arguments = call
    if name != expected and not ("." in expected and name == expected.replace(".", "_")):
        return Verdict(False, "simple_function_checker:wrong_func_name", f"function {expected!r} not called (got {name!r})")
    parameters = (doc or {}).get("parameters") or {}
    properties = parameters.get("properties") or {}
    for param in parameters.get("required") or []:
        if param not in arguments:
            return Verdict(False, "simple_function_checker:missing_required", f"missing required parameter {param!r}")
    for param, value in arguments.items():
        if param not in properties or param not in answers:
            return Verdict(False, "simple_function_checker:unexpected_param", f"unexpected parameter {param!r}")
        verdict = _check_param(param, value, properties[param], answers[param], language)
        if not verdict.valid:
            return verdict
    for param, values in answers.items():
        if param not in arguments and "" not in values:
            return Verdict(False, "simple_function_checker:missing_optional",
                           f"parameter {param!r} not given and not optional")
    return OK


def _type_name(schema: Any) -> str:
    declared = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), None)
    return declared if isinstance(declared, str) else "any"


def _check_param(param: str, value: Any, schema: dict[str, Any], answers: list, language: Language) -> Verdict:
    declared = _type_name(schema)
    table = {"python": PYTHON_TYPES, "java": JAVA_TYPES, "javascript": JS_TYPES}[language]
    expected = table.get(declared, str)
    nested: type | None = None
    items = schema.get("items") if isinstance(schema, dict) else None
    nested_name = _type_name(items) if declared in _NESTED[language] and isinstance(items, dict) else None
    if nested_name is not None:
        nested = table.get(nested_name, str)
    if language != "python":
        if type(value) is not str:
            code = "type_error:java" if language == "java" else "type_error:js"
            return Verdict(False, code, f"{param!r}: expected {declared} source text, got {type(value).__name__}")
        value = convert_value(value, declared, nested_name, language)
    if declared == "tuple" and type(value) is tuple:
        value = list(value)
    if language == "python" and declared in ("float", "number") and type(value) is int:
        value = float(value)
    verdict, is_variable = _type_check(param, value, answers, declared, expected, nested)
    if not verdict.valid:
        return verdict
    if not is_variable:
        if expected is dict:
            return _dict_value(param, value, answers)
        if expected is list and nested is dict:
            return _list_of_dicts(param, value, answers)
        if expected is str:
            if _std(value) not in [standardize(a) for a in answers if type(a) is str]:
                return Verdict(False, "value_error:string", f"{param!r}: {value!r} is none of {answers!r}")
            return OK
        if expected is list:
            if [_std(v) for v in value] not in [[_std(v) for v in a] for a in answers if isinstance(a, (list, str))]:
                return Verdict(False, "value_error:list/tuple", f"{param!r}: {value!r} is none of {answers!r}")
            return OK
    if value not in answers:
        return Verdict(False, "value_error:others", f"{param!r}: {value!r} is none of {answers!r}")
    return OK


def _answer_type(answers: list) -> type | None:
    """The type of the gold's first non-optional value (None when all are `""`)."""
    return next((type(a) for a in answers if a != ""), None)


def _type_check(param: str, value: Any, answers: list, declared: str, expected: type,
                nested: type | None) -> tuple[Verdict, bool]:
    """(verdict, is_variable): the value's type against the declared one, or the gold's."""
    gold_type = _answer_type(answers)
    is_variable = gold_type is not None and gold_type is not expected
    if type(value) is expected:
        if nested is None:
            return OK, is_variable
        for answer in answers:
            items = cast(list, value)  # type(value) is expected: a list here
            if type(answer) is not list or all(_type_check(param, v, answer, "", nested, None)[0].valid for v in items):
                return OK, is_variable
        return Verdict(False, "type_error:nested",
                       f"{param!r}: expected {declared} of {nested.__name__}, got {value!r}"), is_variable
    if gold_type is not None and type(value) is gold_type:
        return OK, True
    return Verdict(False, "type_error:simple",
                   f"{param!r}: expected {declared or expected.__name__}, got {type(value).__name__}"), is_variable


def _dict_value(param: str, value: dict, answers: list) -> Verdict:
    """A dict against each gold dict in turn: its keys known to the gold, values in the gold's
    lists (strings standardized), missing gold keys optional. One gold dict fitting is enough."""
    verdict = Verdict(False, "dict_checker:unclear", f"{param!r}: no gold value to compare with")
    for answer in answers:
        if answer == "":
            continue
        if not isinstance(answer, dict):
            verdict = Verdict(False, "dict_checker:unclear", f"{param!r}: the gold value is not a dict")
            continue
        verdict = _one_dict(param, value, answer)
        if verdict.valid:
            return OK
    return verdict


def _options(allowed: Any) -> list:
    """A gold dict's alternatives for one key. BFCL's golds give a list; where one gives a bare
    string, BFCL reads it as a sequence, so as its characters (and `""` is in any string: the
    key may be left out). Mirrored, since its verdicts are the reference."""
    if isinstance(allowed, (list, str)):
        return list(allowed)
    return [allowed]


def _one_dict(param: str, value: dict, answer: dict) -> Verdict:
    for key, item in value.items():
        if key not in answer:
            return Verdict(False, "value_error:dict_key", f"{param!r}: unexpected key {key!r}")
        allowed = _options(answer[key])
        if _std(item) not in [_std(a) for a in allowed]:
            return Verdict(False, "value_error:dict_value", f"{param!r}.{key}: {item!r} is none of {answer[key]!r}")
    for key, allowed in answer.items():
        optional = "" in allowed if isinstance(allowed, (list, str)) else False
        if key not in value and not optional:
            return Verdict(False, "value_error:dict_key", f"{param!r}: missing key {key!r}")
    return OK


def _list_of_dicts(param: str, value: list, answers: list) -> Verdict:
    verdict = Verdict(False, "list_dict_checker:unclear", f"{param!r}: no gold value to compare with")
    for answer in answers:
        if not isinstance(answer, (list, str)) or len(value) != len(answer):
            verdict = Verdict(False, "value_error:list_dict_count", f"{param!r}: {len(value)} dicts, expected {len(answer)}")
            continue
        for item, gold in zip(value, answer):
            verdict = _dict_value(param, item, [gold]) if isinstance(item, dict) else \
                Verdict(False, "value_error:dict_value", f"{param!r}: {item!r} is not a dict")
            if not verdict.valid:
                break
        else:
            return OK
    return verdict
