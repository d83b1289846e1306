"""Prepare a scanned page for OCR: render, white out red, deskew, find and remove table rules.

The recipe is the one measured in shared/notes/pdf.md: tesseract reads
nothing useful from a raw scanned form (the table rules break its layout
analysis), so the seal's red ink is whited out, the page is turned straight
(Hough lines at 1/4 scale are cheap), and the long horizontal/vertical rules
are taken out by morphological opening. The rules are not thrown away: they
give the table rows and the label | value column split, which is how values
are read by position. Checkboxes are judged from pixels too, because
tesseract reads ■ as 田/画/玉 and □ as 口/ロ.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from mailbot.forms.seal import red_mask

DPI = 300  # tesseract reads printed Japanese best at about 300 dpi
MAX_SKEW = 5.0  # degrees; a page fed more crookedly than this is re-scanned anyway


@dataclass(frozen=True)
class Page:
    """A scanned page ready for OCR, all in pixels at DPI, deskewed.

    ``rgb``: the colour page (the seal is judged on it); ``ink``: text ink
    only (True = ink), red and table rules removed; ``rules``: the rules.
    ``grayscale``: the scanner stored no colour, so red cannot be told apart.
    """

    rgb: np.ndarray
    ink: np.ndarray
    rules: np.ndarray
    rows: tuple[Row, ...]
    grayscale: bool
    skew: float


@dataclass(frozen=True)
class Row:
    """One table row: its vertical span and the x of the label | value split (pixels)."""

    top: int
    bottom: int
    left: int
    split: int


@dataclass(frozen=True)
class Box:
    """A printed checkbox (□/■) and whether it is filled; ``score`` 0–1 is how clearly."""

    x0: int
    top: int
    x1: int
    bottom: int
    ticked: bool
    score: float


def pt(pixels: float) -> float:
    """Pixels at DPI → PDF points."""
    return pixels * 72 / DPI


def px(points: float) -> int:
    """PDF points → pixels at DPI."""
    return round(points * DPI / 72)


# ---------------------------------------------------------------- rendering

def _is_gray_scan(page) -> bool:
    """Every image on the page is grey or bilevel: the scanner kept no colour."""
    images = list(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=2))
    gray = (pdfium_c.FPDF_COLORSPACE_DEVICEGRAY, pdfium_c.FPDF_COLORSPACE_CALGRAY)
    return bool(images) and all(img.get_metadata().colorspace in gray for img in images)


def render(pdf: pdfium.PdfDocument, index: int) -> tuple[np.ndarray, bool]:
    """Page ``index`` (0-based) as RGB pixels at DPI, and whether it is a grey scan."""
    page = pdf[index]
    try:
        rgb = np.asarray(page.render(scale=DPI / 72).to_pil().convert("RGB"))
        return rgb, _is_gray_scan(page)
    finally:
        page.close()


def has_text_layer(pdf: pdfium.PdfDocument, index: int) -> bool:
    """Whether page ``index`` has any text characters (a scan has none)."""
    page = pdf[index]
    try:
        return page.get_textpage().count_chars() > 0
    finally:
        page.close()


# ---------------------------------------------------------------- deskew

def skew_angle(gray: np.ndarray) -> float:
    """The page's rotation in degrees from its long straight lines (table rules, text baselines)."""
    small = cv2.resize(gray, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    edges = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)[1]
    lines = cv2.HoughLinesP(edges, 1, np.pi / 1800, 100, minLineLength=small.shape[1] // 3, maxLineGap=5)
    if lines is None:
        return 0.0
    x1, y1, x2, y2 = np.asarray(lines).reshape(-1, 4).T.astype(float)
    angles = np.degrees(np.arctan2(y2 - y1, x2 - x1))
    angles = angles[np.abs(angles) < MAX_SKEW]
    return float(np.median(angles)) if len(angles) else 0.0


def rotate(image: np.ndarray, angle: float) -> np.ndarray:
    """``image`` turned by ``angle`` degrees about its centre, white outside."""
    if abs(angle) < 0.05:  # below a tenth of a pixel per 100: not worth a resample
        return image
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    white = (255,) * (3 if image.ndim == 3 else 1)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=white)


# ---------------------------------------------------------------- ink and rules

def _ink(rgb: np.ndarray) -> np.ndarray:
    """Dark ink (True), red ink whited out first (with a margin: JPEG smears its edge)."""
    red = cv2.dilate(red_mask(rgb).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    gray[red] = 255
    gray = cv2.medianBlur(gray, 3)  # scanner speckle, before Otsu picks its threshold
    return cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)[1] > 0


def _open(ink: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Morphological opening with a (w, h) line: only straight runs that long survive."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, size)
    return cv2.morphologyEx(ink.astype(np.uint8), cv2.MORPH_OPEN, kernel) > 0


def rule_masks(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(horizontal, vertical) table rules: runs ≥ 14 mm and ≥ 5 mm; no glyph is that long."""
    return _open(ink, (px(40), 1)), _open(ink, (1, px(14)))


def prepare(rgb: np.ndarray, grayscale: bool) -> Page:
    """Deskew, separate text ink from rules, and find the table rows."""
    angle = skew_angle(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    rgb = rotate(rgb, angle)
    ink = _ink(rgb)
    horizontal, vertical = rule_masks(ink)
    rules = cv2.dilate((horizontal | vertical).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    rows = table_rows(horizontal, vertical)
    return Page(rgb, ink & ~rules, rules, tuple(rows), grayscale, angle)


# ---------------------------------------------------------------- table rows

def _segments(mask: np.ndarray) -> np.ndarray:
    """Bounding boxes (x0, y0, x1, y1) of a rule mask's connected pieces."""
    count, _labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    x, y, w, h = stats[1:count, 0], stats[1:count, 1], stats[1:count, 2], stats[1:count, 3]
    return np.column_stack((x, y, x + w, y + h))


def _rule_ys(horizontal: np.ndarray) -> list[int]:
    """The y of every horizontal rule, pieces on one line merged (a seal may cut a rule)."""
    ys = sorted(int((y0 + y1) / 2) for _x0, y0, _x1, y1 in _segments(horizontal))
    merged: list[int] = []
    for y in ys:
        if not merged or y - merged[-1] > px(4):
            merged.append(y)
    return merged


def table_rows(horizontal: np.ndarray, vertical: np.ndarray) -> list[Row]:
    """Rows between consecutive rules that ≥ 2 vertical rules cross (left edge, split)."""
    verticals = _segments(vertical)
    ys, slack = _rule_ys(horizontal), px(3)
    rows = []
    for top, bottom in itertools.pairwise(ys):
        crossing = sorted(int((x0 + x1) / 2) for x0, y0, x1, y1 in verticals
                          if y0 <= top + slack and y1 >= bottom - slack)
        if len(crossing) >= 2 and bottom - top >= px(10):
            rows.append(Row(top, bottom, crossing[0], crossing[1]))
    return rows


# ---------------------------------------------------------------- checkboxes

def _box_score(glyph: np.ndarray) -> tuple[bool, float] | None:
    """(ticked, clarity) for a square glyph: a box has a full border and a blank or full inside."""
    h, w = glyph.shape
    inner = glyph[h // 4: h - h // 4, w // 4: w - w // 4].mean()
    edge = 4  # the outermost line of a blurred scan is only partly inked: take the best of 4
    sides = (glyph[:, :edge].mean(0), glyph[:, -edge:].mean(0),
             glyph[:edge, :].mean(1), glyph[-edge:, :].mean(1))
    border = min(side.max() for side in sides)
    if border < 0.8 or 0.1 < inner < 0.85:  # 日, 国 or 回: a frame with strokes inside
        return None
    return bool(inner >= 0.85), float(1.0 - inner if inner < 0.5 else inner)


def checkboxes(ink: np.ndarray, x0: int, top: int, x1: int, bottom: int) -> list[Box]:
    """Every □/■ in the region, in reading order (by line, then left to right)."""
    region = ink[top:bottom, x0:x1].astype(np.uint8)
    count, _labels, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
    boxes = []
    for x, y, w, h, _area in stats[1:count]:
        if not (px(5) <= min(w, h) and max(w, h) <= px(12) and 0.8 <= w / h <= 1.25):
            continue
        score = _box_score(region[y:y + h, x:x + w] > 0)
        if score is not None:
            boxes.append(Box(x0 + x, top + y, x0 + x + w, top + y + h, *score))
    return sorted(boxes, key=lambda b: (round(b.top / px(8)), b.x0))


def blank_run(ink: np.ndarray, top: int, bottom: int, x0: int, x1: int) -> int:
    """The longest run of blank columns between x0 and x1 in a text line (a space's width)."""
    if x1 <= x0:
        return 0
    blank = ~ink[top:bottom, x0:x1].any(axis=0)
    best = run = 0
    for empty in blank:
        run = run + 1 if empty else 0
        best = max(best, run)
    return best


# ---------------------------------------------------------------- marks across the rules

def _crossing_seeds(ink: np.ndarray, rules: np.ndarray, rows: tuple[Row, ...]) -> list[tuple[int, int]]:
    """(x, y) where ink reaches a horizontal rule from above and below at the same x.

    Typed text keeps inside its cell; a stamp (or a stroke across the table)
    does not, so ink on both sides of a rule at the same x is no cell's text.
    """
    seeds, reach, near = [], px(2), px(3)
    for y in sorted({r.top for r in rows} | {r.bottom for r in rows}):
        window = rules[max(0, y - near):y + near, :]
        band = np.nonzero(window.mean(axis=1) > 0.3)[0]  # the rule's own rows, not a vertical crossing it
        if not len(band):
            continue
        above, below = max(0, y - near) + band[0], max(0, y - near) + band[-1]
        both = ink[max(0, above - reach):above, :].any(axis=0) & ink[below + 1:below + 1 + reach, :].any(axis=0)
        xs = np.nonzero(both)[0]
        seeds += [(int(x), int(above) - 1) for x in xs] + [(int(x), int(below) + 1) for x in xs]
    return seeds


def crossing_marks(page: Page) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, top, x1, bottom) of ink pieces that cross a table rule: a stamp's ring and
    characters (black, grey, or a red one on a grey scan), never typed cell text."""
    _count, labels, stats, _ = cv2.connectedComponentsWithStats(page.ink.astype(np.uint8), connectivity=8)
    hit = {int(labels[y, x]) for x, y in _crossing_seeds(page.ink, page.rules, page.rows)
           if 0 <= y < labels.shape[0] and labels[y, x]}
    return [(int(stats[i, 0]), int(stats[i, 1]), int(stats[i, 0] + stats[i, 2]), int(stats[i, 1] + stats[i, 3]))
            for i in sorted(hit)]
