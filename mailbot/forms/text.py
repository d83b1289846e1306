"""Read the application form from a PDF's text layer (text PDFs from Word, LibreOffice, ours).

Find the page that is our form (by title and labels), read its ruled tables
(label | value) with the seal's red ink filtered out, fall back to text lines
for what is outside the tables (提出日, pledges), normalise (fields.py) and
judge the seal (seal.py).
"""

from __future__ import annotations

import colorsys
import re
from collections.abc import Iterator

import pdfplumber

from mailbot.forms import layout
from mailbot.forms.fields import label_key, normalise, pledge_value
from mailbot.forms.reading import FormReading, Seal
from mailbot.forms.seal import NameRow, detect_seal

# A form page has its title, or at least this many of its table labels.
_MIN_LABELS = 8


# ---------------------------------------------------------------- seal ink

def is_red(color: object) -> bool:
    """A PDF fill/stroke colour that the red pixel mask would call seal red."""
    if not isinstance(color, (tuple, list)) or len(color) not in (3, 4):
        return False
    if not all(isinstance(v, (int, float)) for v in color):
        return False  # a pattern colour
    rgb = color if len(color) == 3 else tuple((1 - v) * (1 - color[3]) for v in color[:3])
    h, s, v = colorsys.rgb_to_hsv(*rgb)
    return (h <= 20 / 360 or h >= 330 / 360) and s >= 60 / 255 and v >= 70 / 255


def _not_seal_ink(obj: dict) -> bool:
    """Keep everything but red ink: a vector seal's characters leak into cells."""
    return not (is_red(obj.get("non_stroking_color")) or is_red(obj.get("stroking_color")))


def _stamp_text_filter(page, seal) -> object:
    """Drop a non-red stamp's own characters (big glyphs inside the stamp).

    Red ones are already gone by colour; a black vector stamp's 「山」「田」
    would otherwise join the name and address cells.
    """
    sizes = sorted(ch["size"] for ch in page.chars) or [0.0]
    big = 1.2 * sizes[len(sizes) // 2]
    x0, top, x1, bottom = seal.bbox

    def keep(obj: dict) -> bool:
        if obj.get("object_type") != "char" or obj["size"] <= big:
            return True
        cx, cy = (obj["x0"] + obj["x1"]) / 2, (obj["top"] + obj["bottom"]) / 2
        return not (x0 <= cx <= x1 and top <= cy <= bottom)

    return page.filter(keep)


# ---------------------------------------------------------------- finding the form

_TABLE_LABELS = {label_key(f.label).casefold(): f for f in layout.table_fields()}


def _label_field(text: str | None) -> layout.Field | None:
    """The field whose label a label cell shows (exact, then by its start)."""
    key = label_key(text or "").casefold()
    if key in _TABLE_LABELS:
        return _TABLE_LABELS[key]
    for label in sorted(_TABLE_LABELS, key=len, reverse=True):  # 「E-mail（必須）」
        if key.startswith(label):
            return _TABLE_LABELS[label]
    return None


def is_form_text(text: str) -> bool:
    """Whether a page's text is the application form: its title or enough labels."""
    flat = label_key(text).casefold()
    if label_key(layout.TITLE).casefold() in flat:
        return True
    return sum(label in flat for label in _TABLE_LABELS) >= _MIN_LABELS


# ---------------------------------------------------------------- reading cells and lines

def _label_values(cells: list[str | None]) -> Iterator[tuple[layout.Field, str]]:
    """(field, value text) pairs of one table row: label | value (| label | value…)."""
    texts = [c for c in cells if c is not None]
    for i, text in enumerate(texts[:-1]):
        f = _label_field(text)
        if f is not None:
            yield f, texts[i + 1]


def _table_rows(page) -> Iterator[tuple[layout.Field, str, tuple, tuple]]:
    """(field, value text, row bbox, label cell bbox) for every labelled table row."""
    for table in page.find_tables():
        for row, cells in zip(table.rows, table.extract()):
            label_cell = next((c for c in row.cells if c is not None), row.bbox)
            for f, value in _label_values(cells):
                yield f, value, row.bbox, label_cell


def _line_value(label: str, line: str) -> str | None:
    """The rest of a text line after ``label`` (spaced or not, with a colon or not)."""
    pattern = r"\s*".join(map(re.escape, label_key(label))) + r"\s*[:：]?\s*(.*)$"
    m = re.search(pattern, line)
    return m.group(1) if m else None


def _text_lines(page) -> list[dict]:
    """pdfplumber's text lines of a page (text, top, bottom, chars…)."""
    return page.extract_text_lines()


def name_row_from_lines(lines: list[dict]) -> NameRow | None:
    """The 代表者氏名 row when it is not in a ruled table: its text line."""
    label = label_key(layout.field_by_key("representative_name").label)
    for line in lines:
        if label_key(line["text"]).startswith(label):
            chars = [c for c in line["chars"] if c["text"].strip()]
            x1 = chars[len(label) - 1]["x1"] if len(chars) >= len(label) else line["x1"]
            return NameRow(line["top"], line["bottom"], x1)  # is_near adds the slack
    return None


def name_row(page) -> NameRow | None:
    """Where the seal belongs: the 代表者氏名 table row, else its text line."""
    for f, _value, bbox, label_cell in _table_rows(page):
        if f.seal_mark:
            return NameRow(bbox[1], bbox[3], label_cell[2])
    return name_row_from_lines(_text_lines(page))


def _cell_texts(page) -> dict[str, str]:
    """Raw value text per key: table cells first, then text lines, then pledges."""
    raw: dict[str, str] = {}
    for f, value, _bbox, _label in _table_rows(page):
        raw.setdefault(f.key, value)
    lines = [line["text"] for line in _text_lines(page)]
    for f in (layout.SUBMITTED_ON, *layout.table_fields()):
        if f.key not in raw:
            raw.update(_from_lines(f, lines))
    for pledge in layout.PLEDGES:
        raw.update(_pledge_line(pledge, lines))
    return raw


def _from_lines(f: layout.Field, lines: list[str]) -> dict[str, str]:
    """{key: text} from the first line that starts with the field's label."""
    for line in lines:
        if label_key(line).startswith(label_key(f.label)):
            value = _line_value(f.label, line)
            return {f.key: value} if value is not None else {}
    return {}


def _pledge_line(pledge: layout.Pledge, lines: list[str]) -> dict[str, str]:
    """{key: line} for the line that holds the pledge (its first words suffice)."""
    head = label_key(pledge.text)[:12]
    return next(({pledge.key: ln} for ln in lines if head in label_key(ln)), {})


def _normalised(raw: dict[str, str]) -> tuple[dict, dict[str, str]]:
    """(fields, originals): blank values left out of both."""
    fields, originals = {}, {}
    for key, text in raw.items():
        if key.startswith("pledge_"):
            value = pledge_value(text)
        else:
            f = layout.field_by_key(key)
            value = normalise(f, _strip_seal_mark(text) if f.seal_mark else text)
        if value is not None:
            fields[key], originals[key] = value, text.strip()
    return fields, originals


def _strip_seal_mark(text: str) -> str:
    """The name without the printed 印 (or ㊞) at the end of its cell."""
    return re.sub(r"\s*[印㊞]\s*$", "", text)


def _read_page(data: bytes, page, page_no: int) -> tuple[dict[str, str], Seal]:
    """Raw cell texts and the seal of the form page (1-based ``page_no``)."""
    clean = page.filter(_not_seal_ink)
    seal = detect_seal(data, page_no, name_row(clean))
    if seal.present and seal.color != "red" and seal.bbox:
        clean = _stamp_text_filter(clean, seal)
    return _cell_texts(clean), seal


def _continuation(pdf: pdfplumber.PDF, index: int) -> dict[str, str]:
    """Raw texts from the page after the form (0-based ``index``): a form may take two."""
    if index >= len(pdf.pages):
        return {}
    page = pdf.pages[index]
    try:
        return _cell_texts(page.filter(_not_seal_ink))
    finally:
        page.close()


def find_form(data: bytes, pdf: pdfplumber.PDF) -> FormReading | None:
    """Read the first page that is our form (and the page after it); None if none is."""
    for number, page in enumerate(pdf.pages, start=1):
        try:
            if not is_form_text(page.filter(_not_seal_ink).extract_text() or ""):
                continue
            raw, seal = _read_page(data, page, number)
        finally:
            page.close()  # pdfplumber caches every object of a page until closed
        raw = _continuation(pdf, number) | raw  # the form page wins on a clash
        return FormReading("application", "text", 0, number, *_normalised(raw), seal)
    return None
