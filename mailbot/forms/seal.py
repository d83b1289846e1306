"""Seal (押印) detection on the form page: is there a stamp, and is it on the
代表者氏名 row?

Judged the way a person looks at the page, never by the word 印 (it is
always printed). Three public steps, usable separately:

- ``render_page(data, page_no)``: the page as RGB pixels with its text objects
  and long table rules removed (the printed 印, red instructions such as
  「※記名押印」 and a vector stamp's own glyphs are not stamp ink) and its
  annotations drawn (a /Stamp annotation is a seal like any other).
- ``find_stamps(rgb, px_per_pt, row)``: stamp-shaped ink on any rendered page
  (also a scan, for the OCR reader): red anywhere; black or blue only on the
  representative's row, where a dark closed ring/frame with a real stroke is
  a stamp and not text, a table cell or a printed ○.
- ``judge(stamps, row, page_no)``: the Seal verdict.

``detect_seal(data, page_no, row)`` does all three. Thresholds come from
shared/notes/pdf.md, widened for vermilion/orange 朱肉 and faint stamps.
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
SCALE = DPI / 72  # pixels per PDF point at which detect_seal renders
PT_PER_MM = 72 / 25.4
RULE_MIN_PT = 40 * PT_PER_MM  # a straight path this long is a table rule, not a stamp
ROW_SLACK_PT = 30.0  # a seal overlaps the rows around 代表者氏名 (notes: ±30 pt)
MIN_MM, MAX_MM = 7.0, 40.0  # 認印 ~10 mm up to large 角印
DARK_MIN_MM = 10.0  # black/blue: bigger than any printed glyph or the 印 mark
MIN_CIRCULARITY = 0.65  # hull of a half-pressed round stamp is ~0.75; a square 0.79
DARK_MIN_RING = 0.85  # notes: a black seal's outline is ≥ 85–90% inked
DARK_MIN_STROKE_MM = 0.4  # stamp rings are 0.5–1.2 mm; printed ○ and cell rules thinner
DARK_MIN_DENSITY = 0.10
LINE_MIN_MM = 12.0  # a straight run this long joined to a blob is an underline, not the stamp


@dataclass(frozen=True)
class Stamp:
    """A stamp-like mark on a page, in PDF points ([x0, top, x1, bottom]).

    ``circularity``: 4π·area/perimeter² of its convex hull (1 circle, 0.79
    square); ``density``: inked share of the bbox; ``ring``: share of its
    outline (circle or rectangle, whichever fits) that is inked; ``score``:
    how stamp-like it is, 0–1.
    """

    bbox: tuple[float, float, float, float]
    color: str  # "red" | "black" | "blue"
    circularity: float
    density: float
    ring: float
    score: float

    @property
    def centre(self) -> tuple[float, float]:
        """(x, top) of the bbox centre."""
        return (self.bbox[0] + self.bbox[2]) / 2, (self.bbox[1] + self.bbox[3]) / 2


Blob = Stamp  # the name before find_stamps was public


# ---------------------------------------------------------------- rendering

def _is_rule(obj) -> bool:
    """A long, thin path: a table rule that would tie every blob together."""
    left, bottom, right, top = obj.get_bounds()
    w, h = right - left, top - bottom
    return (w >= RULE_MIN_PT and h <= 3) or (h >= RULE_MIN_PT and w <= 3)


def _open(data: bytes) -> pdfium.PdfDocument:
    """pypdfium2's document, its failure as a PdfError."""
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise PdfError("broken", "添付のPDFを表示できませんでした。PDFを保存し直して改めてお送りください。") from exc


def render_page(data: bytes, page_no: int, scale: float = SCALE) -> np.ndarray:
    """Page ``page_no`` (1-based) as RGB pixels, without text or table rules, with annotations.

    ``scale`` is pixels per PDF point. Annotations are drawn from their
    appearance streams (draw_annots), so a /Stamp annotation counts; one
    without an appearance shows nothing in a viewer and counts for nothing.
    """
    pdf = _open(data)
    try:
        return render_open_page(pdf[page_no - 1], scale)
    finally:
        pdf.close()


def render_open_page(page: pdfium.PdfPage, scale: float = SCALE) -> np.ndarray:
    """render_page on a page pdfium already has open (its text and rules are removed from it)."""
    text = pdfium_c.FPDF_PAGEOBJ_TEXT
    for obj in [o for o in page.get_objects(max_depth=0) if o.type == text or _is_rule(o)]:
        page.remove_obj(obj)
    # RGB straight from pdfium's buffer: the same pixels as via PIL, without ~10 ms of conversion.
    bitmap = page.render(scale=scale, draw_annots=True, rev_byteorder=True)
    return np.ascontiguousarray(bitmap.to_numpy()[..., :3])


render_graphics = render_page  # the name before render_page was public


# ---------------------------------------------------------------- masks

def _channels(rgb: np.ndarray) -> tuple[np.ndarray, ...]:
    """r, g, b, max, and max−min as int32 arrays."""
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))  # int16 overflows in delta * 255
    mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    return r, g, b, mx, mx - mn


def _on_candidates(rgb: np.ndarray, channel: int, exact) -> np.ndarray:
    """``exact(pixels)`` evaluated only where ``channel`` is strictly the largest.

    A page is mostly white, grey and black, where no channel stands out: a
    uint8 comparison rules those out, and the int32 hue arithmetic runs on
    the few pixels left (the same mask, a fraction of the cost).
    """
    c, o1, o2 = rgb[..., channel], rgb[..., (channel + 1) % 3], rgb[..., (channel + 2) % 3]
    candidates = (c > o1) & (c > o2)
    rows = np.flatnonzero(candidates.any(axis=1))  # nonzero on the few rows with any: ~10× cheaper
    ys, xs = np.nonzero(candidates[rows])
    ys = rows[ys]
    mask = np.zeros(rgb.shape[:2], bool)
    mask[ys, xs] = exact(rgb[ys, xs][:, None, :])[:, 0]
    return mask


def _red_exact(rgb: np.ndarray) -> np.ndarray:
    """The red hue/saturation/value test on every pixel of ``rgb`` (see red_mask)."""
    r, g, b, mx, delta = _channels(rgb)
    hue = (r == mx) & (delta > 0) & (2 * (g - b) <= delta) & (2 * (b - g) <= delta)
    return hue & (delta * 100 >= 18 * mx) & (mx >= 70)


def _blue_exact(rgb: np.ndarray) -> np.ndarray:
    """The blue hue/saturation/value test on every pixel of ``rgb`` (see blue_mask)."""
    r, g, b, mx, delta = _channels(rgb)
    hue = (b == mx) & (delta > 0) & (3 * (r - g) <= delta) & (3 * (g - r) <= 2 * delta)
    return hue & (delta * 255 >= 60 * mx) & (mx >= 50)


def red_mask(rgb: np.ndarray) -> np.ndarray:
    """Seal red: hue ≤ 30° (vermilion and orange 朱肉) or ≥ 330°, S ≥ 0.18, V ≥ 70.

    Wider than the notes' HSV box (H ≤ 20°, S ≥ 0.24) so that an orange or a
    faint, pink stamp still counts; grey anti-aliasing and yellowish scan
    paper (hue 40–60°) stay out. Such a hue has red strictly the largest
    channel, so only those pixels are measured.
    """
    return _on_candidates(rgb, 0, _red_exact)


def blue_mask(rgb: np.ndarray) -> np.ndarray:
    """Blue ink (朱肉 is not the only ink): hue 200°–260°, saturated (blue strictly the largest)."""
    return _on_candidates(rgb, 2, _blue_exact)


def dark_mask(rgb: np.ndarray) -> np.ndarray:
    """Black ink: every channel dark (three uint8 comparisons: faster than a max over channels)."""
    return (rgb[..., 0] < 110) & (rgb[..., 1] < 110) & (rgb[..., 2] < 110)


# ---------------------------------------------------------------- shape measures

def circularity(ink: np.ndarray) -> float:
    """4π·area / perimeter² of the inked pixels' convex hull: 1 circle, 0.79 square."""
    ys, xs = np.nonzero(ink)
    step = max(1, len(xs) // 4000)  # a subsample is plenty for the hull
    points = np.column_stack((xs[::step], ys[::step])).astype(float)
    try:
        hull = ConvexHull(points)
    except (QhullError, ValueError):  # too few or collinear points: a stroke, not a stamp
        return 0.0
    return float(4 * np.pi * hull.volume / hull.area**2)


def ring_coverage(ink: np.ndarray) -> float:
    """Share of the outline that is inked, for a circle or a rectangle (the better fit).

    Along 96 rays from the bbox centre, the outline counts as inked when ink
    lies in the outer 22% of the way to the circle / the bbox edge. Text
    merged into a blob, or a partial stamp, leaves gaps.
    """
    h, w = ink.shape
    angles = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    cos, sin = np.cos(angles), np.sin(angles)
    to_edge = np.minimum(np.abs((w / 2) / np.where(cos == 0, 1e-9, cos)),
                         np.abs((h / 2) / np.where(sin == 0, 1e-9, sin)))
    to_circle = 1 / np.hypot(cos / (w / 2), sin / (h / 2))
    return max(_rays_inked(ink, cos, sin, to_edge), _rays_inked(ink, cos, sin, to_circle))


def _rays_inked(ink: np.ndarray, cos: np.ndarray, sin: np.ndarray, reach: np.ndarray) -> float:
    """Share of rays with ink between 78% and 100% of ``reach`` from the centre."""
    h, w = ink.shape
    t = np.linspace(0.78, 1.0, 8)[:, None] * reach[None, :]
    xs = np.clip((w / 2 + t * cos).astype(int), 0, w - 1)
    ys = np.clip((h / 2 + t * sin).astype(int), 0, h - 1)
    return float(ink[ys, xs].any(axis=0).mean())


def stroke_mm(ink: np.ndarray, px_per_mm: float) -> float:
    """The typical stroke width in mm: twice the 90th percentile of the distance to paper."""
    dist = ndimage.distance_transform_edt(np.pad(ink, 1))
    inside = dist[dist > 0]
    return float(2 * np.percentile(inside, 90) - 1) / px_per_mm if inside.size else 0.0


# ---------------------------------------------------------------- stamps

def _merge_strokes(mask: np.ndarray, px: int) -> np.ndarray:
    """Dilate by ``px`` in both directions (separable: fast on a whole page)."""
    grown = ndimage.maximum_filter1d(mask.view(np.uint8), 2 * px + 1, axis=0)
    return ndimage.maximum_filter1d(grown, 2 * px + 1, axis=1).astype(bool)


def _fits(ink: np.ndarray, px_per_mm: float, min_mm: float) -> bool:
    """Stamp size (min_mm–MAX_MM), near-square, and inked enough to be one."""
    h, w = ink.shape
    if not (min_mm * px_per_mm <= min(h, w) and max(h, w) <= MAX_MM * px_per_mm):
        return False
    return 0.6 <= w / h <= 1.7 and ink.mean() >= 0.06


def _score(circ: float, ring: float, density: float, size_mm: float) -> float:
    """How stamp-like, 0–1: round/square hull, closed outline, usual size, usual inking."""
    shape = min(1.0, (circ - MIN_CIRCULARITY) / 0.14)
    size = 1.0 if 10 <= size_mm <= 30 else 0.7
    inking = 1.0 if 0.08 <= density <= 0.75 else 0.6  # solid red squares are rarely seals
    return 0.25 * shape + 0.35 * ring + 0.2 * size + 0.2 * inking


def _dark_enough(ink: np.ndarray, ring: float, density: float, px_per_mm: float) -> bool:
    """Black/blue: a closed outline with a real stroke, not text, a cell or a printed ○."""
    if ring < DARK_MIN_RING or density < DARK_MIN_DENSITY:
        return False
    return stroke_mm(ink, px_per_mm) >= DARK_MIN_STROKE_MM


def _stamp(ink: np.ndarray, box_ink: np.ndarray, corner: tuple[int, int], color: str,
           px_per_pt: float) -> list[Stamp]:
    """[the Stamp] for one component's pixels ``ink`` (cut to its bbox), or [].

    ``box_ink``: all ink in that bbox; for black/blue the characters inside
    are separate components but still make the stamp's density.
    """
    px_per_mm = px_per_pt * PT_PER_MM
    circ = circularity(ink)
    if circ < MIN_CIRCULARITY:
        return []
    ring, density = ring_coverage(ink), float((ink if color == "red" else box_ink).mean())
    if color != "red" and not _dark_enough(ink, ring, density, px_per_mm):
        return []
    score = _score(circ, ring, density, max(ink.shape) / px_per_mm)
    h, w = ink.shape
    bbox = tuple(v / px_per_pt for v in (corner[0], corner[1], corner[0] + w, corner[1] + h))
    return [Stamp(bbox, color, circ, density, ring, score)]


def stamps_in(mask: np.ndarray, color: str, px_per_pt: float, *, min_mm: float = MIN_MM,
              merge_mm: float = 1.5, origin: tuple[int, int] = (0, 0), split: bool = True) -> list[Stamp]:
    """Stamp-like components of ``mask``: strokes merged (``merge_mm``), then shape tests.

    Red merges 1.5 mm (a stamp's strokes and characters become one blob);
    black/blue barely merge, because there the ring itself must be one
    component apart from the text it overlaps. A component that fails only
    because a straight line (a red underline) joined it is tried again
    without its lines (``split``). ``origin``: the (x, y) pixel of the
    mask's corner when it is a crop.
    """
    px_per_mm = px_per_pt * PT_PER_MM
    merge = max(1, round(merge_mm * px_per_mm))
    crop = _ink_crop(mask, merge)
    if crop is None:
        return []
    mask, origin = mask[crop], (origin[0] + crop[1].start, origin[1] + crop[0].start)
    labels, _count = ndimage.label(_merge_strokes(mask, merge))
    found = []
    for index, sl in enumerate(ndimage.find_objects(labels * mask), start=1):
        if sl is None:
            continue
        ink, corner = mask[sl] & (labels[sl] == index), (sl[1].start + origin[0], sl[0].start + origin[1])
        if _fits(ink, px_per_mm, min_mm):
            found += _stamp(ink, mask[sl], corner, color, px_per_pt)
        elif split:
            rest = ink & ~_lines(ink, round(LINE_MIN_MM * px_per_mm))
            found += stamps_in(rest, color, px_per_pt, min_mm=min_mm, merge_mm=merge_mm, origin=corner, split=False)
    return found


def _ink_crop(mask: np.ndarray, pad: int) -> tuple[slice, slice] | None:
    """The rows and columns around all of ``mask``'s ink, ``pad`` pixels wider; None when blank.

    Merging and labelling only there gives the same components as on the
    whole page (the margin is as wide as the merge, so the filters' edge
    handling never reaches ink) at a fraction of the pixels.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if not rows.size:
        return None
    top, bottom = int(rows[0]), int(rows[-1])  # plain ints: bboxes stay Python floats
    cols = np.flatnonzero(mask[top:bottom + 1].any(axis=0))
    return slice(max(0, top - pad), bottom + pad + 1), slice(max(0, int(cols[0]) - pad), int(cols[-1]) + pad + 1)


def _lines(ink: np.ndarray, run: int) -> np.ndarray:
    """Straight horizontal/vertical runs of at least ``run`` pixels (an opening with a line).

    Only columns (rows) with enough inked pixels can hold such a run, so the
    filters run on those alone: on a page whose rules were removed before
    rendering that is almost none. Enough is half a run, not a whole one:
    the filters' window is cut at the edges, where a shorter run counts.
    """
    as_int, lines = ink.view(np.uint8), np.zeros(ink.shape, np.uint8)
    for axis in (0, 1):
        keep = np.flatnonzero(np.count_nonzero(ink, axis=axis) >= min(run - run // 2, ink.shape[axis]))
        if keep.size:
            where = (slice(None), keep) if axis == 0 else (keep, slice(None))
            part = np.ascontiguousarray(as_int[where])
            lines[where] |= ndimage.maximum_filter1d(ndimage.minimum_filter1d(part, run, axis=axis), run, axis=axis)
    return lines.astype(bool)


def _rule_run(px_per_pt: float) -> int:
    """Pixels in a straight run longer than any stamp's side: a table rule."""
    return int(MAX_MM * 1.2 * px_per_pt * PT_PER_MM)


def remove_rules(mask: np.ndarray, px_per_pt: float) -> np.ndarray:
    """``mask`` without straight horizontal/vertical runs longer than any stamp (table rules)."""
    return mask & ~_lines(mask, _rule_run(px_per_pt))


def _row_band(row: NameRow, px_per_pt: float, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """Pixel rows and columns of the 代表者氏名 row (± slack), right of its label."""
    top = max(0, int((row.top - ROW_SLACK_PT) * px_per_pt))
    bottom = min(shape[0], int((row.bottom + ROW_SLACK_PT) * px_per_pt))
    return slice(top, bottom), slice(max(0, int(row.label_x1 * px_per_pt)), shape[1])


def find_stamps(rgb: np.ndarray, px_per_pt: float, row: NameRow | None = None) -> list[Stamp]:
    """Stamp-like marks on a rendered page (H×W×3 uint8 RGB, ``px_per_pt`` pixels per point).

    Red anywhere on the page; black and blue only on ``row``'s band, because
    elsewhere dark ink is text. Works on a page with its text and table rules
    (a scan): long straight dark lines are removed before black is looked
    for. Bboxes in PDF points.
    """
    found = stamps_in(red_mask(rgb), "red", px_per_pt)
    if row is None:
        return found
    rows, cols = _row_band(row, px_per_pt, rgb.shape)
    reach = _rule_run(px_per_pt)  # a vertical rule is measured above and below the band, which cuts it short
    above = min(rows.start, reach)
    tall = slice(rows.start - above, min(rgb.shape[0], rows.stop + reach))
    dark = remove_rules(dark_mask(rgb[tall, cols]), px_per_pt)[above:above + rows.stop - rows.start]
    origin = (cols.start, rows.start)
    for color, mask in (("blue", blue_mask(rgb[rows, cols])), ("black", dark)):
        found += stamps_in(mask, color, px_per_pt, min_mm=DARK_MIN_MM, merge_mm=0.3, origin=origin)
    return found


# ---------------------------------------------------------------- the verdict

def is_near(stamp: Stamp, row: NameRow | None) -> bool:
    """Centre on the 代表者氏名 row (± slack) and right of its label."""
    if row is None:
        return False
    x, y = stamp.centre
    return row.top - ROW_SLACK_PT <= y <= row.bottom + ROW_SLACK_PT and x > row.label_x1


def _seal(stamp: Stamp, near: bool, page_no: int, row: NameRow | None) -> Seal:
    """The Seal for a stamp. Confidence: red 0.55–0.99, black/blue 0.4–0.8 by score;
    lower when the row was not found (placement unknown)."""
    base, span = (0.55, 0.44) if stamp.color == "red" else (0.4, 0.4)
    confidence = (base + span * stamp.score) * (1.0 if row else 0.7)
    return Seal(True, near, stamp.color, round(confidence, 3), page_no, stamp.bbox)


def judge(stamps: list[Stamp], row: NameRow | None, page_no: int) -> Seal:
    """The seal verdict from ``find_stamps``' marks.

    Red on the row wins; then black/blue on the row (→ seal_not_red); then
    red elsewhere (→ seal_misplaced); else no seal (→ seal_missing).
    ``confidence`` is how sure the reported verdict is: for "no seal" 0.9
    (0.6 without a row, which also means the page may be misread).
    """
    def best(candidates: list[Stamp]) -> Stamp | None:
        return max(candidates, key=lambda s: s.score, default=None)

    near = [s for s in stamps if is_near(s, row)]
    chosen = best([s for s in near if s.color == "red"]) or best(near)
    if chosen:
        return _seal(chosen, True, page_no, row)
    elsewhere = best([s for s in stamps if s.color == "red"])
    if elsewhere:
        return _seal(elsewhere, False, page_no, row)
    return Seal(False, False, None, 0.9 if row else 0.6, page_no, None)


def detect_seal(data: bytes, page_no: int, row: NameRow | None, page: pdfium.PdfPage | None = None) -> Seal:
    """The seal verdict for page ``page_no`` (1-based) given the 代表者氏名 row (PDF points).

    ``page``: that page already open in pdfium (the text pass's), rendered instead of
    opening the PDF again (loading a page costs ~6 ms).
    """
    pixels = render_open_page(page) if page is not None else render_page(data, page_no)
    return judge(find_stamps(pixels, SCALE, row), row, page_no)
