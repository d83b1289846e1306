"""Seal (押印) detection on the form page: is there a stamp, and is it on the
代表者氏名 row?

The page is rendered with pypdfium2 (its text removed first: the printed 印
and the form's own red text must not count); red pixels (HSV, thresholds
from shared/notes/pdf.md) are grouped into blobs of seal size. On the
representative's row a dark stamp-shaped blob counts too (black/blue ink),
after the table rules are removed. Judged by what is on the page, never by
the word 印, which is always printed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from mailbot.errors import PdfError
from mailbot.forms.reading import Seal


@dataclass(frozen=True)
class NameRow:
    """The 代表者氏名 row in PDF points: its vertical span and the label's right end."""

    top: float
    bottom: float
    label_x1: float


DPI = 120
SCALE = DPI / 72  # pixels per PDF point
MM = DPI / 25.4  # pixels per millimetre
RULE_MIN_PT = 40 * 72 / 25.4  # a straight path this long is a table rule, not a stamp
ROW_SLACK_PT = 30.0  # a seal overlaps the rows around 代表者氏名 (notes: ±30 pt)


@dataclass(frozen=True)
class Blob:
    """A stamp-sized group of inked pixels, in PDF points."""

    bbox: tuple[float, float, float, float]
    circularity: float
    color: str

    @property
    def centre(self) -> tuple[float, float]:
        """(x, top) of the bbox centre."""
        return (self.bbox[0] + self.bbox[2]) / 2, (self.bbox[1] + self.bbox[3]) / 2


# ---------------------------------------------------------------- rendering

def _is_rule(obj) -> bool:
    """A long, thin path: a table rule that would tie every blob together."""
    left, bottom, right, top = obj.get_bounds()
    w, h = right - left, top - bottom
    return (w >= RULE_MIN_PT and h <= 3) or (h >= RULE_MIN_PT and w <= 3)


def render_graphics(data: bytes, page_no: int) -> np.ndarray:
    """The page as RGB pixels at DPI, without its text objects and table rules.

    Text goes because the printed 印, red instructions (「※記名押印」) and a
    stamp's own glyphs are not the stamp's ink; a vector stamp keeps its ring.
    """
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise PdfError("broken", "添付のPDFを表示できませんでした。PDFを保存し直して改めてお送りください。") from exc
    try:
        page = pdf[page_no - 1]
        text = pdfium_c.FPDF_PAGEOBJ_TEXT
        for obj in [o for o in page.get_objects(max_depth=0) if o.type == text or _is_rule(o)]:
            page.remove_obj(obj)
        image = page.render(scale=SCALE).to_pil().convert("RGB")
        return np.asarray(image)
    finally:
        pdf.close()


# ---------------------------------------------------------------- masks

def _channels(rgb: np.ndarray) -> tuple[np.ndarray, ...]:
    """r, g, b, max, and max−min as int32 arrays."""
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))  # int16 overflows in delta * 255
    mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    return r, g, b, mx, mx - mn


def red_mask(rgb: np.ndarray) -> np.ndarray:
    """Vermilion pixels: hue ≤ 20° or ≥ 330°, S ≥ 60/255, V ≥ 70 (OpenCV H ≤ 10 or ≥ 165)."""
    r, g, b, mx, delta = _channels(rgb)
    hue = (r == mx) & (delta > 0) & (3 * (g - b) <= delta) & (2 * (b - g) <= delta)
    return hue & (delta * 255 >= 60 * mx) & (mx >= 70)


def blue_mask(rgb: np.ndarray) -> np.ndarray:
    """Blue ink (朱肉 is not the only ink): hue 200°–260°, saturated."""
    r, g, b, mx, delta = _channels(rgb)
    hue = (b == mx) & (delta > 0) & (3 * (r - g) <= delta) & (3 * (g - r) <= 2 * delta)
    return hue & (delta * 255 >= 60 * mx) & (mx >= 50)


def dark_mask(rgb: np.ndarray) -> np.ndarray:
    """Black ink: every channel dark."""
    return rgb.max(axis=-1) < 110


# ---------------------------------------------------------------- blobs

def _circularity(ys: np.ndarray, xs: np.ndarray) -> float:
    """4π·area / perimeter² of the pixels' convex hull: 1 circle, 0.79 square."""
    step = max(1, len(xs) // 4000)  # a subsample is plenty for the hull
    points = np.column_stack((xs[::step], ys[::step])).astype(float)
    try:
        hull = ConvexHull(points)
    except QhullError:  # all points on a line: a rule or a stroke, not a stamp
        return 0.0
    return float(4 * np.pi * hull.volume / hull.area**2)


def _is_stamp_shape(ink: np.ndarray, min_mm: float) -> bool:
    """Stamp size (min_mm–35 mm), near-square, and inked enough to be one.

    ``ink`` is the blob's own pixels cut to its bounding box.
    """
    h, w = ink.shape
    if not (min_mm * MM <= min(h, w) and max(h, w) <= 35 * MM):
        return False
    return 0.6 <= w / h <= 1.7 and ink.mean() >= 0.06


def blobs(mask: np.ndarray, color: str, *, min_mm: float = 7.0,
          origin: tuple[int, int] = (0, 0)) -> list[Blob]:
    """Stamp-like blobs of ``mask``: strokes merged (dilate 1.5 mm), then shape tests.

    ``origin``: the (x, y) pixel of the mask's corner when it is a crop.
    """
    merged = ndimage.binary_dilation(mask, iterations=max(1, round(1.5 * MM)))
    labels, _count = ndimage.label(merged)
    found = []
    for index, sl in enumerate(ndimage.find_objects(labels * mask), start=1):
        ink = mask[sl] & (labels[sl] == index) if sl is not None else None
        if ink is None or not _is_stamp_shape(ink, min_mm):
            continue
        circ = _circularity(*np.nonzero(ink))
        if circ >= 0.70:
            (x, y) = origin
            box = (sl[1].start + x, sl[0].start + y, sl[1].stop + x, sl[0].stop + y)
            found.append(Blob(tuple(v / SCALE for v in box), circ, color))
    return found


# ---------------------------------------------------------------- the verdict

def is_near(blob: Blob, row: NameRow | None) -> bool:
    """Centre on the 代表者氏名 row (± slack) and right of its label."""
    if row is None:
        return False
    x, y = blob.centre
    return row.top - ROW_SLACK_PT <= y <= row.bottom + ROW_SLACK_PT and x > row.label_x1


def _row_band(row: NameRow) -> tuple[int, int, int]:
    """Pixel top, bottom and left of the row (± slack) right of its label."""
    top = max(0, int((row.top - ROW_SLACK_PT) * SCALE))
    return top, int((row.bottom + ROW_SLACK_PT) * SCALE), int(row.label_x1 * SCALE)


def _row_ink(rgb: np.ndarray, row: NameRow | None) -> list[Blob]:
    """Black or blue stamp-shaped blobs on the row (10 mm+: never a printed 印)."""
    if row is None:
        return []
    top, bottom, left = _row_band(row)
    band, origin = rgb[top:bottom, left:], (left, top)
    found = blobs(blue_mask(band), "blue", min_mm=10, origin=origin)
    return found + blobs(dark_mask(band), "black", min_mm=10, origin=origin)


def _seal(blob: Blob, near: bool, page_no: int) -> Seal:
    """The Seal for a blob; confidence from how round/square it is."""
    base = 0.6 if blob.color == "red" else 0.45
    confidence = min(0.99, base + 0.4 * blob.circularity)
    return Seal(True, near, blob.color, confidence, page_no, blob.bbox)


def detect_seal(data: bytes, page_no: int, row: NameRow | None) -> Seal:
    """The seal verdict for page ``page_no`` (1-based) given the 代表者氏名 row.

    Red on the row wins; then black/blue on the row; then red elsewhere
    (misplaced); else no seal (confidence 0).
    """
    rgb = render_graphics(data, page_no)
    red = blobs(red_mask(rgb), "red")
    near = [b for b in red if is_near(b, row)] or _row_ink(rgb, row)
    if near:
        return _seal(max(near, key=lambda b: b.circularity), True, page_no)
    if red:
        return _seal(max(red, key=lambda b: b.circularity), False, page_no)
    return Seal(False, False, None, 0.0, page_no, None)
