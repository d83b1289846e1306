"""A PDF's pages as pdfplumber gives them, read by pdfium: the text reader's fast path.

pdfplumber parses a page's content stream in Python (pdfminer): ~70 ms of CPU
for our one-page form, most of what reading an application costs, and more
than everything else the service does for it. pdfium, already here for
rendering the seal, parses the same page in C in a few milliseconds. This
module hands text.py what pdfplumber would — characters, lines, rectangles
and curves as dicts with pdfplumber's keys, in its coordinates (``top``
measured from the page's top edge) — so the form logic stays one for both,
and pdfplumber's own TableFinder and extract_text run on them unchanged.

Made to match pdfminer where text.py looks: a character's box is its
advance wide and its font size high, standing on the font's descent below
the baseline; a path becomes a line ("ml"), a rectangle (four axis-aligned
sides, closed) or a curve of its segments' end points, the way pdfminer's
paint_path sorts them; a path neither stroked nor filled (a clip) is no
object at all. Colours are pdfium's RGB as 0–1 floats.

Only the plain case is taken: a page without /Rotate, with its boxes at the
origin, and horizontal upright text. Anything else raises NotSimple, and the
caller reads that PDF with pdfplumber as before; so does a PDF on which the
fast path finds no form (read.py), so scans and garbled fonts take the same
road to OCR as ever. A character pdfium could not map to Unicode reads as
``(cid:0)``, as pdfminer writes one, so a garbled font still looks garbled.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from functools import lru_cache
from itertools import accumulate

import pypdfium2 as pdfium
import pypdfium2.raw as fpdf
from pdfplumber import utils
from pdfplumber.container import Container
from pdfplumber.table import Table, TableFinder, TableSettings
from pypdf import PageObject, PdfReader
from pypdf.errors import PyPdfError

#: What a character without a Unicode mapping reads as (pdfminer's spelling).
UNMAPPED = "(cid:0)"
_SEGMENT_KIND = {fpdf.FPDF_SEGMENT_MOVETO: "m", fpdf.FPDF_SEGMENT_LINETO: "l",
                 fpdf.FPDF_SEGMENT_BEZIERTO: "c"}


class NotSimple(Exception):
    """The page is rotated, shifted or has turned text: pdfplumber reads it instead."""


class Page(Container):
    """One page's objects, shaped like a pdfplumber page for text.py (read-only)."""

    def __init__(self, objects: dict[str, list[dict]], bbox: tuple, page_number: int,
                 pdfium_page: pdfium.PdfPage | None = None, owner: bool = True):
        self._objects = objects
        self.bbox = bbox
        self.width, self.height = bbox[2] - bbox[0], bbox[3] - bbox[1]
        self.page_number = page_number
        #: The page still open in pdfium, for the seal's rendering (seal.detect_seal); closed by close().
        self.pdfium_page = pdfium_page
        self._owner = owner

    @property
    def objects(self) -> dict[str, list[dict]]:
        return self._objects

    def filter(self, keep: Callable[[dict], bool]) -> Page:
        """The page with only the objects ``keep`` accepts (pdfplumber's Page.filter)."""
        kept = {kind: [o for o in objs if keep(o)] for kind, objs in self._objects.items()}
        return Page(kept, self.bbox, self.page_number, self.pdfium_page, owner=False)

    def find_tables(self, table_settings: dict | None = None) -> list[Table]:
        """pdfplumber's own table finder, on these edges."""
        return TableFinder(self, TableSettings.resolve(table_settings)).tables

    def extract_text(self, **kwargs) -> str:
        return utils.extract_text(self.chars, **kwargs)

    def close(self) -> None:
        """Close pdfium's page (the objects were copied out of it when the page was read).

        A filtered page shares its original's pdfium page: closing the original closes it.
        """
        if self._owner and self.pdfium_page is not None:
            self.pdfium_page.close()
        self.pdfium_page = None


class Document:
    """A PDF opened by pdfium whose ``pages`` are read into Page objects on access.

    ``reader`` is pypdf's reader of the same bytes (preflight's): the page boxes.
    """

    def __init__(self, data: bytes, reader: PdfReader):
        self._pdf = pdfium.PdfDocument(data)
        self._boxes = [_plain_bbox(page) for page in reader.pages]
        # A page that is not plain is never read here (NotSimple ends the fast path), so no
        # page after one is either: its height of 0 is never counted into a doctop.
        heights = [box[3] if box else 0.0 for box in self._boxes]
        self._doctops = [0.0, *accumulate(heights)]
        self.pages = _Pages(self)

    def read_page(self, index: int) -> Page:
        """Page ``index`` (0-based) read; pdfium's page stays open with it until its close()."""
        page, bbox = self._pdf[index], self._boxes[index]
        try:
            if not bbox:
                raise NotSimple("rotated or shifted page")
            textpage = page.get_textpage()
            try:
                chars = list(_chars(textpage, bbox[3], self._doctops[index], index + 1))
            finally:
                textpage.close()
            paths = _paths(page, bbox[3], self._doctops[index], index + 1)
        except BaseException:
            page.close()
            raise
        return Page({"char": chars, **paths}, bbox, index + 1, page)

    def close(self) -> None:
        self._pdf.close()

    def __enter__(self) -> Document:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Pages:
    """``pdf.pages``: a sequence that reads each page when it is asked for."""

    def __init__(self, doc: Document):
        self._doc = doc

    def __len__(self) -> int:
        return len(self._doc._pdf)

    def __getitem__(self, index: int) -> Page:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self._doc.read_page(index % len(self))

    def __iter__(self) -> Iterator[Page]:
        return (self[i] for i in range(len(self)))


def _plain_bbox(page: PageObject) -> tuple[float, float, float, float] | None:
    """(0, 0, width, height) of an unrotated page whose media and crop boxes agree at 0,0.

    From pypdf, which reads inherited boxes as pdfminer does (pdfium's API
    answers US Letter for a MediaBox kept on the page tree, as fpdf2 writes).
    None for any other page: that one is for pdfplumber.
    """
    try:
        media, crop = [float(v) for v in page.mediabox], [float(v) for v in page.cropbox]
        rotated = page.rotation % 360
    except (PyPdfError, ValueError, TypeError, KeyError, IndexError):
        return None  # a box that is not four numbers: pdfplumber's path says what is wrong
    if rotated or media[:2] != [0, 0] or crop != media:
        return None
    return (0, 0.0, media[2], media[3])


# ---------------------------------------------------------------- characters

def _chars(textpage: pdfium.PdfTextPage, height: float, doctop: float, number: int) -> Iterator[dict]:
    """Every character pdfium found in the content (not its generated spaces and breaks)."""
    tp, f = textpage.raw, fpdf
    box = f.FS_RECTF()
    box_ref = ctypes.byref(box)  # made once: a page has ~1,000 chars, each ctypes call counts
    styles: dict[int | None, tuple] = {}  # size and colours are the text object's: asked once each
    for i in range(f.FPDFText_CountChars(tp)):
        if f.FPDFText_IsGenerated(tp, i) == 1:
            continue
        key = ctypes.cast(f.FPDFText_GetTextObject(tp, i), ctypes.c_void_p).value
        size, fill, stroke = styles.get(key) or styles.setdefault(key, _style(tp, i))
        f.FPDFText_GetLooseCharBox(tp, i, box_ref)
        x0, x1, y0 = box.left, box.right, box.bottom
        top = height - (y0 + size)
        yield {"object_type": "char", "page_number": number, "text": _text(tp, i),
               "x0": x0, "x1": x1, "y0": y0, "y1": y0 + size,
               "top": top, "bottom": top + size, "doctop": doctop + top,
               "width": x1 - x0, "height": size, "size": size, "upright": True,
               "non_stroking_color": fill, "stroking_color": stroke}


def _style(tp, i: int) -> tuple[float, tuple | None, tuple | None]:
    """Font size, fill and stroke colour of character i's text object; NotSimple when it is turned."""
    matrix = fpdf.FS_MATRIX()
    fpdf.FPDFText_GetMatrix(tp, i, matrix)
    if matrix.b or matrix.c or matrix.a <= 0 or matrix.d <= 0:
        raise NotSimple("turned or mirrored text")
    return (fpdf.FPDFText_GetFontSize(tp, i), _colour(fpdf.FPDFText_GetFillColor, tp, i),
            _colour(fpdf.FPDFText_GetStrokeColor, tp, i))


def _text(tp, i: int) -> str:
    if fpdf.FPDFText_HasUnicodeMapError(tp, i) == 1:
        return UNMAPPED
    return chr(fpdf.FPDFText_GetUnicode(tp, i))


_RGBA = tuple(ctypes.c_uint() for _ in range(4))
_RGBA_REFS = tuple(ctypes.byref(v) for v in _RGBA)  # made once: byref per call was a third of the cost


@lru_cache(maxsize=4096)
def _floats(r: int, g: int, b: int) -> tuple[float, float, float]:
    return (r / 255, g / 255, b / 255)


def _colour(get, handle, *args) -> tuple[float, float, float] | None:
    """pdfium's RGB of a character or path, as pdfplumber's 0–1 floats (None when unset)."""
    if not get(handle, *args, *_RGBA_REFS):
        return None
    return _floats(_RGBA[0].value, _RGBA[1].value, _RGBA[2].value)


# ---------------------------------------------------------------- paths

def _paths(page: pdfium.PdfPage, height: float, doctop: float, number: int) -> dict[str, list[dict]]:
    """The page's painted paths sorted into lines, rects and curves, as pdfminer sorts them."""
    found: dict[str, list[dict]] = {"line": [], "rect": [], "curve": []}
    for obj, matrix in _path_objects(page.raw, fpdf.FPDFPage_CountObjects, fpdf.FPDFPage_GetObject,
                                     (1, 0, 0, 1, 0, 0)):
        fill, stroke = ctypes.c_int(), ctypes.c_int()
        fpdf.FPDFPath_GetDrawMode(obj, fill, stroke)
        if not fill.value and not stroke.value:
            continue  # a clipping path: pdfminer paints nothing
        for points in _subpaths(obj, matrix):
            kind, pts = _shape(points)
            found[kind].append(_path_dict(kind, obj, pts, bool(fill.value), bool(stroke.value),
                                          height, doctop, number))
    return found


def _path_objects(parent, count, get, matrix: tuple) -> Iterator[tuple[object, tuple]]:
    """Every path object with its matrix to page space, inside form XObjects too."""
    for i in range(count(parent)):
        obj = get(parent, i)
        kind = fpdf.FPDFPageObj_GetType(obj)
        own = fpdf.FS_MATRIX()
        fpdf.FPDFPageObj_GetMatrix(obj, own)
        if kind == fpdf.FPDF_PAGEOBJ_PATH:
            yield obj, _times((own.a, own.b, own.c, own.d, own.e, own.f), matrix)
        elif kind == fpdf.FPDF_PAGEOBJ_FORM:
            inner = _times((own.a, own.b, own.c, own.d, own.e, own.f), matrix)
            yield from _path_objects(obj, fpdf.FPDFFormObj_CountObjects, fpdf.FPDFFormObj_GetObject, inner)


def _times(m: tuple, n: tuple) -> tuple:
    """The matrix m then n (PDF's row-vector convention)."""
    a, b, c, d, e, f = m
    A, B, C, D, E, F = n
    return (a * A + b * C, a * B + b * D, c * A + d * C, c * B + d * D, e * A + f * C + E, e * B + f * D + F)


def _subpaths(obj, matrix: tuple) -> Iterator[list[tuple[str, float, float]]]:
    """The path's subpaths as (operator, x, y) in page space; "h" closes back to the start."""
    current: list[tuple[str, float, float]] = []
    x, y = ctypes.c_float(), ctypes.c_float()
    a, b, c, d, e, f = matrix
    for i in range(fpdf.FPDFPath_CountSegments(obj)):
        segment = fpdf.FPDFPath_GetPathSegment(obj, i)
        fpdf.FPDFPathSegment_GetPoint(segment, x, y)
        op = _SEGMENT_KIND.get(fpdf.FPDFPathSegment_GetType(segment), "l")
        if op == "m" and current:
            yield current
            current = []
        current.append((op, a * x.value + c * y.value + e, b * x.value + d * y.value + f))
        if fpdf.FPDFPathSegment_GetClose(segment):
            current.append(("h", current[0][1], current[0][2]))
    if current:
        yield current


def _shape(points: list[tuple[str, float, float]]) -> tuple[str, list[tuple[float, float]]]:
    """pdfminer's verdict on one subpath: "line", "rect" or "curve", with its points.

    pdfium gives a Bézier curve as three "c" points (two controls, then the
    end); pdfminer keeps the end point only.
    """
    kept = [p for n, p in enumerate(points) if p[0] != "c" or _ends_bezier(points, n)]
    shape = "".join("c" if op == "c" else op for op, _, _ in kept)
    pts = [(px, py) for _, px, py in kept]
    if len(shape) > 3 and shape[-2:] == "lh" and pts[-2] == pts[0]:
        shape, pts = shape[:-2] + "h", pts[:-1]
    if shape in ("mlh", "ml"):
        return "line", pts[:2]
    if shape in ("mlllh", "mllll") and pts[0] == pts[4] and _square(pts):
        return "rect", pts
    return "curve", pts


def _ends_bezier(points: list, n: int) -> bool:
    """Whether the "c" point at n ends its curve (the third of a run of three)."""
    run = 0
    while n - run >= 0 and points[n - run][0] == "c":
        run += 1
    return run % 3 == 0


def _square(pts: list[tuple[float, float]]) -> bool:
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = pts[:4]
    return (x0 == x1 and y1 == y2 and x2 == x3 and y3 == y0) or (y0 == y1 and x1 == x2 and y2 == y3 and x3 == x0)


def _path_dict(kind: str, obj, pts: list, fill: bool, stroke: bool,
               height: float, doctop: float, number: int) -> dict:
    """One line/rect/curve as pdfplumber's dict (``pts`` flipped to top-down coordinates)."""
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    top = height - y1
    width = ctypes.c_float()
    fpdf.FPDFPageObj_GetStrokeWidth(obj, width)
    return {"object_type": kind, "page_number": number, "x0": x0, "x1": x1, "y0": y0, "y1": y1,
            "top": top, "bottom": height - y0, "doctop": doctop + top, "width": x1 - x0,
            "height": y1 - y0, "pts": [(px, height - py) for px, py in pts], "fill": fill,
            "stroke": stroke, "linewidth": width.value,
            "non_stroking_color": _colour(fpdf.FPDFPageObj_GetFillColor, obj),
            "stroking_color": _colour(fpdf.FPDFPageObj_GetStrokeColor, obj)}
