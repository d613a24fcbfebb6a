"""Which JSON Schema keywords does each constrained decoder really enforce? Measured, not guessed.

For every keyword case, the schema is compiled by each backend's own JSON-Schema-to-grammar
compiler and two JSON texts are run through it: one valid instance and one that violates only
that keyword. A keyword counts as enforced by a decoder when the valid text is accepted and the
violating text is rejected. No model and no tokenizer vocabulary are needed:

- outlines_core (Outlines' default JSON backend): `build_regex_from_schema`, then `re.fullmatch`.
- llguidance: `LLMatcher.grammar_from_json_schema` with a byte-level tokenizer (one token per
  byte), text fed byte by byte, then `is_accepting()`.
- xgrammar: `Grammar.from_json_schema` compiled with an empty vocabulary, `accept_string` then
  `is_terminated()`.

It also compiles `call_schema` for every ToolBench tool of the STE data with each backend and
times it. Results go to benchmarks/results/constraint_enforcement.json; the `enforced_by` table
there is what `imaginarium.schemas.constraints.ENFORCED_BY` encodes.

Run: TORCHDYNAMO_DISABLE=1 .venv/bin/python benchmarks/constraint_enforcement.py
"""

from __future__ import annotations

import json
import platform
import re
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jsonschema

from imaginarium.atomic import atomic_write_text

RESULTS = Path(__file__).parent / "results" / "constraint_enforcement.json"
TOOLBENCH = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ste" / "tool_metadata" / "API_descriptions.json"
DECODERS = ("outlines_core", "llguidance", "xgrammar")


def wrap(schema: dict[str, Any]) -> dict[str, Any]:
    """The keyword under test as the value of a required property, as in a tool's arguments."""
    return {"type": "object", "properties": {"v": schema}, "required": ["v"], "additionalProperties": False}


def obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "additionalProperties": False}


INT = {"type": "integer"}
INTS = {"type": "array", "items": INT}

# (keyword, schema, valid instance, instance that violates only that keyword)
CASES: list[tuple[str, dict[str, Any], Any, Any]] = [
    ("type", wrap(INT), {"v": 3}, {"v": "x"}),
    ("type list", wrap({"type": ["integer", "null"]}), {"v": None}, {"v": "x"}),
    ("integer minimum", wrap({"type": "integer", "minimum": 5}), {"v": 7}, {"v": 2}),
    ("integer maximum", wrap({"type": "integer", "maximum": 5}), {"v": 3}, {"v": 9}),
    ("integer exclusiveMinimum", wrap({"type": "integer", "exclusiveMinimum": 5}), {"v": 6}, {"v": 5}),
    ("integer exclusiveMaximum", wrap({"type": "integer", "exclusiveMaximum": 5}), {"v": 4}, {"v": 5}),
    ("number minimum", wrap({"type": "number", "minimum": 1.5}), {"v": 2.5}, {"v": 0.5}),
    ("number maximum", wrap({"type": "number", "maximum": 1.5}), {"v": 0.5}, {"v": 2.5}),
    ("number exclusiveMinimum", wrap({"type": "number", "exclusiveMinimum": 1.5}), {"v": 2.0}, {"v": 1.5}),
    ("number exclusiveMaximum", wrap({"type": "number", "exclusiveMaximum": 1.5}), {"v": 1.0}, {"v": 1.5}),
    ("multipleOf", wrap({"type": "integer", "multipleOf": 3}), {"v": 6}, {"v": 7}),
    ("enum", wrap({"enum": ["a", "b"]}), {"v": "a"}, {"v": "c"}),
    ("const", wrap({"const": "a"}), {"v": "a"}, {"v": "b"}),
    ("pattern", wrap({"type": "string", "pattern": "^[a-z]{3}$"}), {"v": "abc"}, {"v": "ABCD"}),
    ("minLength", wrap({"type": "string", "minLength": 3}), {"v": "abcd"}, {"v": "ab"}),
    ("maxLength", wrap({"type": "string", "maxLength": 3}), {"v": "ab"}, {"v": "abcdef"}),
    ("minItems", wrap({**INTS, "minItems": 2}), {"v": [1, 2]}, {"v": [1]}),
    ("maxItems", wrap({**INTS, "maxItems": 2}), {"v": [1]}, {"v": [1, 2, 3]}),
    ("uniqueItems", wrap({**INTS, "uniqueItems": True}), {"v": [1, 2]}, {"v": [1, 1]}),
    ("items", wrap(INTS), {"v": [1]}, {"v": ["x"]}),
    ("prefixItems", wrap({"type": "array", "prefixItems": [INT, {"type": "string"}]}), {"v": [1, "a"]}, {"v": ["a", 1]}),
    ("format date", wrap({"type": "string", "format": "date"}), {"v": "2024-01-31"}, {"v": "yesterday"}),
    ("format date-time", wrap({"type": "string", "format": "date-time"}), {"v": "2024-01-31T10:00:00Z"}, {"v": "soon"}),
    ("format time", wrap({"type": "string", "format": "time"}), {"v": "10:00:00Z"}, {"v": "noon"}),
    ("format email", wrap({"type": "string", "format": "email"}), {"v": "a@b.com"}, {"v": "not an email"}),
    ("format uri", wrap({"type": "string", "format": "uri"}), {"v": "https://example.com/x"}, {"v": "not a uri"}),
    ("format uuid", wrap({"type": "string", "format": "uuid"}), {"v": "123e4567-e89b-12d3-a456-426614174000"}, {"v": "xyz"}),
    # Does adding maxLength keep a format / pattern enforced? (outlines_core: the bound replaces it.)
    ("format with maxLength", wrap({"type": "string", "format": "email", "maxLength": 20}), {"v": "a@b.com"}, {"v": "no email"}),
    ("pattern with maxLength", wrap({"type": "string", "pattern": "^[a-z]+$", "maxLength": 5}), {"v": "abc"}, {"v": "ABC"}),
    ("format ipv4", wrap({"type": "string", "format": "ipv4"}), {"v": "10.0.0.1"}, {"v": "999.1"}),
    ("additionalProperties false", obj(a=INT), {"a": 1}, {"a": 1, "b": 2}),
    ("additionalProperties schema", wrap({"type": "object", "additionalProperties": INT}), {"v": {"x": 1}}, {"v": {"x": "s"}}),
    ("required", {**obj(a=INT, b=INT), "required": ["a", "b"]}, {"a": 1, "b": 2}, {"a": 1}),
    ("properties", wrap({**obj(n=INT), "required": ["n"]}), {"v": {"n": 1}}, {"v": {"n": "x"}}),
    ("minProperties", wrap({"type": "object", "additionalProperties": INT, "minProperties": 2}), {"v": {"a": 1, "b": 2}}, {"v": {"a": 1}}),
    ("maxProperties", wrap({"type": "object", "additionalProperties": INT, "maxProperties": 1}), {"v": {"a": 1}}, {"v": {"a": 1, "b": 2}}),
    ("propertyNames", wrap({"type": "object", "additionalProperties": INT, "propertyNames": {"maxLength": 3}}),
     {"v": {"ab": 1}}, {"v": {"abcdef": 1}}),
    ("dependentRequired", {**obj(a=INT, b=INT), "dependentRequired": {"a": ["b"]}}, {"a": 1, "b": 2}, {"a": 1}),
    ("anyOf", wrap({"anyOf": [INT, {"type": "string"}]}), {"v": 1}, {"v": True}),
    ("oneOf", wrap({"oneOf": [INT, {"type": "string"}]}), {"v": 1}, {"v": True}),
    ("oneOf exclusivity", wrap({"oneOf": [{"type": "integer", "minimum": 0}, {"type": "integer", "maximum": 10}]}), {"v": 20}, {"v": 5}),
    ("allOf", wrap({"allOf": [{**obj(a=INT), "additionalProperties": True, "required": ["a"]},
                              {"type": "object", "properties": {"b": INT}, "required": ["b"]}]}),
     {"v": {"a": 1, "b": 2}}, {"v": {"a": 1}}),
    ("not", wrap({"type": "integer", "not": {"const": 3}}), {"v": 4}, {"v": 3}),
    # Not a keyword: does a string without maxLength stay unbounded? (why enforceable adds one)
    ("free string", wrap({"type": "string"}), {"v": "abc"}, {"v": "x" * 10_000}),
    ("$ref", {"$defs": {"Mark": {"enum": ["x", "o"]}}, **wrap({"$ref": "#/$defs/Mark"})}, {"v": "x"}, {"v": "z"}),
]


class _ByteTokenizer:
    """A tokenizer with one token per byte (plus EOS), so llguidance can be fed plain text."""

    eos_token_id = 256
    bos_token_id = None
    special_token_ids = (256,)
    tokens = [bytes([b]) for b in range(256)] + [b"<eos>"]

    def __call__(self, text: str | bytes) -> list[int]:
        return list(text.encode("utf-8") if isinstance(text, str) else text)


def outlines_core_acceptor(schema: dict[str, Any]) -> Callable[[str], bool]:
    from outlines_core.json_schema import build_regex_from_schema

    pattern = re.compile(build_regex_from_schema(json.dumps(schema)))
    return lambda text: pattern.fullmatch(text) is not None


_LLG_TOKENIZER = None


def llguidance_acceptor(schema: dict[str, Any]) -> Callable[[str], bool]:
    import llguidance

    global _LLG_TOKENIZER
    if _LLG_TOKENIZER is None:
        _LLG_TOKENIZER = llguidance.LLTokenizer(llguidance.TokenizerWrapper(_ByteTokenizer()))
    grammar = llguidance.LLMatcher.grammar_from_json_schema(schema)
    error = llguidance.LLMatcher.validate_grammar(grammar, _LLG_TOKENIZER)
    if error:
        raise ValueError(error)

    def accepts(text: str) -> bool:
        matcher = llguidance.LLMatcher(_LLG_TOKENIZER, grammar, log_level=0)
        consumed = matcher.consume_tokens(list(text.encode("utf-8")))
        return consumed and not matcher.is_error() and matcher.is_accepting()

    return accepts


def xgrammar_acceptor(schema: dict[str, Any]) -> Callable[[str], bool]:
    import xgrammar

    grammar = xgrammar.Grammar.from_json_schema(json.dumps(schema))
    compiled = xgrammar.GrammarCompiler(xgrammar.TokenizerInfo([]), cache_enabled=False).compile_grammar(grammar)

    def accepts(text: str) -> bool:
        matcher = xgrammar.GrammarMatcher(compiled, terminate_without_stop_token=True)
        return matcher.accept_string(text) and matcher.is_terminated()

    return accepts


ACCEPTORS = {"outlines_core": outlines_core_acceptor, "llguidance": llguidance_acceptor, "xgrammar": xgrammar_acceptor}


def run_case(decoder: str, schema: dict[str, Any], valid: Any, invalid: Any) -> str:
    """enforced | not enforced | rejects valid | compile error: ..."""
    try:
        accepts = ACCEPTORS[decoder](schema)
    except Exception as exc:  # a backend refusing the schema is a result, not a crash
        return f"compile error: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    if not accepts(json.dumps(valid, separators=(",", ":"))):
        return "rejects valid"
    return "not enforced" if accepts(json.dumps(invalid, separators=(",", ":"))) else "enforced"


def enforcement_table() -> dict[str, Any]:
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    cases = {}
    for keyword, schema, valid, invalid in CASES:
        validator = jsonschema.Draft202012Validator(schema, format_checker=checker)
        assert validator.is_valid(valid), (keyword, valid)
        cases[keyword] = {
            "schema": schema,
            "valid": valid,
            "violating": invalid,
            "jsonschema_rejects_violating": not validator.is_valid(invalid),
            **{decoder: run_case(decoder, schema, valid, invalid) for decoder in DECODERS},
        }
    enforced_by = {k: sorted(d for d in DECODERS if case[d] == "enforced") for k, case in cases.items()}
    return {"cases": cases, "enforced_by": enforced_by}


FORMATS = ("date", "date-time", "time", "email", "uri", "uuid", "ipv4", "ipv6", "hostname", "uri-reference",
           "duration", "binary", "byte", "int32", "int64", "password")


def formats_compiled() -> dict[str, list[str]]:
    """Per decoder, the string formats its schema compiler accepts (the others fail to compile)."""
    result = {}
    for decoder in DECODERS:
        result[decoder] = []
        for name in FORMATS:
            if not run_case(decoder, wrap({"type": "string", "format": name}), {"v": "x"}, {"v": 1}).startswith("compile"):
                result[decoder].append(name)
    return result


def toolbench_compile_times() -> dict[str, Any]:
    """Per decoder: compile time of call_schema for every ToolBench tool of the STE data."""
    from rich.progress import track

    from imaginarium.schemas.constraints import call_schema
    from imaginarium.schemas.importers import import_file

    schemas = [call_schema(tool) for tool in import_file(TOOLBENCH, format="toolbench")]
    for schema in schemas:
        jsonschema.Draft202012Validator.check_schema(schema)
    results = {}
    for decoder in DECODERS:
        seconds, failures = [], []
        for schema in track(schemas, description=f"{decoder}: compiling call schemas"):
            start = time.perf_counter()
            try:
                ACCEPTORS[decoder](schema)
            except Exception as exc:
                failures.append({"tool": schema["properties"]["name"]["const"], "error": str(exc)[:200]})
            seconds.append(time.perf_counter() - start)
        results[decoder] = {
            "tools": len(schemas),
            "failures": failures,
            "total_s": round(sum(seconds), 3),
            "mean_ms": round(1000 * statistics.mean(seconds), 3),
            "max_ms": round(1000 * max(seconds), 3),
        }
    return results


def main() -> None:
    result = {
        "versions": {name: version(name) for name in ("outlines_core", "llguidance", "xgrammar", "jsonschema")},
        "machine": f"{platform.machine()} {platform.python_version()}",
        **enforcement_table(),
        "string_formats_compiled": formats_compiled(),
    }
    if TOOLBENCH.is_file():
        result["toolbench_call_schema_compile"] = toolbench_compile_times()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS, json.dumps(result, indent=2) + "\n")
    for keyword, case in result["cases"].items():
        print(f"{keyword:28} " + "  ".join(f"{d}={case[d][:40]}" for d in DECODERS))
    print(json.dumps(result.get("toolbench_call_schema_compile", {}), indent=1)[:600])


if __name__ == "__main__":
    main()
