"""Hand-drawn ticks on a scanned form's checkboxes: a pen ✓ over or beside a □, a ○ around an option.

The printed □/■ are found by scan_image.checkboxes; a pen mark is what no
printed glyph is: a piece of ink taller than 1.35 boxes (the form's glyphs,
boxes included, are at most one em tall, and glyphs that blur together only
grow sideways). A ✓ drawn over a □ joins the box into its piece; the box is
recovered from it as the place where a box's whole outline is inked (a pen
stroke crosses an outline, it does not trace all four sides). Each mark then ticks the option whose
span (its box and text, up to the next box) holds the mark's centre — unless
the mark also reaches another option's box, when the tick cannot be told
and the caller leaves the field uncertain.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mailbot.forms.scan_image import Box

TALL = 1.35  # a piece this many box sides tall is a pen mark, not print
COVERED = 0.9  # this share of a box's outline inked: a printed box under a pen mark
REACH = 0.5  # a mark this close (in box sides) to a box reaches it


@dataclass(frozen=True)
class PenMark:
    """A pen mark's box (page pixels) and the printed box it swallowed, if any."""

    x0: int
    top: int
    x1: int
    bottom: int
    hidden: Box | None

    @property
    def cx(self) -> float:
        return (self.x0 + self.x1) / 2

    @property
    def cy(self) -> float:
        return (self.top + self.bottom) / 2


def _ring(side: float) -> np.ndarray:
    """A printed box's outline as a correlation kernel: 1 on its four sides, summing to 1."""
    n, stroke = max(5, round(side)), max(2, round(0.15 * side))
    ring = np.ones((n, n), np.float32)
    ring[stroke:n - stroke, stroke:n - stroke] = 0
    return ring / ring.sum()


def _hidden_box(piece: np.ndarray, x0: int, top: int, side: float, tops: list[int]) -> Box | None:
    """The printed □ inside a pen mark's piece: where a box's four sides are all inked, on a
    line of the printed boxes (``tops``); the first such, because the box comes before its
    option's text. A pen stroke covers a box's outline only where it crosses it."""
    ring = _ring(side)
    inked = cv2.dilate(piece, np.ones((3, 3), np.uint8)).astype(np.float32)  # a blurred side wanders a pixel
    if inked.shape[0] < ring.shape[0] or inked.shape[1] < ring.shape[1]:
        return None
    cover = cv2.matchTemplate(inked, ring, cv2.TM_CCORR)  # the share of the outline inked, per corner
    ys, xs = np.nonzero(cover >= COVERED)
    aligned = [(x, y) for x, y in zip(xs, ys) if not tops or min(abs(top + y - t) for t in tops) < 0.25 * side]
    if not aligned:
        return None
    first = min(x for x, _y in aligned)
    x, y = max(((x, y) for x, y in aligned if x - first < side / 3), key=lambda p: cover[p[1], p[0]])
    n = ring.shape[0]
    return Box(x0 + int(x), top + int(y), x0 + int(x) + n, top + int(y) + n, True, 0.6)


def pen_marks(ink: np.ndarray, x0: int, top: int, x1: int, bottom: int, side: float,
              tops: list[int] = ()) -> list[PenMark]:
    """The pen marks in a region: pieces of ink taller than any printed glyph (``tops``: the
    tops of the printed boxes found, the lines a swallowed box must sit on)."""
    region = ink[top:bottom, x0:x1].astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
    marks = []
    for i in range(1, count):
        x, y, w, h, _area = stats[i]
        if h > TALL * side:
            piece = (labels[y:y + h, x:x + w] == i).astype(np.uint8)
            hidden = _hidden_box(piece, x0 + x, top + y, side, list(tops))
            marks.append(PenMark(x0 + x, top + y, x0 + x + w, top + y + h, hidden))
    return marks


def with_hidden(boxes: list[Box], marks: list[PenMark], side: float) -> list[Box]:
    """The printed boxes and those a ✓ swallowed, in reading order (a new line where the
    tops jump by half a box: a swallowed box's top is a few pixels off its line's)."""
    every = sorted(boxes + [m.hidden for m in marks if m.hidden is not None], key=lambda b: b.top)
    line, keyed = 0, []
    for prev, box in zip([None, *every], every):
        line += prev is not None and box.top - prev.top > 0.5 * side
        keyed.append((line, box.x0, box))
    return [box for _line, _x, box in sorted(keyed, key=lambda k: k[:2])]


def _same_line(box: Box, mark: PenMark, side: float) -> bool:
    """The mark is centred on the box's line of options (a ✓ sits a little high)."""
    return abs((box.top + box.bottom) / 2 - mark.cy) < side


def _reaches(box: Box, mark: PenMark, side: float) -> bool:
    """The mark's extent comes within REACH box sides of the box (or covers it)."""
    grow = REACH * side
    return (mark.x0 - grow < box.x1 and box.x0 < mark.x1 + grow
            and mark.top - grow < box.bottom and box.top < mark.bottom + grow)


def option_of(mark: PenMark, boxes: list[Box], side: float) -> int | None:
    """The index of the option a mark ticks; None when it cannot be told."""
    if mark.hidden is not None:  # a ✓ over a box: that box, if it is one of the options'
        return boxes.index(mark.hidden) if mark.hidden in boxes else None
    line = [i for i, b in enumerate(boxes) if _same_line(b, mark, side)]
    span = [i for i in line if boxes[i].x0 - REACH * side <= mark.cx]
    if not span:
        return None
    chosen = max(span, key=lambda i: boxes[i].x0)
    reached = {i for i, b in enumerate(boxes) if _reaches(b, mark, side)}
    return chosen if reached <= {chosen} else None


def ticked_by_pen(marks: list[PenMark], boxes: list[Box], side: float) -> set[int] | None:
    """The indices of the options the pen ticked; None when any mark's option cannot be told."""
    out = set()
    for mark in marks:
        index = option_of(mark, boxes, side)
        if index is None:
            return None
        out.add(index)
    return out


def box_side(boxes: list[Box], fallback: float) -> float:
    """The printed boxes' side in pixels (their median), or ``fallback`` without one."""
    if not boxes:
        return fallback
    return float(np.median([max(b.x1 - b.x0, b.bottom - b.top) for b in boxes]))
