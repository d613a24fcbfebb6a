"""JSON pointers (RFC 6901): building them for error messages and following local `$ref`s.

Both the OpenAPI importer (refs into a whole document) and the constraint schemas (refs into
one schema) resolve `#/...` references, so the pointer arithmetic lives here once.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote


def escape(token: str | int) -> str:
    """One reference token, escaped: `~` -> `~0`, `/` -> `~1` (in that order)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def join(pointer: str, *tokens: str | int) -> str:
    """`pointer` extended by `tokens`, each escaped: join("/paths", "/pets") == "/paths/~1pets"."""
    return pointer + "".join("/" + escape(token) for token in tokens)


def resolve(document: Any, ref: str) -> Any:
    """The value a local ref (`#/a/b` or `#`) points to in `document`; KeyError if it points nowhere."""
    if not ref.startswith("#"):
        raise KeyError(ref)
    path = unquote(ref[1:])  # a ref is a URI: its fragment may be percent-encoded
    if path and not path.startswith("/"):
        raise KeyError(ref)
    value = document
    for raw in path.split("/")[1:] if path else []:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and token in value:
            value = value[token]
        elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        else:
            raise KeyError(ref)
    return value
