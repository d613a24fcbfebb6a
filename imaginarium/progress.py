"""Progress display for long stages."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def batches(rows: Sequence[T], size: int, label: str, progress: bool) -> Iterator[Sequence[T]]:
    """Consecutive slices of `rows` of at most `size`, with a progress bar when asked."""
    starts: Iterable[int] = range(0, len(rows), size)
    if progress and len(rows) > size:
        from rich.progress import track

        starts = track(starts, description=label)
    for start in starts:
        yield rows[start: start + size]
