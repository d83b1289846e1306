"""Marks that are not cell text on a scanned form — stamps — kept out of the values.

A black or grey stamp (and a red one on a grey scan) stays in the OCR ink and
tesseract reads its ring as ``N_・ノ`` or ``グー`` at the end of the rows it
crosses. Such a mark is found without knowing its colour: its ink crosses
the table's horizontal rules (scan_image.crossing_marks), which typed text
never does; a red stamp is whited out of the ink already, but its JPEG-smeared
edge is left, so its box (from the seal detector) counts too. Words inside
a mark are dropped; a row whose text comes close to a mark is doubted,
because the stamp may cover part of it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from mailbot.forms.scan_image import px

Box = tuple[int, int, int, int]  # x0, top, x1, bottom in page pixels
NEAR_EM = 3.0  # text this close to a stamp (in em) may run under it


class Boxed(Protocol):
    """An OCR word: its box in page pixels."""

    x0: int
    top: int
    x1: int
    bottom: int


def merge(boxes: list[Box], gap: int) -> list[Box]:
    """Boxes closer than ``gap`` pixels joined into one (a ring's arcs, its characters)."""
    merged: list[Box] = []
    for box in sorted(boxes):
        for i, other in enumerate(merged):
            if box[0] <= other[2] + gap and other[0] <= box[2] + gap and box[1] <= other[3] + gap and other[1] <= box[3] + gap:
                merged[i] = (min(box[0], other[0]), min(box[1], other[1]), max(box[2], other[2]), max(box[3], other[3]))
                break
        else:
            merged.append(box)
    return merged if len(merged) == len(boxes) else merge(merged, gap)


def _inside(word: Boxed, box: Box, margin: int) -> bool:
    """The word's centre lies in the box (grown by ``margin``)."""
    cx, cy = (word.x0 + word.x1) / 2, (word.top + word.bottom) / 2
    return box[0] - margin <= cx <= box[2] + margin and box[1] - margin <= cy <= box[3] + margin


def outside(words: list, boxes: list[Box]) -> list:
    """The words that are not part of a mark."""
    return [w for w in words if not any(_inside(w, box, px(4)) for box in boxes)]  # ring fragments sit on its edge


def near_text(words: list, top: int, bottom: int, boxes: list[Box]) -> bool:
    """Whether a mark overlapping the row ``top``–``bottom`` comes within NEAR_EM of its words."""
    if not words:
        return False
    em = float(np.median([w.bottom - w.top for w in words]))
    for x0, b_top, x1, b_bottom in boxes:
        on_row = b_top < bottom and b_bottom > top
        if on_row and any(w.x0 - NEAR_EM * em < x1 and x0 - NEAR_EM * em < w.x1 for w in words):
            return True
    return False
