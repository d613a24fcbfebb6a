"""Episode trial -> one chat row in the OpenAI / Hugging Face tool-calling format.

Stored shape (schemas/records/sft_row.json): every message has all five fields (role, content,
tool_calls, tool_call_id, name; absent ones null) and call `arguments` and tool `parameters` are
JSON text, so a whole dataset has one Arrow schema however the tools differ.

Chat templates expect those two as objects, and some stumble on null fields. The rendering form
is made in one place, `to_template_messages(row)`: it decodes the JSON texts and drops null
fields (a null `content` becomes ""). Tests, recipes and anyone rendering rows use it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import Field

from imaginarium.builders.trials import Turn
from imaginarium.options import Options

DEFAULT_SYSTEM = (
    "You are a helpful assistant with access to tools. When a tool can help with the user's "
    "request, call it with arguments that follow its parameters; then answer from its result."
)


class RowOptions(Options):
    """What every builder of chat rows from trials shares (`build sft`, `build preference`): the
    system message, the tools shown, what counts as a successful call, the held-out part."""

    simulated_ok: bool = Field(True, description=(
        "Whether a call answered by the response simulator counts as successful (as in filter)."))
    system: str | None = Field(DEFAULT_SYSTEM, description="System message of chat rows ('' for none).")
    max_tools: int = Field(5, ge=1, le=1000, description=(
        "Tools shown per row: its API, the tools it calls, then nearest neighbours."))
    embedding_model: str | None = Field(None, min_length=1, description=(
        "sentence-transformers model name or path for the neighbours (default: the bundled all-MiniLM-L6-v2)."))
    seed: int = Field(0, ge=0, description="Seed of the order of the tools shown.")
    holdout: float = Field(0.0, ge=0.0, lt=1.0, description=(
        "Leave out this fraction of the trials (a stable hash of the query): the ones `build bfcl --holdout` "
        "exports as test items with the same fraction and --holdout-seed."))
    holdout_seed: int = Field(0, ge=0, description="Seed of the hold-out hash (as in `build bfcl`).")


def message(role: str, content: str | None = None, *, tool_calls: list[dict[str, Any]] | None = None,
            tool_call_id: str | None = None, name: str | None = None) -> dict[str, Any]:
    """A message with every field present (null when absent)."""
    return {"role": role, "content": content, "tool_calls": tool_calls, "tool_call_id": tool_call_id, "name": name}


def call_id(key: str, index: int) -> str:
    """A deterministic call id, unique within a conversation: `call_` + 9 letters and digits."""
    return "call_" + hashlib.sha256(f"{key}/{index}".encode()).hexdigest()[:9]


def chat_messages(query: str, turns: list[Turn], final_answer: str | None, *, system: str | None,
                  key: str, with_tool_response: bool) -> list[dict[str, Any]]:
    """System (if any), user query, one assistant message per call with its tool response (all
    but the last call without `with_tool_response`), then the final answer (with it only)."""
    messages = [message("system", system)] if system else []
    messages.append(message("user", query))
    for index, turn in enumerate(turns):
        identifier = call_id(key, index)
        call = {"id": identifier, "type": "function", "function": {"name": turn.name, "arguments": turn.arguments}}
        messages.append(message("assistant", None, tool_calls=[call]))
        if with_tool_response or index < len(turns) - 1:
            messages.append(message("tool", turn.observation, tool_call_id=identifier, name=turn.name))
    if with_tool_response:
        messages.append(message("assistant", final_answer))
    return messages


def to_template_messages(row: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(messages, tools) of a stored chat row in the form chat templates expect.

    Use: `messages, tools = to_template_messages(row)`, then
    `tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=False)`.
    """
    messages = []
    for stored in row["messages"]:
        rendered = {"role": stored["role"], "content": stored["content"] or ""}
        if stored.get("tool_calls"):
            rendered["tool_calls"] = [
                {"id": call["id"], "type": call["type"],
                 "function": {"name": call["function"]["name"], "arguments": json.loads(call["function"]["arguments"])}}
                for call in stored["tool_calls"]
            ]
        for field in ("tool_call_id", "name"):
            if stored.get(field) is not None:
                rendered[field] = stored[field]
        messages.append(rendered)
    tools = [
        {"type": tool["type"],
         "function": {**tool["function"], "parameters": json.loads(tool["function"]["parameters"])}}
        for tool in row.get("tools") or []
    ]
    return messages, tools
