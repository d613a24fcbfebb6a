"""Secrets never leave the process: one redaction layer for every byte written or printed.

Why one layer: a secret reaches outputs by many roads (a server echoing an Authorization header
in an error page, a tool answering with the query string it got, a redirect target, a log
line), and each road once had its own, incomplete scrubbing. Here every secret the run knows is
registered once (`register`: the values of `--api-key` variables, the served model's key, the
Hugging Face token, MCP servers' environment and header values, and the well-known variables
below), and `redact` replaces each in all the forms it can take in text:

- as is; URL-encoded (`quote`, `quote_plus`); JSON-escaped (`"` and `\\` escaped, `/` as `\\/`);
- base64 (standard and URL-safe, with or without padding), also inside a longer base64 text
  (the three alignments a secret can have in it: `Basic base64(user:secret)` is caught).

Stage rows, manifests, cache entries, cards, log records and error messages pass through it.
`scan` finds registered secrets and known token shapes (Hugging Face, OpenAI, GitHub, AWS,
Slack, private keys) in text: `release build` refuses a release that contains one.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import urllib.parse
from typing import Any

REDACTED = "[REDACTED]"
MIN_LENGTH = 8  # shorter values (a "1", "true") would redact ordinary text
# Environment variables that hold secrets whenever they are set.
KNOWN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_HUB_TOKEN", "OPENAI_API_KEY")
TOKEN_PATTERNS = {
    "Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),
    "OpenAI key": re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}\b"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}

_lock = threading.Lock()
_secrets: set[str] = set()
_forms: list[str] = []  # every form of every secret, longest first
_known_done = False


def register(*values: str | None) -> None:
    """Remember secret values (None, empty and very short values are ignored)."""
    global _forms
    added = {value for value in values if isinstance(value, str) and len(value.strip()) >= MIN_LENGTH}
    with _lock:
        if added <= _secrets:
            return
        _secrets.update(added)
        _forms = sorted({form for secret in _secrets for form in forms(secret)}, key=len, reverse=True)


def register_env(*names: str) -> None:
    """Register the values of environment variables (those that are set)."""
    register(*(os.environ.get(name) for name in names))


def register_known() -> None:
    """The well-known secret variables and the Hugging Face token stored on disk (once)."""
    global _known_done
    if _known_done:
        return
    _known_done = True
    register_env(*KNOWN_VARIABLES)
    try:
        from huggingface_hub import get_token

        register(get_token())
    except Exception:  # no huggingface_hub, an unreadable token file: nothing to register
        pass


def forms(secret: str) -> set[str]:
    """The texts a secret can appear as (see the module docstring)."""
    found = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    escaped = json.dumps(secret)[1:-1]
    found |= {escaped, escaped.replace("/", "\\/")}
    raw = secret.encode("utf-8")
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        found.add(encode(raw).decode())
        found.add(encode(raw).decode().rstrip("="))
        # Inside a longer base64 text the secret starts at byte offset 0, 1 or 2 of a 3-byte
        # group: the characters its bytes alone decide start at 0, 2 or 3; the last two may
        # mix with what follows.
        for shift, start in ((0, 0), (1, 2), (2, 3)):
            text = encode(b"\0" * shift + raw).decode().rstrip("=")
            found.add(text[start:-2])
    return {form for form in found if len(form) >= MIN_LENGTH - 2}


def redact(text: str) -> str:
    """`text` with every form of every registered secret replaced by [REDACTED]."""
    register_known()
    if not _forms or not isinstance(text, str):
        return text
    for form in _forms:
        if form in text:
            text = text.replace(form, REDACTED)
    return text


def redact_value(value: Any) -> Any:
    """Strings inside `value` (dicts, lists, tuples) redacted; other values as they are."""
    register_known()
    if not _forms:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(key) if isinstance(key, str) else key: redact_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(item) for item in value)
    return value


def scan(text: str) -> list[str]:
    """What secret-like things `text` holds: "a configured secret" and known token shapes."""
    register_known()
    found = []
    if any(form in text for form in _forms):
        found.append("a configured secret")
    found += [name for name, pattern in TOKEN_PATTERNS.items() if pattern.search(text)]
    return found


def active() -> bool:
    """True when a secret is registered (redaction has something to do)."""
    register_known()
    return bool(_forms)


class LogRedactor(logging.Filter):
    """A logging filter: the formatted message of every record, redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if active():
            record.msg, record.args = redact(record.getMessage()), None
        return True
