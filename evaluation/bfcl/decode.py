"""A BFCL result -> the list of calls it makes, decoded the way BFCL decodes it.

A result (the `result` field of a BFCL result line) is either
- the decoded call list of a function-calling model: `[{"func": {"arg": value}}]`, the
  arguments an object or its JSON text (what BFCL's FC handlers store); or
- the model's raw text, in BFCL's prompt format: Python call syntax,
  `[func(a=1, b="x"), other.func(c=[1, 2])]` (one bare call without brackets too; the brackets
  and stray backticks are added or stripped as BFCL does), or Java / JavaScript call syntax in
  those categories (java_js.parse_calls).

Python text is read with the `ast` module and never evaluated: constants, lists, dicts, tuples,
negative numbers, bare names (read as their text, as BFCL does), nested calls (a call with
keyword arguments becomes a nested `{name: args}`, one without is kept as its source text) and
arithmetic on number constants (`3 * 4`; BFCL evaluates such expressions with `eval`, which this
never does: anything but numbers there is a decode error).

Whatever cannot be decoded raises DecodeError with one line; BFCL counts it as "no call"
(correct for irrelevance, wrong elsewhere), and so does eval.
"""

from __future__ import annotations

import ast
import json
import operator
import warnings
from typing import Any

from imaginarium.evaluation.bfcl.checker import Call, Language
from imaginarium.evaluation.bfcl.java_js import DecodeError
from imaginarium.evaluation.bfcl.java_js_calls import parse_calls

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
MAX_TEXT = 100_000  # characters of raw text read; longer output is not a call list anyone wrote


def decode_result(result: Any, language: Language = "python") -> list[Call]:
    """The calls in a result, in order. Raises DecodeError when there are none to read."""
    if isinstance(result, list):
        return decoded_calls(result)
    if isinstance(result, dict):
        return decoded_calls([result])
    if not isinstance(result, str):
        raise DecodeError(f"a result is text or a list of calls, not {type(result).__name__}")
    text = result.strip("`\n ")
    if len(text) > MAX_TEXT:
        raise DecodeError(f"the output is longer than {MAX_TEXT} characters")
    if not text.startswith("["):
        text = "[" + text
    if not text.endswith("]"):
        text = text + "]"
    if language != "python":
        calls = parse_calls(text, language)
        return [(name, dict(args)) for call in calls for name, args in call.items()]
    return python_calls(text)


def decoded_calls(items: list[Any]) -> list[Call]:
    """`[{"func": {...} | "json text"}]` -> calls; each item one name and an object of arguments."""
    calls: list[Call] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or len(item) != 1:
            raise DecodeError(f"call {index}: expected an object with one function name")
        name, arguments = next(iter(item.items()))
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except (json.JSONDecodeError, RecursionError) as exc:
                raise DecodeError(f"call {index} ({name}): arguments are not JSON: {exc}") from None
        if not isinstance(arguments, dict):
            raise DecodeError(f"call {index} ({name}): arguments must be an object")
        calls.append((str(name), arguments))
    return calls


def python_calls(text: str) -> list[Call]:
    """Python call syntax `[f(a=1), g.h(b="x")]` -> calls, without evaluating anything."""
    try:
        with warnings.catch_warnings():  # model text is not our code: its syntax warnings are noise
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(text.strip().strip("'"), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise DecodeError(f"not Python call syntax: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    body = tree.body
    elements = [body] if isinstance(body, ast.Call) else getattr(body, "elts", None)
    if elements is None:
        raise DecodeError("expected a list of calls")
    calls: list[Call] = []
    for element in elements:
        if not isinstance(element, ast.Call):
            raise DecodeError(f"not a call: {_source(element)}")
        try:
            calls.append(_call(element))
        except RecursionError:
            raise DecodeError("the call is nested too deeply") from None
    return calls


def _source(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."


def _call(node: ast.Call) -> Call:
    parts: list[str] = []
    func: ast.expr = node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    name = ".".join(reversed(parts))
    arguments: dict[str, Any] = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            raise DecodeError(f"{name}: **kwargs are not arguments")
        arguments[keyword.arg] = _value(keyword.value)
    return name, arguments


def _value(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = node.operand.value
        if not isinstance(value, (int, float, complex)) or isinstance(value, bool):
            raise DecodeError(f"cannot negate {_source(node.operand)}")
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.List):
        return [_value(item) for item in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_value(item) for item in node.elts)
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise DecodeError("** inside a dict literal")
        keys = [_value(key) for key in node.keys if key is not None]
        if any(isinstance(key, (list, dict)) for key in keys):
            raise DecodeError("a dict key must be a constant")
        return dict(zip(keys, (_value(item) for item in node.values)))
    if isinstance(node, ast.BinOp):
        return _arithmetic(node)
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        if not node.keywords:
            return ast.unparse(node)
        name, arguments = _call(node)
        return {name: arguments}
    if isinstance(node, ast.Subscript):
        return ast.unparse(node.value) + "[" + ast.unparse(node.slice) + "]"
    raise DecodeError(f"unsupported value {_source(node)}")


def _arithmetic(node: ast.BinOp) -> Any:
    """Arithmetic on number constants only, with bounded powers: never `eval`."""
    left, right = _value(node.left), _value(node.right)
    op = _BINARY.get(type(node.op))
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
    if op is None or not numbers:
        raise DecodeError(f"cannot read the expression {_source(node)}")
    if op is operator.pow and (abs(right) > 64 or abs(left) > 10**6):
        raise DecodeError(f"the power {_source(node)} is too large")
    try:
        return op(left, right)
    except (ZeroDivisionError, OverflowError) as exc:
        raise DecodeError(f"{_source(node)}: {exc}") from None


def has_call(result: Any, language: Language = "python") -> bool:
    """BFCL's relevance reading: the result decodes to at least one call with a function name
    (`[]`, `[{}]`, text that is not a call list: no call)."""
    try:
        calls = decode_result(result, language)
    except DecodeError:
        return False
    return bool(calls)
