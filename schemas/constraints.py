"""JSON Schemas that a constrained decoder can enforce: one tool call, or a choice among tools.

A tool's `parameters` schema is written for validation, not for decoding. A decoder compiles it
into a grammar and then can only produce what the grammar allows, so three things matter:

- Termination: a free string (no enum, const, pattern or format) lets a small model ramble until
  max_tokens. `enforceable` bounds it with `maxLength`.
- Closed objects: an open object lets the model invent argument names. `enforceable` closes
  every object that has `properties` (even `{}`: a tool without arguments). A free-form map
  (an object without `properties`) stays open but its values become bounded JSON scalars
  (string up to the cap, number, boolean, null), and an "anything" schema (`{}`, `true`)
  becomes that scalar too: nested free-form values are what decoders cannot bound.
- Decoder-friendly shape: local `$ref`s are inlined (recursion cut at REF_DEPTH by `false`),
  annotations (`examples`, `default`, `$schema`, `$id`, `x-*`, ...) are dropped, so are formats
  outside DECODABLE_FORMATS (outlines_core refuses to compile them), and an
  `allOf` of plain object schemas is merged into one object (outlines_core rejects valid
  values under such an allOf, see benchmarks/results/constraint_enforcement.json).

Every rewrite only removes values: anything valid under `enforceable(schema)` is valid under
`schema` (`format` is an annotation in Draft 2020-12, so dropping one changes no validity for
a validator without a format checker). Inside `not` and `if` nothing is narrowed, since that
would widen the whole.
A string with a pattern or a format gets no `maxLength`: outlines_core replaces the
pattern or format by the length bound when both are present (measured), which would let
values through that the tool rejects.

Which keywords each decoder really enforces was measured by benchmarks/constraint_enforcement.py;
ENFORCED_BY is that table and `unenforced_keywords` reads it, so a caller knows which
constraints still need the jsonschema check after decoding. Also measured: outlines_core emits
object properties in the schema's declared order (xgrammar too by default, per its docs).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from imaginarium.schemas import jsonpointer
from imaginarium.schemas.toolspec import ToolSpec

REF_DEPTH = 3
DECODERS = ("outlines_core", "llguidance", "xgrammar")
# Formats every measured decoder compiles; outlines_core refuses any other string format
# (ipv4, hostname, binary, byte, int64, ...), so `enforceable` drops those (measured too).
DECODABLE_FORMATS = {"date", "date-time", "time", "email", "uri", "uuid"}
# JSON Schema 2020-12 keywords that affect validation, plus title/description (kept for humans).
_KEPT = {
    "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "maxLength", "minLength", "pattern", "format", "maxItems", "minItems", "uniqueItems", "maxContains",
    "minContains", "maxProperties", "minProperties", "required", "dependentRequired", "properties",
    "patternProperties", "additionalProperties", "propertyNames", "items", "prefixItems", "contains",
    "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas", "unevaluatedItems",
    "unevaluatedProperties", "title", "description",
}
_SCHEMA_MAPS = ("properties", "patternProperties", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else",
               "unevaluatedItems", "unevaluatedProperties")
_IN_PLACE = ("allOf", "anyOf", "oneOf", "if", "then", "else")
_MERGEABLE = {"type", "properties", "required", "title", "description"}
# keyword case -> decoders that enforce it, as measured by benchmarks/constraint_enforcement.py
# (outlines_core 0.2.14, llguidance 1.9.1, xgrammar 0.2.8; results/constraint_enforcement.json).
_ALL = frozenset(DECODERS)
_LLG_XGR = frozenset({"llguidance", "xgrammar"})
ENFORCED_BY: dict[str, frozenset[str]] = {
    "type": _ALL, "type list": _ALL,
    "integer minimum": _LLG_XGR, "integer maximum": _LLG_XGR,
    "integer exclusiveMinimum": _LLG_XGR, "integer exclusiveMaximum": _LLG_XGR,
    "number minimum": _LLG_XGR, "number maximum": _LLG_XGR,
    "number exclusiveMinimum": _LLG_XGR, "number exclusiveMaximum": _LLG_XGR,
    "multipleOf": _LLG_XGR,
    "enum": _ALL, "const": _ALL, "pattern": _ALL, "minLength": _ALL, "maxLength": _ALL,
    "minItems": _ALL, "maxItems": _ALL, "uniqueItems": frozenset(), "items": _ALL, "prefixItems": _ALL,
    "format date": _ALL, "format date-time": _ALL, "format time": _ALL, "format email": _ALL,
    "format uri": _ALL, "format uuid": _ALL, "format ipv4": _LLG_XGR,
    "format with maxLength": _LLG_XGR, "pattern with maxLength": _LLG_XGR,
    "additionalProperties false": _ALL, "additionalProperties schema": _ALL, "required": _ALL,
    "properties": _ALL, "minProperties": _LLG_XGR, "maxProperties": _LLG_XGR,
    "propertyNames": frozenset({"xgrammar"}), "dependentRequired": frozenset(),
    "anyOf": _ALL, "oneOf": _ALL, "oneOf exclusivity": frozenset(),
    "allOf": frozenset({"llguidance"}), "not": frozenset(), "$ref": _ALL,
    "free string": frozenset(),  # no decoder bounds a string without maxLength
}
# Cases where a decoder does worse than ignoring the keyword (measured too).
_WORSE = {
    ("uniqueItems", "llguidance"): "refused by llguidance's schema compiler",
    ("propertyNames", "llguidance"): "refused by llguidance's schema compiler",
    ("dependentRequired", "llguidance"): "refused by llguidance's schema compiler",
    ("not", "llguidance"): "refused by llguidance's schema compiler",
    ("oneOf exclusivity", "llguidance"): "overlapping oneOf branches are refused by llguidance's schema compiler",
    ("format ipv4", "outlines_core"): "refused by outlines_core",
    ("allOf", "outlines_core"): "outlines_core rejects valid values under allOf",
}
_FREE_SCALAR = ["string", "number", "boolean", "null"]


def enforceable(schema: Any, *, max_string_length: int = 256, max_array_items: int | None = None) -> Any:
    """A copy of `schema` that a constrained decoder can enforce and that only accepts valid values.

    See the module docstring for each rewrite. `max_array_items`, when given, bounds arrays the
    way `max_string_length` bounds strings (never below an existing minItems).
    """
    if max_string_length < 1:
        raise ValueError("max_string_length must be at least 1")
    return _Rewriter(schema, max_string_length, max_array_items).rewrite(schema, "", (), True)


def call_schema(tool: ToolSpec, *, max_string_length: int = 256) -> dict[str, Any]:
    """The schema of one call of `tool`: `{"name": <its name>, "arguments": {...}}`, closed."""
    return {
        "type": "object",
        "properties": {
            "name": {"const": tool.name},
            "arguments": enforceable(tool.parameters, max_string_length=max_string_length),
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def choice_schema(tools: Iterable[ToolSpec], *, max_string_length: int = 256) -> dict[str, Any]:
    """One call of any of `tools` (the tool list shown to a model); branches differ by the name const."""
    calls = [call_schema(tool, max_string_length=max_string_length) for tool in tools]
    if not calls:
        raise ValueError("choice_schema needs at least one tool")
    return calls[0] if len(calls) == 1 else {"anyOf": calls}


def unenforced_keywords(schema: Any, decoder: str = "outlines_core") -> list[str]:
    """One line per keyword occurrence in `schema` that `decoder` will not enforce.

    E.g. "/properties/count: minimum (integer minimum is not enforced by outlines_core)".
    Keywords that were not measured are reported as such; annotation-only formats (int64, ...)
    are not reported. Values decoded under such a schema still need the jsonschema check.
    """
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r} (known: {', '.join(DECODERS)})")
    lines: list[str] = []
    _collect(schema, "", decoder, lines)
    return lines


class _Rewriter:
    """One pass over a schema. `narrow` is False inside `not` and `if`, where narrowing the
    subschema would widen (or shift) what the whole accepts: there only refs are inlined and
    annotations dropped."""

    def __init__(self, root: Any, max_string_length: int, max_array_items: int | None):
        self.root = root
        self.cap = max_string_length
        self.max_items = max_array_items

    def free_scalar(self) -> dict[str, Any]:
        return {"type": list(_FREE_SCALAR), "maxLength": self.cap}

    def rewrite(self, node: Any, pointer: str, refs: tuple[str, ...], closable: bool, narrow: bool = True) -> Any:
        if narrow and (node is True or node == {}):
            return self.free_scalar()
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            ref = node["$ref"]
            if refs.count(ref) >= REF_DEPTH:
                if not narrow:
                    raise ValueError(f"{pointer or '/'}: recursive $ref {ref!r} inside not/if is not supported")
                return False  # nothing is valid here: still a subset of the recursive original
            node, refs = self.inline_ref(node, pointer), (*refs, ref)
            if not isinstance(node, dict):
                return self.rewrite(node, pointer, refs, closable, narrow)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key not in _KEPT or (key == "additionalProperties" and (value is True or value == {})):
                continue  # annotations; an explicitly open object is the same as an unspecified one
            if key == "format" and value not in DECODABLE_FORMATS:
                continue  # `format` only annotates in 2020-12: dropping it changes no validity
            here = jsonpointer.join(pointer, key)
            inner_narrow = narrow and key not in ("not", "if")
            if key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {k: self.rewrite(v, jsonpointer.join(here, k), refs, True, narrow)
                            for k, v in value.items()}
            elif key in _SCHEMA_LISTS and isinstance(value, list):
                # allOf branches are parts of one object; anyOf/oneOf branches are whole
                # alternatives unless the parent itself declares properties.
                branch_closable = key == "prefixItems" or (key != "allOf" and not _declares_properties(node))
                out[key] = [self.rewrite(v, jsonpointer.join(here, i), refs, branch_closable, narrow)
                            for i, v in enumerate(value)]
            elif key in _SCHEMA_ONE:
                branch_closable = key not in _IN_PLACE or not _declares_properties(node)
                out[key] = self.rewrite(value, here, refs, branch_closable, inner_narrow)
            else:
                out[key] = copy.deepcopy(value)
        if not narrow:
            return out
        if not out.keys() - {"title", "description"}:  # an "anything" schema
            return {**out, **self.free_scalar()}
        _merge_all_of(out)
        self.bound_string(out)
        self.bound_array(out)
        if closable:
            self.close_object(out)
        return out

    def inline_ref(self, node: dict, pointer: str) -> Any:
        """The ref's target, with the ref's sibling keywords added (allOf where they overlap)."""
        ref = node["$ref"]
        try:
            target = jsonpointer.resolve(self.root, ref)
        except KeyError:
            raise ValueError(f"{pointer or '/'}: $ref {ref!r} does not resolve inside the schema") from None
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        if not siblings:
            return target
        if not isinstance(target, dict):
            return {"allOf": [target, siblings]}
        if siblings.keys() & target.keys() - {"title", "description"}:
            return {"allOf": [target, siblings]}
        return {**target, **siblings}

    def bound_string(self, schema: dict) -> None:
        if not _declares("string", schema) or "enum" in schema or "const" in schema:
            return
        if "pattern" in schema or "format" in schema:
            return  # see module docstring: a length bound would replace them in outlines_core
        bound = max(self.cap, schema.get("minLength", 0))
        schema["maxLength"] = min(schema.get("maxLength", bound), bound)

    def bound_array(self, schema: dict) -> None:
        if self.max_items is None or not _declares("array", schema) or "enum" in schema or "const" in schema:
            return
        bound = max(self.max_items, schema.get("minItems", 0))
        schema["maxItems"] = min(schema.get("maxItems", bound), bound)

    def close_object(self, schema: dict) -> None:
        if "enum" in schema or "const" in schema or "additionalProperties" in schema:
            return
        if not (_declares("object", schema) or ("type" not in schema and _declares_properties(schema))):
            return
        if any(_declares_properties_any(schema[k]) for k in _IN_PLACE if k in schema):
            return  # property names also come from allOf/anyOf/...: closing here would reject them
        if "properties" in schema or "patternProperties" in schema:  # `properties: {}`: no arguments at all
            schema["additionalProperties"] = False
        else:
            schema["additionalProperties"] = self.free_scalar()


def _declares(kind: str, schema: dict) -> bool:
    """Whether `schema` declares a `type` that admits `kind`."""
    declared = schema.get("type")
    kinds = declared if isinstance(declared, list) else [declared]
    return kind in kinds


def _declares_properties(schema: dict) -> bool:
    return bool(schema.get("properties") or schema.get("patternProperties"))


def _declares_properties_any(value: Any) -> bool:
    branches = value if isinstance(value, list) else [value]
    return any(isinstance(b, dict) and (_declares_properties(b) or "additionalProperties" in b) for b in branches)


def _merge_all_of(schema: dict) -> None:
    """Fold an allOf of plain object schemas (distinct property names) into `schema` itself."""
    branches = schema.get("allOf")
    if not isinstance(branches, list) or not all(isinstance(b, dict) and set(b) <= _MERGEABLE for b in branches):
        return
    if any(b.get("type", "object") != "object" for b in branches) or schema.get("type", "object") != "object":
        return
    names = [name for part in (schema, *branches) for name in part.get("properties", {})]
    if len(names) != len(set(names)):
        return
    del schema["allOf"]
    schema["type"] = "object"
    for branch in branches:
        schema.setdefault("properties", {}).update(branch.get("properties", {}))
        required = [*schema.get("required", []), *branch.get("required", [])]
        if required:
            schema["required"] = list(dict.fromkeys(required))


def _collect(node: Any, pointer: str, decoder: str, lines: list[str]) -> None:
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        here = jsonpointer.join(pointer, key)
        case = _case(key, value, node)
        if case is not None:
            _report(case, key, pointer, decoder, lines)
        if key in ("properties", "patternProperties", "dependentSchemas", "$defs", "definitions") and isinstance(value, dict):
            for name, sub in value.items():
                _collect(sub, jsonpointer.join(here, name), decoder, lines)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            for index, sub in enumerate(value):
                _collect(sub, jsonpointer.join(here, index), decoder, lines)
        elif key in _SCHEMA_ONE:
            _collect(value, here, decoder, lines)


def _case(key: str, value: Any, schema: dict) -> str | None:
    """The measured case a keyword occurrence falls under; None for annotations and no-ops."""
    if key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        declared = schema.get("type")
        kinds = declared if isinstance(declared, list) else [declared]
        return f"{'integer' if 'integer' in kinds and 'number' not in kinds else 'number'} {key}"
    if key == "type":
        return "type list" if isinstance(value, list) else "type"
    if key == "format":
        if f"format {value}" not in ENFORCED_BY:
            return None  # not a format any validator here checks (int64, binary, ...): an annotation
        return "format with maxLength" if "maxLength" in schema else f"format {value}"
    if key == "pattern" and "maxLength" in schema:
        return "pattern with maxLength"
    if key == "additionalProperties":
        return None if value is True else "additionalProperties false" if value is False else "additionalProperties schema"
    if key == "oneOf":
        return "oneOf exclusivity"
    if key == "uniqueItems" and value is False:
        return None
    if key in ENFORCED_BY or key in _KEPT - {"title", "description"} or key == "$ref":
        return key
    return None


def _report(case: str, key: str, pointer: str, decoder: str, lines: list[str]) -> None:
    enforced = ENFORCED_BY.get(case)
    if enforced is None:
        lines.append(f"{pointer or '/'}: {key} (not measured; assume {decoder} does not enforce it)")
    elif decoder not in enforced:
        why = _WORSE.get((case, decoder), f"{case} is not enforced by {decoder}")
        lines.append(f"{pointer or '/'}: {key} ({why})")


def other_than(schema: dict[str, Any], values: list[Any]) -> dict[str, Any] | None:
    """`schema` narrowed to values other than `values` (strings by a pattern, integers by ranges
    around them), so a decoder cannot repeat them; None where that cannot be written (numbers,
    objects, a schema with its own pattern or enum). Used to make a parallel call differ from the
    calls of its turn: llguidance enforces patterns and bounds (ENFORCED_BY)."""
    kind = schema.get("type")
    if "enum" in schema or "const" in schema:
        remaining = [v for v in schema.get("enum", [schema.get("const")]) if v not in values]
        return {**schema, "enum": remaining} if remaining else None
    if kind == "string" and "format" not in schema:
        strings = [v for v in values if isinstance(v, str)]
        limit = schema.get("maxLength", max([64, *map(len, strings)]))
        excluded = "^" + _not_in(strings, limit) + "$"
        if "pattern" not in schema:
            return {**schema, "pattern": excluded}
        # both patterns must hold: llguidance intersects the patterns of an allOf
        return {**{k: v for k, v in schema.items() if k != "pattern"},
                "allOf": [{"pattern": schema["pattern"]}, {"pattern": excluded}]}
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        points = sorted({v for v in values if isinstance(v, int) and not isinstance(v, bool)})
        ranges: list[dict[str, Any]] = []
        start = low
        for point in points:
            if (start is None or point - 1 >= start) and (high is None or point - 1 <= high):
                ranges.append({"type": "integer", **({"minimum": start} if start is not None else {}), "maximum": point - 1})
            start = point + 1
        if high is None or start is None or start <= high:
            ranges.append({"type": "integer", **({"minimum": start} if start is not None else {}),
                           **({"maximum": high} if high is not None else {})})
        return {"anyOf": ranges} if ranges else None
    return None


def _not_in(values: list[str], limit: int) -> str:
    """A regex for every string of at most `limit` characters that is none of `values`: at each
    prefix of a value, end there (if that prefix is no value), or take a character that leads
    away from every value, or follow a value one character further."""
    trie: dict[str, Any] = {}
    for value in values:
        node = trie
        for char in value:
            node = node.setdefault(char, {})
        node[""] = True  # a value ends here

    def escape(char: str) -> str:
        return "\\" + char if char in r"\^$.|?*+()[]{}-/" else char

    def walk(node: dict[str, Any], depth: int) -> str | None:
        """The regex for the rest of a string at this trie node; None where nothing may follow
        (no lookarounds: constrained decoders do not take them)."""
        children = [c for c in node if c]
        options = [] if node.get("") else [""]
        if depth < limit:
            away = "[^" + "".join(escape(c) for c in children) + "\\n]" if children else "[^\\n]"
            options.append(f"{away}[^\\n]{{0,{max(limit - depth - 1, 0)}}}")
            for c in children:
                rest = walk(node[c], depth + 1)
                if rest is not None:
                    options.append(escape(c) + rest)
        if not options:
            return None
        return "(?:" + "|".join(options) + ")" if len(options) > 1 else options[0]

    return walk(trie, 0) or "[^\\s\\S]"
