"""Episode trial -> STE-style ReAct text rows (prompt / completion).

Row shape (`REACT_SCHEMA`): `prompt` (instructions, the tools shown, the user query and the
earlier turns of this trial), `completion` (what the model must write next: one
`Action: NAME` / `Action Input: {...}` block, or `Final Answer: ...`), `turn` (the position of
the completion in the trial: 0 for the first call) and the same metadata as chat rows. A
prompt/completion pair lets the trainer compute the loss on the completion only (TRL's
prompt-completion datasets, Axolotl's `input_output` or a completion-only collator).

One row per turn the model must produce, never a row whose completion holds an Observation:
- without `with_tool_response`: one row, the first successful call (failed attempts kept by
  policy `all` appear, with their error observations, in its prompt);
- with it (the paper's second turn): also a row per later successful call and a last row whose
  completion is `Final Answer: ...` after the Observation.
Failed calls are never completions, only context.

With `tool_token`, the call name is written `<tool_NAME>` (as the paper's fine-tuned models
do; `imaginarium eval` reads both). The tokens are plain text in the rows; the manifest lists
them (`extra.tool_tokens`) so a trainer can add them to the tokenizer as special tokens.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from imaginarium.builders.trials import Turn

REACT_SCHEMA = pa.schema([
    pa.field("prompt", pa.string(), nullable=False),
    pa.field("completion", pa.string(), nullable=False),
    pa.field("turn", pa.int64(), nullable=False),
    pa.field("api", pa.string(), nullable=False),
    pa.field("origin_trial", pa.string()),
    pa.field("paraphrase_of", pa.string()),
    pa.field("source", pa.string(), nullable=False),
    pa.field("scores", pa.string()),
])

INSTRUCTIONS = """\
Answer the user's query with the APIs below. Call one API at a time, in this format:
Action: the API name
Action Input: the arguments as a JSON object
The API's result then follows as "Observation: ...". When you can answer, write:
Final Answer: your answer to the user

APIs:
{tools}

User Query: {query}
"""


def action_name(name: str, tool_token: bool) -> str:
    return f"<tool_{name}>" if tool_token else name


def tool_text(tool: dict[str, Any]) -> str:
    function = tool["function"]
    return f"API_name: {function['name']}\nDescription: {function['description']}\nParameters: {function['parameters']}"


def action_text(turn: Turn, tool_token: bool) -> str:
    return f"Action: {action_name(turn.name, tool_token)}\nAction Input: {turn.arguments}\n"


def react_examples(query: str, turns: list[Turn], final_answer: str | None, tools: list[dict[str, Any]], *,
                   with_tool_response: bool, tool_token: bool) -> list[tuple[int, str, str]]:
    """(turn, prompt, completion) for each turn the model must produce (see the module doc)."""
    head = INSTRUCTIONS.format(tools="\n\n".join(tool_text(tool) for tool in tools), query=query)
    examples = []
    history = ""
    for index, turn in enumerate(turns):
        if not turn.failed:
            examples.append((index, head + history, action_text(turn, tool_token)))
        history += action_text(turn, tool_token) + f"Observation: {turn.observation}\n"
    if with_tool_response:
        examples.append((len(turns), head + history, f"Final Answer: {final_answer}"))
    return examples
