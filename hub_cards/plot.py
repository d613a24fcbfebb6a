"""A bar chart of rows per API as a PNG, shown in the card.

Drawn with Pillow (already installed with Outlines) rather than a plotting library: a plain
horizontal bar chart needs no more, and the output is byte-identical for the same counts, which
keeps release builds deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

MAX_BARS = 30
_WIDTH, _BAR, _GAP, _LABEL, _MARGIN = 760, 16, 6, 260, 10
_BACKGROUND, _INK, _BAR_COLOUR = (255, 255, 255), (40, 40, 40), (76, 114, 176)


def write_bar_chart(path: Path, counts: Mapping[str, int], title: str) -> None:
    """Write a PNG with one bar per API (the MAX_BARS largest; the rest summed on one line)."""
    from PIL import Image, ImageDraw, ImageFont

    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    shown, rest = ranked[:MAX_BARS], ranked[MAX_BARS:]
    if rest:
        shown.append((f"({len(rest)} more APIs)", sum(n for _, n in rest)))
    height = 2 * _MARGIN + 24 + len(shown) * (_BAR + _GAP)
    image = Image.new("RGB", (_WIDTH, height), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.text((_MARGIN, _MARGIN), title, fill=_INK, font=font)
    largest = max((n for _, n in shown), default=1) or 1
    span = _WIDTH - _LABEL - 2 * _MARGIN - 60
    for index, (api, rows) in enumerate(shown):
        top = _MARGIN + 24 + index * (_BAR + _GAP)
        label = api if len(api) <= 38 else api[:37] + "…"
        draw.text((_MARGIN, top + 2), label, fill=_INK, font=font)
        right = _LABEL + max(1, round(span * rows / largest))
        draw.rectangle((_LABEL, top, right, top + _BAR), fill=_BAR_COLOUR)
        draw.text((right + 6, top + 2), f"{rows:,}", fill=_INK, font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
