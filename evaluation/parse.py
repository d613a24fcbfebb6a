"""Turn a model's output into a call: ReAct text, OpenAI tool_calls, or a JSON call.

Every output becomes a `ParsedCall` of one of three kinds:
- `call`: one API name and a JSON object of arguments (the item is *well-formed*);
- `no_call`: the model gave a final answer without calling anything;
- `error`: something call-like that cannot be read as one call.

The ReAct rules reproduce, decision for decision, the `no_call` / `err` fields stored in the
STE paper's published results (all 22 files, 14,160 items; see docs/evaluation.md). They were
derived from that data, and they are tolerant the way the paper's evaluation is:
1. "Final Answer" before any "Action:" / "Action Input:" is a no-call.
2. Otherwise the text must contain `Action: NAME ... Action Input: ARGS` (the first "Action:").
   NAME may be wrapped as `<tool_NAME>` (the STE fine-tuned models do that).
3. ARGS ends where "Final Answer" starts; a second "Action Input:" in it is an error (the model
   went on to call again, so no single call can be picked).
4. The arguments are the text from the first `{` to the last `}` of ARGS, parsed as JSON;
   doubled braces `{{ }}` (copied from prompt templates) are accepted. Text around the braces
   (explanations, a hallucinated "Observation") is ignored unless it holds braces itself.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

CallKind = Literal["call", "no_call", "error"]

_FINAL_ANSWER = "Final Answer"
_ANY_ACTION = re.compile(r"Action\s*(?:Input\s*)?:")
_ACTION = re.compile(r"Action\s*:(?P<name>.*?)Action\s*Input\s*:(?P<args>.*)", re.DOTALL)
_ACTION_INPUT = re.compile(r"Action\s*Input\s*:")
_TOOL_TOKEN = re.compile(r"<tool_(?P<name>.*)>", re.DOTALL)


@dataclass
class ParsedCall:
    """A model output read as one call. `name` is as written (after grounding, if asked)."""

    kind: CallKind
    name: str | None = None
    arguments: dict[str, Any] | None = None
    error: str | None = None
    raw_name: str | None = None  # the name as written, when grounding changed it

    @property
    def wellformed(self) -> bool:
        return self.kind == "call"

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


def _error(message: str, name: str | None = None) -> ParsedCall:
    return ParsedCall("error", name=name, error=message)


def parse_react(text: str) -> ParsedCall:
    """Parse ReAct text (`Action: ...` / `Action Input: {...}`), following the rules above."""
    final = text.find(_FINAL_ANSWER)
    action = _ANY_ACTION.search(text)
    if final >= 0 and (action is None or final < action.start()):
        return ParsedCall("no_call")
    match = _ACTION.search(text)
    if match is None:
        return _error("no 'Action: ... Action Input: ...' found")
    name = match.group("name").strip()
    token = _TOOL_TOKEN.fullmatch(name)
    if token:
        name = token.group("name").strip()
    args_text = match.group("args")
    cut = args_text.find(_FINAL_ANSWER)
    if cut >= 0:
        args_text = args_text[:cut]
    if _ACTION_INPUT.search(args_text):
        return _error("more than one 'Action Input' before the final answer", name)
    return _call_from_text(name, args_text)


def _call_from_text(name: str, args_text: str) -> ParsedCall:
    start, end = args_text.find("{"), args_text.rfind("}")
    if start < 0 or end < start:
        return _error("no JSON object after 'Action Input'", name)
    arguments = _loads_object(args_text[start : end + 1])
    if arguments is None:
        return _error("the action input is not a JSON object", name)
    return ParsedCall("call", name=name, arguments=arguments)


def _loads_object(text: str) -> dict[str, Any] | None:
    for candidate in (text, text.replace("{{", "{").replace("}}", "}")):
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def parse_json_call(text: str) -> ParsedCall:
    """Parse a JSON call `{"name": ..., "arguments": {...}}` (arguments may be a JSON string).

    Also accepts the call wrapped in text or tags (e.g. `<call>...</call>`): the JSON object is
    read from the first `{` to the last `}`. A `{"final_answer": ...}` object is a no-call.
    """
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return ParsedCall("no_call") if text.strip() else _error("empty output")
    try:
        value = json.loads(text[start : end + 1])
    except json.JSONDecodeError as exc:
        return _error(f"not JSON: {exc.msg}")
    return _call_from_object(value)


def _call_from_object(value: Any) -> ParsedCall:
    if not isinstance(value, dict):
        return _error("a call must be a JSON object")
    if "final_answer" in value and "name" not in value:
        return ParsedCall("no_call")
    fn: dict[str, Any] = value["function"] if isinstance(value.get("function"), dict) else value
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        return _error("the call has no name")
    arguments = fn.get("arguments", fn.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            return _error(f"arguments are not JSON: {exc.msg}", name)
    if not isinstance(arguments, dict):
        return _error("arguments must be a JSON object", name)
    return ParsedCall("call", name=name, arguments=arguments)


def parse_tool_calls(message: dict[str, Any]) -> ParsedCall:
    """Parse an OpenAI-style assistant message: one entry in `tool_calls` is one call.

    No tool_calls (plain content) is a no-call; several are an error, since the metrics score
    exactly one call per item. Content holding a ReAct or JSON call is read as such.
    """
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):  # items.check_output refuses such rows; a direct call gets an error
        return _error("tool_calls is not a list")
    if len(calls) > 1:
        return _error(f"{len(calls)} tool calls; one was expected")
    if calls:
        return _call_from_object(calls[0])
    content = message.get("content") or ""
    if not isinstance(content, str):
        return _error("content is not text")
    if _ANY_ACTION.search(content):
        return parse_react(content)
    if content.strip().startswith("{"):
        return parse_json_call(content)
    return ParsedCall("no_call")


def parse_output(output: Any) -> ParsedCall:
    """Parse any model output: a message dict, a JSON call or ReAct text."""
    if isinstance(output, dict):
        if "tool_calls" in output or "content" in output:
            return parse_tool_calls(output)
        return _call_from_object(output)
    if not isinstance(output, str):
        return _error("output is neither text nor a message")
    stripped = output.strip()
    if _ANY_ACTION.search(stripped) or _FINAL_ANSWER in stripped:
        return parse_react(stripped)
    if stripped.startswith("{") or stripped.startswith("<call>"):
        return parse_json_call(stripped)
    return _error("no call found in the output") if stripped else _error("empty output")


@dataclass
class ParsedCalls:
    """A model output read as any number of calls (items with several gold calls, or none)."""

    kind: CallKind  # call: one or more; no_call: none; error: unreadable
    calls: list[ParsedCall]
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "calls": [call.to_dict() for call in self.calls]}
        return {**out, "error": self.error} if self.error else out


def parse_all(output: Any) -> ParsedCalls:
    """Every call in an output: all of a message's `tool_calls`, a JSON list of call objects,
    or the one call (or none) that `parse_output` reads."""
    if isinstance(output, dict) and isinstance(output.get("tool_calls"), list) and output["tool_calls"]:
        calls = [_call_from_object(call) for call in output["tool_calls"]]
    elif isinstance(output, str) and output.strip().startswith("["):
        try:
            value = json.loads(output.strip())
        except (json.JSONDecodeError, RecursionError) as exc:
            return ParsedCalls("error", [], f"not a JSON list of calls: {exc}")
        calls = [_call_from_object(item) for item in value] if isinstance(value, list) else [_error("not a list")]
    else:
        one = parse_output(output)
        if one.kind == "error":
            return ParsedCalls("error", [], one.error)
        return ParsedCalls(one.kind, [one] if one.kind == "call" else [])
    broken = next((call for call in calls if call.kind != "call"), None)
    if broken is not None:
        return ParsedCalls("error", [], broken.error or "a call that cannot be read")
    return ParsedCalls("call" if calls else "no_call", calls)


def ground_name(call: ParsedCall, known: Iterable[str]) -> ParsedCall:
    """Map an unknown API name to the most similar known one (difflib ratio, no cutoff).

    The STE paper's API-match figures count e.g. `colegiosantaana%Evaluaciones-1` or
    `token_api_generate` as the intended API: they compare the *closest* of the 50 test APIs
    (difflib's similarity ratio) with the gold name. Exact names are kept as they are.
    """
    known = list(known)
    if call.kind != "call" or not known or call.name in known:
        return call
    closest = difflib.get_close_matches(call.name or "", known, n=1, cutoff=0.0)
    if not closest:
        return call
    return ParsedCall("call", name=closest[0], arguments=call.arguments, raw_name=call.name)


__all__ = [
    "ParsedCall",
    "ParsedCalls",
    "ground_name",
    "parse_all",
    "parse_json_call",
    "parse_output",
    "parse_react",
    "parse_tool_calls",
]
