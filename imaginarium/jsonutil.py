"""Canonical JSON and content hashes.

One canonical form is used for cache keys and fingerprints, so that two equal values always
hash the same: keys sorted, no insignificant whitespace, UTF-8, and numbers normalised
(an integral float such as 90.0 is written as 90, -0.0 as 0).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any


def normalise_numbers(value: Any) -> Any:
    """Return `value` with integral floats turned into ints, recursively.

    Booleans are left alone (they are ints in Python but not numbers in JSON).
    NaN and infinities are not valid JSON and raise ValueError.
    """
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"{value!r} is not a valid JSON number")
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value
    if isinstance(value, dict):
        return {str(k): normalise_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalise_numbers(v) for v in value]
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def canonical_json(value: Any) -> str:
    """The canonical JSON text of `value` (sorted keys, compact, numbers normalised)."""
    return json.dumps(
        normalise_numbers(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def content_hash(value: Any) -> str:
    """sha256 hex digest of the canonical JSON of `value`."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def file_hash(path) -> str:
    """sha256 hex digest of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
