"""Hand-drawn pen marks on a page image: the ✓ and ○ an applicant draws on a printed form.

Used by scan.py (``simulate_scan(marks=...)``) so that the OCR tests can tick
a printed checkbox by hand: a ✓ over or beside the □, or a ○ around the
option's text (the spec: "a scanned form may show a hand-drawn ✓ or ○").
Strokes are drawn slightly irregular (a hand never draws the same line twice)
with a ball-pen width, in dark blue or black.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

BLUE = (25, 35, 130)  # a dark blue ball-pen
BLACK = (30, 30, 30)
PEN_MM = 0.5


@dataclass(frozen=True)
class HandMark:
    """A pen mark on page ``page`` (0-based): ``kind`` "check" or "circle", centred at
    (x, y) in PDF points from the page's top left, ``w`` × ``h`` points big."""

    kind: str
    x: float
    y: float
    w: float
    h: float
    color: tuple[int, int, int] = BLUE
    page: int = 0


def _check(mark: HandMark, k: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    """A ✓: a short stroke down to the bottom, a long one up to the right (pixels)."""
    x, y, w, h = mark.x * k, mark.y * k, mark.w * k, mark.h * k
    corners = [(x - 0.45 * w, y), (x - 0.1 * w, y + 0.45 * h), (x + 0.5 * w, y - 0.5 * h)]
    return [(px + rng.normal(0, 0.04 * w), py + rng.normal(0, 0.04 * h)) for px, py in corners]


def _circle(mark: HandMark, k: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    """A ○: an ellipse whose radius wanders a little and whose ends overlap (pixels)."""
    x, y, rx, ry = mark.x * k, mark.y * k, mark.w * k / 2, mark.h * k / 2
    start = rng.uniform(0, 2 * math.pi)
    wobble = 1 + np.cumsum(rng.normal(0, 0.01, 48))  # a drift, not a jitter: a hand is smooth
    angles = start + np.linspace(0, 2 * math.pi + 0.5, 48)
    return [(x + rx * s * math.cos(a), y + ry * s * math.sin(a)) for a, s in zip(angles, wobble)]


def draw(image: Image.Image, marks: list[HandMark], dpi: int, rng: np.random.Generator) -> Image.Image:
    """``image`` (a page rendered at ``dpi``) with the pen ``marks`` drawn on it."""
    out = image.copy()
    pen = ImageDraw.Draw(out)
    k, width = dpi / 72, max(2, round(PEN_MM / 25.4 * dpi))
    for mark in marks:
        points = _check(mark, k, rng) if mark.kind == "check" else _circle(mark, k, rng)
        pen.line(points, fill=mark.color, width=width, joint="curve")
    return out
