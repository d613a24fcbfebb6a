"""BFCL's Java and JavaScript categories (simple_java, simple_javascript), read without BFCL.

There a model writes its call in Java or JS syntax; BFCL decodes the text with tree-sitter into
`[{name: {arg: "source text"}}]` and its checker reads each argument's text as the declared type
before comparing it with the possible answers. This module reads argument text as a type
(`convert_value`) and writes a value as text (`encode_value`); java_js_calls.py decodes call
text (`parse_calls`). Both without tree-sitter, never eval, with BFCL's results, quirks included, so that a score here is the
leaderboard's: tests/test_bfcl_java_js.py holds it to BFCL's own code. Quirks kept:
- Java `char` never reads (BFCL's pattern cannot match): the text stays as it is, quotes and all;
- a Java Array of String keeps its elements' quotes (an ArrayList's lose them);
- BFCL's Java decoder drops an anonymous class body, so `new HashMap<>() {{ put(..); }}` reads as {};
  it also joins a value's tokens without spaces (`new int[]{1,2}`), except inside calls;
- a JS object's values lose their quotes before they are read (`{a: "5"}` is {"a": 5}); 2-D arrays
  are read untyped; one pair of quotes comes off any JS argument text (`"a" + "b"` gives `a" + "b`);
- one call is decoded: Java's first anywhere in the text, JS's first statement that is a call
  (`[f(a=1), g(b=2)]` is none); positional arguments are dropped, but a positional name is a
  DecodeError here (BFCL files it under None, which its checker always rejects);
- comments are nodes of BFCL's tree, which it picks by position: `f(a/*c*/=1)` gives a the value
  "=", `f(a=/*c*/1)` "/*c*/", and a JS `f/*c*/(a=1)` no arguments;
- a Java statement without `;` decodes where tree-sitter inserts it rather than dropping the
  statement: after a call, at the end or before another call, unless the call is the first
  statement and at most 10 bytes long (a line break counts 30).
Where tree-sitter repairs other broken text (a missing bracket inserted, a stray word skipped),
where the text holds statements other than expressions, `return` and labels, or a comment inside
a Java value, parse_calls raises DecodeError, though BFCL may decode something: the one way the
two differ.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Literal

Language = Literal["java", "javascript"]


class DecodeError(ValueError):
    """Raw call text that cannot be read as calls (one-line message)."""


class _Unreadable(Exception):
    """Where BFCL's converter raises (a type it does not implement): the text stays unchanged."""


# ---- reading argument text as a type (BFCL's type converters) --------------------------------

def _whole(pattern: str, text: str) -> bool:
    """BFCL's `re.match("^...$")`: `$` also matches before one final newline."""
    return re.fullmatch(f"(?:{pattern})\n?", text) is not None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:  # past Python's 4300-digit limit BFCL raises
        raise _Unreadable from exc


def _literal(text: str, java: bool) -> Any:
    """An untyped element: bool, quoted string, (Java: 5L, 1.5f), int, float, else the text."""
    text = text if java else text.strip()
    if text in ("true", "false"):
        return text == "true"
    if text[:1] == text[-1:] == '"' or (not java and text[:1] == text[-1:] == "'"):
        return text[1:-1]
    if java and _whole(r"-?\d+[lL]", text):
        return _int(text[:-1])
    if java and _whole(r"-?\d+(\.\d+)?([eE][+-]?\d+)?[fF]", text):
        return float(text.rstrip("\n")[:-1])
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    return text


def _java(text: str, type_name: str, nested: str | None) -> Any:
    def element(item: str) -> Any:
        return _java(item, nested, None) if nested else _literal(item, java=True)

    if type_name in ("byte", "short", "integer"):
        return _int(text) if _whole(r"-?\d+", text) else text
    if type_name == "long":
        return _int(text.rstrip("\n")[:-1]) if _whole(r"-?\d+[lL]", text) else text
    if type_name == "float":
        return float(text.rstrip("\n")[:-1]) if _whole(r"-?\d+(\.\d+)?([eE][+-]?\d+)?[fF]", text) else text
    if type_name == "double":
        return float(text) if _whole(r"-?\d+(\.\d+)?([eE][+-]?\d+)?", text) else text
    if type_name == "boolean":
        return text == "true" if text in ("true", "false") else text
    if type_name in ("char", "String", "any"):
        return text
    if type_name == "Array":
        found = re.search(r"new\s+\w+\[\]\s*\{(.*?)\}", text)
        return [element(item.strip()) for item in found.group(1).split(",") if item.strip()] if found else text
    if type_name == "ArrayList":
        if found := re.search(r"new\s+ArrayList<\w*>\(Arrays\.asList\((.+?)\)\)", text):
            items = found.group(1).split(",")
        elif found := re.search(r"new\s+ArrayList<\w*>\(\)\s*\{\{\s*(.+?)\s*\}\}", text, re.DOTALL):
            items = re.findall(r"add\((.+?)\)", found.group(1))
        else:
            return [] if re.search(r"new\s+ArrayList<\w*>\(\)", text) else text
        return [item.strip()[1:-1] if nested in ("char", "String") else element(item.strip()) for item in items]
    if type_name == "HashMap":
        if found := re.search(r"new\s+HashMap<.*?>\s*\(\)\s*\{\s*\{?\s*(.*?)\s*\}?\s*\}", text, re.DOTALL):
            return {key: _literal(value.strip(), java=True) for key, value in re.findall(r'put\("(.*?)",\s*(.*?)\)', found.group(1))}
        return {} if re.search(r"new\s+HashMap<.*?>\s*\(\)", text) else text
    raise _Unreadable(type_name)  # Set, Hashtable, Queue, Stack and names BFCL does not know


def _js(text: str, type_name: str, nested: str | None) -> Any:
    if type_name == "String":
        return text[1:-1] if text[:1] == text[-1:] and text[:1] in ("'", '"') else text
    if type_name == "integer":
        return _int(text) if _whole(r"-?\d+", text) else text
    if type_name == "float":
        return float(text) if _whole(r"-?\d+(\.\d+)?", text) else text
    if type_name == "Bigint":
        return _int(text[:-1]) if _whole(r"-?\d+n", text) else text
    if type_name == "Boolean":
        return text == "true" if text in ("true", "false") else text
    if type_name == "any":
        return text
    if type_name == "array":
        return _js_array(text.strip(), nested)
    if type_name == "dict":
        return _js_dict(text.strip())
    raise _Unreadable(type_name)


def _js_array(code: str, nested: str | None) -> Any:
    """`[..]`, `new Array(..)` or a 2-D `[[..], [..]]`; on any failure BFCL returns the stripped text."""
    rows = _two_d(code)
    if rows is not None:  # items of a 2-D array are read untyped
        inner = [row.strip() for row in re.findall(r"\[(.*?)\]", rows)]
        inner[0] = inner[0][1:] if inner[0].startswith("[") else inner[0]
        return [[_literal(item.strip(), java=False) for item in row.split(",")] for row in inner]
    found = re.match(r"\[(.*?)\]|\bnew\s+Array\((.*?)\)", code)
    if not found:
        return code
    body = (found.group(1) if found.group(1) is not None else found.group(2)).strip()
    items = [item.strip() for item in body.split(",")] if body else []
    try:
        if nested:
            return [_js(item, nested, "String" if item[:1] in ("'", '"') else None) for item in items]
        return [_literal(item, java=False) for item in items]
    except _Unreadable:
        return code


def _two_d(code: str) -> str | None:
    """The match of BFCL's 2-D array pattern (`[[..], [..]]`, `new Array([..], ..)`) at the start of
    `code`: the same match, found right to left in linear time, where the regex backtracks
    exponentially when it fails (30 rows and no closing bracket take hours)."""
    head = re.match(r"\[\s*\[|\bnew\s+Array\(\s*\[", code)
    if not head:
        return None
    closer, size = ("]" if code.startswith("[") else ")"), len(code)
    space, newline, good = [size] * (size + 1), [size] * (size + 1), [-1] * (size + 2)
    ends: dict[int, int] = {}

    def row(start: int) -> int | None:  # after a row's `[`: the first `]` on its line from which the rest matches
        end = good[start]
        return ends[end] if end != -1 and end < newline[start] else None

    def rest(at: int) -> int | None:  # `(,\s*\[ row)*` then the closer: one more row first, as `*` is greedy
        if code.startswith(",", at) and code.startswith("[", space[at + 1]) and (end := row(space[at + 1] + 1)) is not None:
            return end
        return at + 1 if code.startswith(closer, at) else None

    for at in range(size - 1, -1, -1):
        space[at] = space[at + 1] if code[at].isspace() else at
        newline[at] = at if code[at] == "\n" else newline[at + 1]
        good[at] = good[at + 1]
        if code[at] == "]" and (end := rest(space[at + 1])) is not None:
            good[at], ends[at] = at, end
    end = row(head.end())
    return None if end is None else code[:end]


def _js_dict(code: str) -> Any:
    """`{key: value, ...}` up to the first `}`; keys and plain values lose their quotes."""
    if code == "{}":
        return {}
    found = re.match(r"\{(.*?)\}", code)
    if not found:
        return code
    result: dict[str, Any] = {}
    for key, value in re.findall(r"([^:]+):\s*(.*?)(?:,\s*(?=[^,]+:)|$)", found.group(1)):
        value = value.strip()
        if value.startswith("[") and value.endswith("]"):
            result[key.strip().strip("'\"")] = _js_array(value, None)
        elif value.startswith("{") and value.endswith("}"):
            result[key.strip().strip("'\"")] = _js_dict(value)
        else:
            result[key.strip().strip("'\"")] = _literal(value.strip("'\""), java=False)
    return result


def convert_value(value: str, type_name: str, nested_type: str | None, language: Language) -> Any:
    """BFCL's reading of one argument's source text as its declared type (Java "50L" as long -> 50,
    "true" as boolean -> True, "new int[]{1, 2}" as Array of integer -> [1, 2], a HashMap literal -> dict;
    JS "[1, 2]" as array, "{a: 1}" as dict ...). Text that does not read as the type stays a string,
    as in BFCL. Where BFCL's converter raises instead (Java Set, Queue, Stack, Hashtable, a type name
    it does not know, a number past Python's 4300 digits) the text comes back unchanged: never raises.
    `nested_type` (the items' type) matters only for Array, ArrayList and array, as in BFCL."""
    try:
        return _java(value, type_name, nested_type) if language == "java" else _js(value, type_name, nested_type)
    except _Unreadable:
        return value


# ---- writing a value as source text -----------------------------------------------------------

_JAVA_ITEM = {"integer": "int", "long": "long", "short": "short", "byte": "byte", "double": "double",
              "float": "float", "boolean": "boolean", "char": "char", "String": "String"}
_NAME = re.compile(r"(?!(?:true|false|null|undefined|this|new)\b)[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")


def _quote(text: str, mark: str = '"') -> str:
    escapes = {"\\": "\\\\", mark: "\\" + mark, "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return mark + "".join(escapes.get(char, char) for char in text) + mark


def _number(value: Any, suffix: str = "") -> str:
    """A finite number in plain decimal notation (BFCL's float patterns take no exponent in JS)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value in (float("inf"), -float("inf")):
        raise ValueError(f"{value!r} is not a finite number")
    text = str(value) if isinstance(value, int) else format(Decimal(repr(value)), "f")
    return text + suffix


def _reads_as_itself(text: str, java: bool) -> bool:
    """Whether `text` written bare as an argument decodes to exactly `text`."""
    from imaginarium.evaluation.bfcl.java_js_calls import parse_calls  # it imports this module

    try:
        return parse_calls(f"f(x={text});" if java else f"f(x={text})", "java" if java else "javascript") == [{"f": {"x": text}}]
    except DecodeError:
        return False


def _encode(value: Any, type_name: str | None, nested: str | None, java: bool, top: bool = False) -> str:
    if isinstance(value, str):  # a variable or expression (BFCL's "is_variable" answers, `any`) is written bare
        if type_name not in ("String", "char", None) and (_reads_as_itself(value, java) if top else _NAME.fullmatch(value)):
            return value
        return _quote(value, "'" if java and type_name == "char" and len(value) == 1 else '"')
    if isinstance(value, bool):
        if type_name not in ("boolean", "Boolean", "any", None):
            raise ValueError(f"{value!r} is not a {type_name}")
        return "true" if value else "false"
    if isinstance(value, int | float) and type_name in ("any", None):
        return _number(value, "L" if java and isinstance(value, int) and not -2**31 <= value < 2**31 else "")
    if isinstance(value, int) and type_name in ("byte", "short", "integer", "long", "Bigint"):
        return _number(value, {"long": "L", "Bigint": "n"}.get(type_name, ""))
    if isinstance(value, int | float) and type_name in ("float", "double"):
        return _number(value, "f" if java and type_name == "float" else "")
    if isinstance(value, list) and type_name in ("Array", "ArrayList", "array", "any", None):
        items = [_encode(item, nested, None, java) for item in value]
        if not java:
            return "[" + ", ".join(items) + "]"
        if type_name == "ArrayList":
            return f"new ArrayList<>(Arrays.asList({', '.join(items)}))" if items else "new ArrayList<>()"
        return f"new {_JAVA_ITEM.get(nested or '', 'Object')}[]{{{', '.join(items)}}}"
    if isinstance(value, dict) and type_name in ("HashMap", "dict", "any", None) and all(isinstance(key, str) for key in value):
        pairs = {key: _encode(item, None, None, java) for key, item in value.items()}
        if not java:
            return "{" + ", ".join(f"{key if _NAME.fullmatch(key) else _quote(key)}: {item}" for key, item in pairs.items()) + "}"
        puts = " ".join(f"put({_quote(key)}, {item});" for key, item in pairs.items())
        return f"new HashMap<String, Object>() {{{{ {puts} }}}}" if value else "new HashMap<>()"
    raise ValueError(f"{value!r} cannot be written as {'Java' if java else 'JavaScript'} {type_name}")


def encode_value(value: Any, type_name: str, nested_type: str | None, language: Language) -> str:
    """The inverse of convert_value: a possible-answer value -> the source text a model writes for it
    (a string literal for String, `50L` for long, `new int[]{1, 2}`, `new HashMap<..>() {{ put(..); }}`,
    `[1, 2]`, `{a: "x"}` ...; a string for another type, `any` too, is a variable or expression and is
    written bare when it decodes as itself). convert_value gives the value back from this text, or,
    for a Java string literal (BFCL's decoder, not its converter, takes the quotes off), from the text
    parse_calls decodes for it, wherever BFCL can read the type; the module docstring lists where it
    cannot. Raises ValueError for a value the type cannot hold (a float as integer, NaN, a list as
    String) and for a type BFCL does not read (Java Set, Queue, Stack, Hashtable)."""
    if type_name not in (_JAVA_TYPES if language == "java" else _JS_TYPES):
        raise ValueError(f"BFCL does not read {language} type {type_name!r}")
    return _encode(value, type_name, nested_type, language == "java", top=True)


_JAVA_TYPES = {"byte", "short", "integer", "long", "float", "double", "boolean", "char", "String", "any", "Array", "ArrayList", "HashMap"}
_JS_TYPES = {"String", "integer", "float", "Bigint", "Boolean", "dict", "array", "any"}
