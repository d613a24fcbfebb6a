"""Text from tools is data: chat control tokens neutralised, instruction-like text detected.

Why here (the core layer): observations (executor) and training rows (schemas/rows.py) both need
it, and the rules must be the same in both.

- *Control tokens.* A tool's output that contains `<|im_start|>`, `<|end|>`, `[INST]`, `<s>`,
  `<start_of_turn>` ... would, once rendered through a chat template, be read by the tokenizer as
  the real special token: a tool could open a system turn in a training row. `neutralise`
  swaps the angle and square brackets of such tokens for look-alike guillemets
  (`<|im_start|>` -> `‹|im_start|›`): still readable, never a special token.
- *Injection heuristics.* Text is normalised first (NFKC, zero-width characters removed, common
  Cyrillic and Greek look-alikes mapped to Latin, whitespace collapsed), so "ign\\u200bore
  previous instructions" and "іgnore" (Cyrillic і) are caught as the plain phrase is. The
  patterns cover addressing the assistant ("ignore / disregard / forget the above / previous /
  prior ... instructions"), new instructions, role switches and control tokens. Simple on
  purpose: a flag, not a filter; flagged text stays (wrapped as untrusted data).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

CONTROL_TOKEN = re.compile(
    r"<\|[A-Za-z0-9_.:-]{1,30}\|>"                    # <|im_start|>, <|end|>, <|eot_id|>, <|start_header_id|>
    r"|\[/?INST\]|<</?SYS>>|\[/?AVAILABLE_TOOLS\]|\[/?TOOL_(?:CALLS|RESULTS)\]"
    r"|</?s>|<(?:start|end)_of_turn>|</?tool_(?:call|response)>|<\|?(?:begin|end)_of_text\|?>"
)
_SWAP = str.maketrans({"<": "‹", ">": "›", "[": "⁅", "]": "⁆"})

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad"))
_HOMOGLYPHS = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s",
    "ԁ": "d", "ɡ": "g", "һ": "h", "ӏ": "l", "ո": "n", "ս": "u", "ᴠ": "v", "ԝ": "w",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "Х": "X", "І": "I", "Ѕ": "S", "ο": "o", "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "τ": "t",
    "Ο": "O", "Α": "A", "Ε": "E", "Ι": "I", "Κ": "K", "Ν": "N", "Τ": "T",
})

INJECTION_PATTERNS = [
    r"\b(ignore|disregard|forget|override|skip|bypass)\b[^.\n]{0,40}\b(previous|prior|above|earlier|all|any|your|"
    r"the system|preceding|original)\b[^.\n]{0,40}\b(instructions?|prompts?|rules|messages?|directions?|guidelines|"
    r"context)\b",
    r"\b(disregard|ignore|forget)\b[^.\n]{0,20}\b(the|everything)\b[^.\n]{0,10}\b(above|before|previous)",
    r"\byou are now\b",
    r"\bfrom now on,? you\b",
    r"\byou must now\b",
    r"\b(new|updated|revised|real) (system )?instructions?\s*:",
    r"\b(system|developer) (prompt|message|note)\s*:",
    r"\bas an ai (language )?model\b[^.\n]{0,40}\byou must\b",
    r"\bdo not (tell|inform|mention)\b[^.\n]{0,30}\b(the )?user\b",
    r"<\|[a-z_]{2,20}\|>",
    r"\[/?INST\]|<</?SYS>>",
]
_INJECTION = re.compile("|".join(f"(?:{p})" for p in INJECTION_PATTERNS), re.IGNORECASE)


def neutralise(text: str) -> str:
    """`text` with every chat control token made plain text (see the module docstring)."""
    if not text or ("<" not in text and "[" not in text):
        return text
    return CONTROL_TOKEN.sub(lambda match: match.group(0).translate(_SWAP), text)


def normalise(text: str) -> str:
    """The text injection patterns are matched against: NFKC, no zero-width characters,
    look-alikes as Latin letters, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).translate(_HOMOGLYPHS)
    return re.sub(r"\s+", " ", text)


def looks_like_injection(text: str) -> bool:
    """True when `text` (normalised) addresses the assistant or carries control tokens."""
    return bool(_INJECTION.search(text) or _INJECTION.search(normalise(text)))


def neutral_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages with control tokens neutralised in their text and call arguments."""
    out = []
    for message in messages:
        message = dict(message)
        if isinstance(message.get("content"), str):
            message["content"] = neutralise(message["content"])
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            message["tool_calls"] = [_neutral_call(call) for call in calls]
        out.append(message)
    return out


def _neutral_call(call: Any) -> Any:
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        return call
    function = dict(call["function"])
    if isinstance(function.get("arguments"), str):
        function["arguments"] = neutralise(function["arguments"])
    return {**call, "function": function}
