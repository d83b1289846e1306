"""Read our forms (application, consultation) from a PDF's text layer, however they were typed.

Forms arrive from reportlab, fpdf2, Word and LibreOffice, on our ruled
layout or retyped: other column widths, 「企業名：…」 on a plain text line,
two fields to a row, values wrapped over lines, options ticked with ☑/■/✓,
○ before them or an ellipse drawn around them. So the reader works on
characters, not on any one layout:

1. find the page that is a form (title and labels, see ``form_of_text``);
   a page whose text is garbled (``(cid:`` tokens, control characters) is
   not read at all, so that the OCR reader can take over;
2. drop the seal's red ink, mark circled options as ticked (■);
3. read ruled table rows (label | value, any number of pairs per row), then
   text lines for the rest: a label anywhere on a line starts a value that
   runs to the next label; an unlabelled line under a value continues it;
4. normalise (fields.py) and judge the seal (seal.py) on the 代表者氏名 row.
"""

from __future__ import annotations

import bisect
import colorsys
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import pdfplumber
from pdfplumber.utils import cluster_objects

from mailbot.forms import layout
from mailbot.forms.consultation import CONSULTATION
from mailbot.forms.fields import label_key, nfkc, normalise, pledge_value
from mailbot.forms.layout import Field, FormSpec
from mailbot.forms.reading import NO_SEAL, FormReading, Seal
from mailbot.forms.seal import NameRow, detect_seal

SPECS: tuple[FormSpec, ...] = (layout.APPLICATION, CONSULTATION)

# A page is a form when it has this many of the form's labels (fewer with its title:
# a cover letter may quote the title, but it has no table of labels).
_MIN_LABELS = 8
_MIN_LABELS_WITH_TITLE = 4
# Below this share of the form's labels the text layer is too damaged to trust.
_USABLE_SHARE = 0.5
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")
_RING_GLYPHS = "○◯〇"
_SEPARATORS = set(" \u3000\n:：|｜)）]】」.．、,，")
NEWLINE = {"text": "\n"}  # a line break inside a run of characters


# ---------------------------------------------------------------- seal ink

def is_red(color: object) -> bool:
    """A PDF fill/stroke colour that the red pixel mask would call seal red."""
    try:
        return _is_red(color)  # asked twice for each of a page's ~800 objects: one cache lookup
    except TypeError:  # unhashable: a list, or something with a list in it
        numbers = isinstance(color, list) and all(isinstance(v, (int, float)) for v in color)
        return numbers and _is_red(tuple(color))


@lru_cache(maxsize=4096)  # a page has a handful of colours and a thousand objects in them
def _is_red(color: object) -> bool:
    if not isinstance(color, tuple) or len(color) not in (3, 4):
        return False
    if not all(isinstance(v, (int, float)) for v in color):
        return False  # a pattern colour
    rgb = color if len(color) == 3 else tuple((1 - v) * (1 - color[3]) for v in color[:3])
    h, s, v = colorsys.rgb_to_hsv(*rgb)
    return (h <= 20 / 360 or h >= 330 / 360) and s >= 60 / 255 and v >= 70 / 255


def _not_seal_ink(obj: dict) -> bool:
    """Keep everything but red ink: a vector seal's characters leak into cells."""
    return not (is_red(obj.get("non_stroking_color")) or is_red(obj.get("stroking_color")))


def _drop_stamp_glyphs(chars: list[dict], bbox: tuple) -> list[dict]:
    """Without a non-red stamp's own characters (big glyphs inside the stamp).

    Red ones are already gone by colour; a black vector stamp's 「山」「田」
    would otherwise join the name and address cells.
    """
    big = 1.2 * _median_size(chars)
    x0, top, x1, bottom = bbox

    def inside(c: dict) -> bool:
        cx, cy = (c["x0"] + c["x1"]) / 2, (c["top"] + c["bottom"]) / 2
        return x0 <= cx <= x1 and top <= cy <= bottom

    return [c for c in chars if c["size"] <= big or not inside(c)]


# ---------------------------------------------------------------- which form

@lru_cache
def _labels(spec: FormSpec) -> tuple[tuple[str, Field], ...]:
    """(label as compared, field) for every label and alias of ``spec``, longest first."""
    pairs = [(label_key(lb).casefold(), f) for f in spec.fields() for lb in layout.labels(f)]
    return tuple(sorted(pairs, key=lambda p: -len(p[0])))


def _flat(text: str) -> str:
    """Text as labels are compared: NFKC, no spaces, case folded."""
    return label_key(text).casefold()


def _label_count(spec: FormSpec, flat: str) -> int:
    """How many of the form's fields have their label (or an alias) in ``flat``."""
    return len({f.key for key, f in _labels(spec) if key in flat})


def _form_score(spec: FormSpec, flat: str) -> float:
    """0 when the text is not this form; else the share of its labels (+1 with its title)."""
    count, titled = _label_count(spec, flat), _flat(spec.title) in flat
    need = _MIN_LABELS_WITH_TITLE if titled else min(_MIN_LABELS, len(spec.fields()) - 2)
    if count < need:
        return 0.0
    return count / len(spec.fields()) + titled


def form_of_text(text: str) -> FormSpec | None:
    """The form a page's text is (application or consultation), or None."""
    flat = _flat(text)
    score, spec = max((_form_score(s, flat), n) for n, s in enumerate(SPECS))
    return SPECS[spec] if score > 0 else None


def is_form_text(text: str) -> bool:
    """Whether a page's text is the application form: its title or enough labels.

    Lenient on purpose (OCR text: a readable title suffices); find_form uses
    the stricter ``form_of_text``.
    """
    flat = _flat(text)
    return _flat(layout.TITLE) in flat or _label_count(layout.APPLICATION, flat) >= _MIN_LABELS


def clean_text(text: str) -> bool:
    """No sign of a font without a Unicode map: ``(cid:N)`` tokens, control characters."""
    return "(cid:" not in text and not _CONTROL_RE.search(text)


def text_is_usable(page) -> bool:
    """Whether a pdfplumber page's text layer can be read as one of our forms.

    False for garbled text (``(cid:``, control characters) and for text with
    too few of a form's labels (wrong kanji from a font without ToUnicode):
    such a page is for the OCR reader.
    """
    text = page.filter(_not_seal_ink).extract_text() or ""
    return clean_text(text) and form_of_text(text) is not None


# ---------------------------------------------------------------- characters

def _median_size(chars: list[dict]) -> float:
    """The body text size of a page (the median character size)."""
    sizes = sorted(c["size"] for c in chars if "size" in c)
    return sizes[len(sizes) // 2] if sizes else 10.0


def _centre_in(c: dict, box: tuple) -> bool:
    """Whether a character's centre lies inside ``box`` (x0, top, x1, bottom)."""
    cx, cy = (c["x0"] + c["x1"]) / 2, (c["top"] + c["bottom"]) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def _is_ring(curve: dict, size: float) -> bool:
    """A closed curve wider than tall and a line or so high: an ellipse around a word.

    Round ones are left alone: a black stamp is round and sits on the name.
    """
    w, h = curve["x1"] - curve["x0"], curve["bottom"] - curve["top"]
    pts = curve.get("pts") or [(0, 0)]
    closed = abs(pts[0][0] - pts[-1][0]) < 2 and abs(pts[0][1] - pts[-1][1]) < 2
    return closed and w >= 1.2 * h and 0.8 * size <= h <= 3.5 * size


def _rings(page, chars: list[dict], size: float) -> tuple[list[tuple], set[int]]:
    """Bboxes circling options (drawn ellipses, big ○ glyphs) and the glyphs' ids."""
    glyphs = [c for c in chars if c["text"] in _RING_GLYPHS and c["size"] >= 1.5 * size]
    boxes = [(c["x0"], c["top"], c["x1"], c["bottom"]) for c in glyphs]
    boxes += [(c["x0"], c["top"], c["x1"], c["bottom"]) for c in page.curves if _is_ring(c, size)]
    return boxes, {id(c) for c in glyphs}


def page_chars(page) -> list[dict]:
    """The page's characters with every circled option marked ticked (■ before it)."""
    chars = [c for c in page.chars if c["text"]]
    boxes, glyphs = _rings(page, chars, _median_size(chars))
    chars = [c for c in chars if id(c) not in glyphs]
    for box in boxes:
        inside = [i for i, c in enumerate(chars) if _centre_in(c, box)]
        if inside:
            first = min(inside, key=lambda i: chars[i]["x0"])
            chars[first] = dict(chars[first], text=layout.BOX_TICKED + chars[first]["text"])
    return chars


def _join(run: list[dict]) -> str:
    """The text of a run of characters: a space where there is a gap, NEWLINE kept."""
    out, prev = [], None
    for c in run:
        if c is NEWLINE:
            out.append("\n")
            prev = None
            continue
        if prev is not None and c["x0"] - prev["x1"] > 0.3 * min(c["size"], prev["size"]):
            out.append(" ")
        out.append(c["text"])
        prev = c
    return "".join(out)


def text_lines(chars: list[dict]) -> list[dict]:
    """Characters grouped into lines (dicts like pdfplumber's text lines), top to bottom."""
    lines = []
    for group in cluster_objects(chars, lambda c: c["bottom"], 2.5):
        group.sort(key=lambda c: c["x0"])
        lines.append({"text": _join(group), "chars": group, "x0": group[0]["x0"],
                      "x1": max(c["x1"] for c in group), "top": min(c["top"] for c in group),
                      "bottom": max(c["bottom"] for c in group)})
    return sorted(lines, key=lambda ln: ln["top"])


# ---------------------------------------------------------------- labels in a run

@dataclass
class Segment:
    """A label found in a run of characters and the characters of its value."""

    field: Field
    label: list[dict]
    value: list[dict]

    @property
    def text(self) -> str:
        """The value's text, without the colon or note right after the label."""
        text = _join(self.value).strip(" \u3000\n")
        text = re.sub(r"^[:：]\s*", "", text)
        return "" if re.fullmatch(r"[（(][^）)]*[）)]", text) else text  # 「（必須）」


def _normalised_index(run: list[dict]) -> tuple[str, list[int]]:
    """The run as labels are compared, and the run index of each of its characters."""
    norm, where = [], []
    for i, c in enumerate(run):
        for ch in _compared(c["text"]):
            norm.append(ch)
            where.append(i)
    return "".join(norm), where


@lru_cache(maxsize=8192)  # a form has a few hundred distinct characters, each seen many times
def _compared(text: str) -> str:
    """A character as labels are compared: NFKC, case-folded, without white space."""
    return "".join(ch for ch in nfkc(text).casefold() if not ch.isspace())


def _starts_word(run: list[dict], i: int) -> bool:
    """A label counts at the start of a run, after a separator or after a gap."""
    if i == 0 or run[i - 1] is NEWLINE or run[i - 1]["text"][-1:] in _SEPARATORS:
        return True
    prev, c = run[i - 1], run[i]
    return "x0" in c and c["x0"] - prev["x1"] > 0.5 * c["size"]


def _label_hits(run: list[dict], spec: FormSpec) -> list[tuple[int, int, Field]]:
    """(start, end, field) of every label in the run, longest label first, no overlaps."""
    norm, where = _normalised_index(run)
    taken, hits = [False] * len(norm), []
    for key, f in _labels(spec):
        start = norm.find(key)
        while start >= 0:
            end = start + len(key)
            if not any(taken[start:end]) and _starts_word(run, where[start]):
                taken[start:end] = [True] * len(key)
                hits.append((where[start], where[end - 1] + 1, f))
            start = norm.find(key, end)
    return sorted(hits, key=lambda h: h[0])


def segments(run: list[dict], spec: FormSpec = layout.APPLICATION) -> list[Segment]:
    """The labelled values of a run: each label's value runs to the next label."""
    hits = _label_hits(run, spec)
    ends = [h[0] for h in hits[1:]] + [len(run)]
    return [Segment(f, run[start:end], run[end:stop]) for (start, end, f), stop in zip(hits, ends)]


# ---------------------------------------------------------------- ruled tables

@dataclass
class Cell:
    """A labelled value read from a table row, with the row and label boxes."""

    segment: Segment
    row: tuple
    label_x1: float


def _cell_run(line_chars: list[dict], box: tuple) -> list[dict]:
    """The characters of a table cell, line by line (NEWLINE between lines)."""
    run: list[dict] = []
    for line in text_lines([c for c in line_chars if _centre_in(c, box)]):
        run += ([NEWLINE] if run else []) + line["chars"]
    return run


def _row_chars(chars: list[dict], centres: list[float], bbox: tuple) -> list[dict]:
    """The characters whose vertical centre is inside a row (``chars`` sorted by centre)."""
    lo, hi = bisect.bisect_left(centres, bbox[1]), bisect.bisect_right(centres, bbox[3])
    return chars[lo:hi]


def _row_cells(runs: list[list[dict]], boxes: list[tuple], row: tuple, spec: FormSpec) -> Iterator[Cell]:
    """Labelled values of one row: a label cell takes the next cell as its value."""
    for i, run in enumerate(runs):
        found = segments(run, spec)
        for n, seg in enumerate(found):
            last, nxt = n == len(found) - 1, runs[i + 1] if i + 1 < len(runs) else None
            if last and not seg.text and nxt and not _starts_with_label(nxt, spec):
                seg = Segment(seg.field, seg.label, nxt)
            yield Cell(seg, row, boxes[i][2] if last else seg.label[-1]["x1"])


def _starts_with_label(run: list[dict], spec: FormSpec) -> bool:
    """Whether a cell begins with a label (then it is not the previous label's value)."""
    hits = _label_hits(run, spec)
    return bool(hits) and not _join(run[: hits[0][0]]).strip()


def table_cells(page, chars: list[dict], spec: FormSpec = layout.APPLICATION) -> list[Cell]:
    """Every labelled value in the page's ruled tables."""
    chars = sorted(chars, key=lambda c: (c["top"] + c["bottom"]) / 2)
    centres = [(c["top"] + c["bottom"]) / 2 for c in chars]
    cells = []
    for table in page.find_tables():
        for row in table.rows:
            boxes = [b for b in row.cells if b is not None]
            # Text that overflows the last cell (a Word table laid out by
            # LibreOffice) still belongs to it.
            boxes[-1] = (*boxes[-1][:2], float("inf"), boxes[-1][3])
            in_row = _row_chars(chars, centres, row.bbox)
            runs = [_cell_run(in_row, b) for b in boxes]
            cells += _row_cells(runs, boxes, row.bbox, spec)
    return cells


# ---------------------------------------------------------------- text lines

_CONTINUED_KINDS = ("text", "datetimes", "choice", "multi", "country", "bool")


@lru_cache
def _furniture(spec: FormSpec) -> tuple[str, ...]:
    """Printed text that is never a value: title, addressee, headings, pledges."""
    heads = [spec.title, layout.ADDRESSEE, layout.PLEDGE_HEADING[:6]]
    heads += [re.sub(r"^[\d.．\s]+", "", s.title) for s in spec.sections]
    heads += [p.text[:12] for p in spec.pledges]
    return tuple(_flat(h) for h in heads)


def _is_furniture(line: dict, spec: FormSpec) -> bool:
    """A title, heading or pledge line (numbering and brackets ignored)."""
    flat = re.sub(r"^[\W\d_]+", "", _flat(line["text"]))
    return any(flat.startswith(h) or (len(h) >= 12 and h in flat) for h in _furniture(spec))


def _continued(prev: tuple[list[Segment], dict] | None, line: dict) -> Segment | None:
    """The value an unlabelled line continues: just below it and under its column.

    A line under the value column continues that value; one under the
    label (no hanging indent, as Word wraps) continues free text only.
    """
    if prev is None:
        return None
    found, above = prev
    height = above["bottom"] - above["top"]
    if line["top"] - above["bottom"] > 0.8 * height:
        return None
    columns = [s for s in found if _value_x0(s) <= line["x0"] + 2]
    seg = columns[-1] if columns else found[0]
    under_value = bool(columns)
    if seg.field.kind not in _CONTINUED_KINDS or not (under_value or seg.field.kind in ("text", "datetimes")):
        return None
    return seg


def _value_x0(seg: Segment) -> float:
    """Where a value's column starts: its first character, else the label's end."""
    first = next((c for c in seg.value if c is not NEWLINE and c["text"].strip(" \u3000:：")), None)
    return first["x0"] if first else seg.label[-1]["x1"]


def line_segments(lines: list[dict], spec: FormSpec = layout.APPLICATION) -> list[tuple[Segment, dict]]:
    """(segment, its first line) for every label on the lines, wrapped values joined."""
    out: list[tuple[Segment, dict]] = []
    prev: tuple[list[Segment], dict] | None = None
    for line in lines:
        found = segments(line["chars"], spec)
        if found:  # a heading that repeats a label (3. 対象国・地域) reads as a blank value
            out += [(s, line) for s in found]
            prev = (found, line)
        elif not _is_furniture(line, spec) and (seg := _continued(prev, line)) is not None:
            seg.value += [NEWLINE, *line["chars"]]
            prev = (prev[0], line)
        else:
            prev = None
    return out


def name_row_from_lines(lines: list[dict]) -> NameRow | None:
    """The 代表者氏名 row when it is not in a ruled table: its text line."""
    for line in lines:
        for seg in segments(line["chars"], layout.APPLICATION):
            if seg.field.seal_mark:
                return NameRow(line["top"], line["bottom"], seg.label[-1]["x1"])
    return None


def _name_row(cells: list[Cell], lines: list[dict]) -> NameRow | None:
    """Where the seal belongs: the 代表者氏名 table row, else its text line."""
    for cell in cells:
        if cell.segment.field.seal_mark:
            return NameRow(cell.row[1], cell.row[3], cell.label_x1)
    return name_row_from_lines(lines)


def name_row(page) -> NameRow | None:
    """Where the seal belongs on a pdfplumber page (red ink filtered out or not)."""
    chars = page_chars(page)
    return _name_row(table_cells(page, chars), text_lines(chars))


# ---------------------------------------------------------------- raw values

def _put(raw: dict[str, str], key: str, text: str) -> None:
    """Keep the first non-blank value for a key (a heading may repeat a label)."""
    if not raw.get(key, "").strip():
        raw[key] = text


def _pledges(lines: list[dict], spec: FormSpec) -> dict[str, str]:
    """{key: line text} for the lines that hold a pledge (its first words suffice)."""
    raw = {}
    for pledge in spec.pledges:
        head = _flat(pledge.text)[:12]
        raw.update(next(({pledge.key: ln["text"]} for ln in lines if head in _flat(ln["text"])), {}))
    return raw


def raw_values(cells: list[Cell], lines: list[dict], spec: FormSpec) -> dict[str, str]:
    """Raw value text per key: table cells first, then text lines, then pledges."""
    raw: dict[str, str] = {}
    for cell in cells:
        _put(raw, cell.segment.field.key, cell.segment.text)
    for seg, _line in line_segments(lines, spec):
        _put(raw, seg.field.key, seg.text)
    return raw | _pledges(lines, spec)


def _normalised(raw: dict[str, str], spec: FormSpec) -> tuple[dict, dict[str, str]]:
    """(fields, originals): blank values left out of both."""
    fields, originals = {}, {}
    for key, text in raw.items():
        if key.startswith("pledge_"):
            value = pledge_value(text)
        else:
            f = spec.field_by_key(key)
            value = normalise(f, _strip_seal_mark(text) if f.seal_mark else text)
        if value is not None:
            fields[key], originals[key] = value, text.strip()
    return fields, originals


def _strip_seal_mark(text: str) -> str:
    """The name without the printed 印 (or ㊞) at the end of its cell."""
    return re.sub(r"\s*[印㊞]\s*$", "", text)


# ---------------------------------------------------------------- pages

def _read_page(data: bytes, page, page_no: int, spec: FormSpec,
               chars: list[dict], lines: list[dict]) -> tuple[dict[str, str], Seal]:
    """Raw values and the seal of the form page (1-based ``page_no``; red ink filtered)."""
    cells = table_cells(page, chars, spec)
    if not spec.seal:
        return raw_values(cells, lines, spec), NO_SEAL
    # pdfium's page (forms/pdfium_pages.py) is still open: the seal is rendered from it.
    seal = detect_seal(data, page_no, _name_row(cells, lines), getattr(page, "pdfium_page", None))
    if seal.present and seal.color != "red" and seal.bbox:
        kept = _drop_stamp_glyphs(chars, seal.bbox)
        if len(kept) < len(chars):  # read again only when the stamp had glyphs of its own
            cells, lines = table_cells(page, kept, spec), text_lines(kept)
    return raw_values(cells, lines, spec), seal


def _continuation(pdf: pdfplumber.PDF, index: int, spec: FormSpec) -> dict[str, str]:
    """Raw values from the page after the form (0-based ``index``): a form may take two.

    Not when that page is garbled or is itself the start of a form.
    """
    if index >= len(pdf.pages):
        return {}
    page = pdf.pages[index]
    try:
        clean = page.filter(_not_seal_ink)
        chars, lines, text = _laid_out(clean)
        if not clean_text(text) or any(_flat(s.title) in _flat(text) for s in SPECS):
            return {}
        return raw_values(table_cells(clean, chars, spec), lines, spec)
    finally:
        page.close()


def _laid_out(page) -> tuple[list[dict], list[dict], str]:
    """A page's characters, their lines and the lines' text.

    The text serves to recognise the page: pdfplumber's extract_text would
    lay the characters out a second time.
    """
    chars = page_chars(page)
    lines = text_lines(chars)
    return chars, lines, "\n".join(line["text"] for line in lines)


def _seen_share(raw: dict[str, str], spec: FormSpec) -> float:
    """The share of the form's labels that were found (blank or not)."""
    return sum(f.key in raw for f in spec.fields()) / len(spec.fields())


def _form_page(data: bytes, page, number: int) -> tuple[FormSpec, dict, Seal] | None | bool:
    """(spec, raw, seal) when the page is a form; None when not; False when garbled."""
    clean = page.filter(_not_seal_ink)
    chars, lines, text = _laid_out(clean)
    spec = form_of_text(text)
    if spec is None:
        return None
    if not clean_text(text):
        return False
    return spec, *_read_page(data, clean, number, spec, chars, lines)


def find_form(data: bytes, pdf: pdfplumber.PDF) -> FormReading | None:
    """Read the first page that is one of our forms (and the page after it).

    None when no page is, or when the form's text layer is too damaged to
    read (then the OCR reader takes over). ``pages`` is left 0 for read.py.
    """
    for number, page in enumerate(pdf.pages, start=1):
        try:
            found = _form_page(data, page, number)
        finally:
            page.close()  # pdfplumber caches every object of a page until closed
        if found is False:
            return None
        if found:
            spec, raw, seal = found
            raw = {k: v for k, v in _continuation(pdf, number, spec).items() if k not in raw} | raw
            if _seen_share(raw, spec) < _USABLE_SHARE:
                return None
            return FormReading(spec.name, "text", 0, number, *_normalised(raw, spec), seal)
    return None
