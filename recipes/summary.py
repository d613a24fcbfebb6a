"""What `imaginarium run` prints when a recipe ends: how good the data is and where it is.

A new user reads this, not the manifests: the exploration's quality report, the filter's funnel
(printed by the filter itself), a few finished training rows as query -> call -> observation ->
answer, and the path of every output.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from imaginarium.generators.quality import format_quality
from imaginarium.stage import read_manifest, read_rows

SAMPLE_ROWS = 3
_CLIP = 160


def summary_lines(outputs: dict[str, Path], kinds: dict[str, str], *, samples: int = SAMPLE_ROWS,
                  seed: int = 0) -> list[str]:
    """Lines describing a finished recipe run: stage name -> output path, stage name -> kind."""
    lines: list[str] = []
    for name, path in outputs.items():
        manifest = read_manifest(path) if path.is_dir() else None
        if kinds[name] == "explore" and manifest:
            lines += [f"[{name}] " + line for line in format_quality(manifest.get("extra", {}).get("quality", {}))]
    sft = [name for name in outputs if kinds[name] == "build_sft" and read_manifest(outputs[name])]
    if sft:
        rows = read_rows(outputs[sft[-1]])
        lines.append(f"[{sft[-1]}] {len(rows)} training rows; {min(samples, len(rows))} samples:")
        for row in random.Random(seed).sample(rows, min(samples, len(rows))):
            lines += ["  " + line for line in sample_lines(row)]
    lines.append("outputs:")
    width = max(len(name) for name in outputs) if outputs else 0
    lines += [f"  {name:<{width}}  {path}" for name, path in outputs.items()]
    return lines


def sample_lines(row: dict[str, Any]) -> list[str]:
    """One chat SFT row as query -> call(s) -> observation(s) -> answer (ReAct rows: the text)."""
    messages = row.get("messages")
    if not messages:
        text = row.get("text") or row.get("prompt") or ""
        return ["- " + _clip(str(text))]
    query = next((m["content"] for m in messages if m["role"] == "user"), "")
    lines = [f"- query:       {_clip(query)}"]
    for message in messages:
        for call in message.get("tool_calls") or []:
            function = call["function"]
            lines.append(f"  call:        {function['name']}({_clip(_compact(function['arguments']), 120)})")
        if message["role"] == "tool":
            lines.append(f"  observation: {_clip(message.get('content') or '')}")
    answers = [m["content"] for m in messages if m["role"] == "assistant" and m.get("content") and not m.get("tool_calls")]
    if answers:
        lines.append(f"  answer:      {_clip(answers[-1])}")
    return lines


def _compact(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), ensure_ascii=False)
    except ValueError:
        return arguments


def _clip(text: str, limit: int = _CLIP) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
