"""Preference rows rendered to text with the model's chat template, for Axolotl's DPO.

Why: Axolotl's DPO `chat_template` loader keeps only each message's role and content, so the
tools shown and the assistant's tool calls of a preference row (schemas/records/preference_row.json)
would vanish without an error. Rendering the rows to text first, with the chat template of the
model to be trained, keeps them: `prompt` is the conversation up to the assistant's turn (system,
tool list, user), `chosen` and `rejected` are the rest as the template renders it. Axolotl's
`passthrough` DPO type then hands the three strings to TRL unchanged.

Besides the three texts a row keeps its ids and scores and, for `imaginarium train check`, the
tools shown (`tools`, JSON text), the chosen calls (`chosen_calls`, JSON text) and the chosen
final answer (`chosen_answer`), so the check can prove the tools and calls survived.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from imaginarium.errors import InputError
from imaginarium.hygiene import neutral_messages

ARROW_SCHEMA = pa.schema([
    pa.field("question_id", pa.string(), nullable=False),
    pa.field("task", pa.string(), nullable=False),
    pa.field("prompt", pa.string(), nullable=False),
    pa.field("chosen", pa.string(), nullable=False),
    pa.field("rejected", pa.string(), nullable=False),
    pa.field("chosen_score", pa.float64(), nullable=False),
    pa.field("rejected_score", pa.float64(), nullable=False),
    pa.field("tools", pa.string(), nullable=False),
    pa.field("chosen_calls", pa.string(), nullable=False),
    pa.field("chosen_answer", pa.string()),
])


def chat_messages(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Record messages as chat templates expect them: no null fields, call arguments as objects,
    no chat control token in any text (rows stored before neutralisation included)."""
    messages = neutral_messages(list(messages))
    out = []
    for message in messages:
        clean = {key: value for key, value in message.items() if value is not None}
        if clean.get("tool_calls"):
            clean["tool_calls"] = [
                {**call, "function": {**call["function"], "arguments": json.loads(call["function"]["arguments"])}}
                for call in clean["tool_calls"]
            ]
        out.append(clean)
    return out


def chat_tools(tools: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Record tools (parameters as JSON text) as chat templates expect them (parameters as objects)."""
    return [{**tool, "function": {**tool["function"], "parameters": json.loads(tool["function"]["parameters"])}}
            for tool in tools]


def _render(tokenizer, messages, tools, *, add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def _completion(tokenizer, prompt: list[dict], completion: list[dict], tools: list[dict], where: str) -> tuple[str, str]:
    """(prompt text, completion text): the completion is what the template adds after the prompt."""
    full = _render(tokenizer, prompt + completion, tools, add_generation_prompt=False)
    for generation_prompt in (True, False):
        head = _render(tokenizer, prompt, tools, add_generation_prompt=generation_prompt)
        if full.startswith(head) and len(full) > len(head):
            return head, full[len(head):]
    raise InputError("the chat template does not render the prompt as a prefix of prompt + completion; "
                     "cannot split it into prompt and completion text", where=where)


def render_preference_rows(rows: Iterable[dict[str, Any]], tokenizer) -> list[dict[str, Any]]:
    """Preference rows (preference_row schema) -> text rows (ARROW_SCHEMA) for Axolotl's DPO."""
    out = []
    for index, row in enumerate(rows):
        where = f"row {index} (question {row.get('question_id')})"
        tools = chat_tools(row["tools"])
        prompt = chat_messages(row["prompt"])
        prompt_text, chosen = _completion(tokenizer, prompt, chat_messages(row["chosen"]), tools, where)
        rejected_prompt, rejected = _completion(tokenizer, prompt, chat_messages(row["rejected"]), tools, where)
        if rejected_prompt != prompt_text:
            raise InputError("chosen and rejected render different prompts", where=where)
        calls = [{"name": call["function"]["name"], "arguments": call["function"]["arguments"]}
                 for message in row["chosen"] if message["role"] == "assistant" for call in message["tool_calls"] or []]
        answers = [m["content"] for m in row["chosen"] if m["role"] == "assistant" and not m["tool_calls"] and m["content"]]
        out.append({
            "question_id": row["question_id"], "task": row["task"],
            "prompt": prompt_text, "chosen": chosen, "rejected": rejected,
            "chosen_score": float(row["chosen_score"]), "rejected_score": float(row["rejected_score"]),
            "tools": json.dumps(row["tools"], ensure_ascii=False),
            "chosen_calls": json.dumps(calls, ensure_ascii=False),
            "chosen_answer": answers[-1] if answers else None,
        })
    return out


def render_preference_stage(preference_dir: Path, out: Path, render_with: str,
                            release_config: str = "preference_text") -> dict[str, Any]:
    """A stage directory of the preference rows in `preference_dir` rendered to text with
    `render_with`'s chat template (the form Axolotl's DPO trains on); a no-op when done."""
    from transformers import AutoTokenizer

    from imaginarium.models.factory import resolve_model
    from imaginarium.stage import StageWriter, read_rows

    writer = StageWriter(out, "render-preference-text", {"model": render_with}, {"preference": preference_dir},
                         schema=ARROW_SCHEMA)
    if writer.done:
        return writer.manifest or {}
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(render_with))
    rows = render_preference_rows(read_rows(preference_dir), tokenizer)
    with writer:
        writer.append(rows)
        return writer.finish(extra={"release_config": release_config})
