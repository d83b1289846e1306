"""Our forms as fillable PDFs (AcroForm), blank or filled in.

    python -m mailbot.forms.fillable [OUTPUT_DIR]

writes the shipped blanks (mailbot/forms/blank/application-form-fillable.pdf
and consultation-form-fillable.pdf) into OUTPUT_DIR (that folder by default).
Every function takes the form as a ``spec`` (layout.FormSpec) and defaults
to the application, so the application's calls and bytes are as they were.

The page is fill.py's text form with empty value cells; the widgets are put
where that page prints its value cells, □ boxes and 「国名：」 gap, measured
with pdfplumber, so the layout is defined once (layout.py) and drawn once
(fill.py). reportlab makes the empty widgets; pypdf fills them, because
reportlab's AcroForm cannot take Japanese values (shared/notes/pdf.md).

Field names: the key of a text field (``company_name``), ``<key>.<value>``
for each option box (``country.VN``, ``base_kinds.factory``), the pledge key
for a pledge box, and ``country_europe_name`` for the 欧州（国名：…） gap.
The consultation form's 希望日時 (preferred_dates) is one multi-line text
field, ``preferred_dates``, filled with the lines the text form prints
(「第1希望：2026年12月3日 14:00」, one per wish): one field reads back through
the same normaliser as the printed cell, and an applicant may write a wish
the way they like. It has no 印, so no seal variants.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import pdfplumber
from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NumberObject,
    TextStringObject,
)
from reportlab.pdfgen.canvas import Canvas

from mailbot.forms import layout
from mailbot.forms.consultation import CONSULTATION
from mailbot.forms.fields import EUROPE_CODES, label_key
from mailbot.forms.fill import (
    MARGIN,
    MINCHO,
    PAGE_H,
    PAGE_W,
    SEAL_RADIUS,
    VERMILION,
    render_form,
    value_text,
)

BLANK_DIR = Path(__file__).parent / "blank"
BLANK_NAMES = {"application": "application-form-fillable.pdf",
               "consultation": "consultation-form-fillable.pdf"}
BLANK_PATH = BLANK_DIR / BLANK_NAMES["application"]
SPECS = (layout.APPLICATION, CONSULTATION)
EUROPE_NAME_FIELD = "country_europe_name"
SEALS = ("none", "image", "stamp_annotation", "misplaced", "black_stamp")
ON, OFF = "/Yes", "/Off"  # reportlab's checkbox states
FONT_SIZE = 9.5
BLACK_INK = (0.08, 0.08, 0.08)



def blank_path(spec: layout.FormSpec = layout.APPLICATION) -> Path:
    """Where the shipped blank fillable ``spec`` form lives."""
    return BLANK_DIR / BLANK_NAMES[spec.name]


def _empty_cells(spec: layout.FormSpec) -> dict[str, str]:
    """Values that print ``spec`` with its value cells empty.

    fill.py prints placeholders in empty cells (「　　　名」, 「年　月　日」); a
    widget's value would be drawn over them, so the page under the widgets
    gets empty cells. 提出日 gets full-width spaces: a gap for its widget,
    since the label is right-aligned and would otherwise sit where the value goes.
    """
    gaps = {f.key: "\u3000" * 12 for f in spec.header if f is layout.SUBMITTED_ON}
    return {**gaps, **{f.key: "" for f in spec.table_fields() if f.unit}}


def _page(spec: layout.FormSpec, seal: str = "none", seal_kind: str = "vector") -> bytes:
    """The page under ``spec``'s widgets: fill.py's form with empty value cells."""
    return render_form(spec, _empty_cells(spec), seal=seal, seal_kind=seal_kind)


def option_name(key: str, value: object) -> str:
    """The checkbox name of one option: ``country.VN``, ``base_kinds.factory``."""
    return f"{key}.{value}"


@dataclass(frozen=True)
class Widget:
    """One widget to create: its name, "text"/"multiline"/"check", and where.

    ``rect`` is (x0, top, x1, bottom) in pdfplumber's coordinates.
    """

    name: str
    kind: str
    rect: tuple[float, float, float, float]


# ---------------------------------------------------------------- measuring the page

def _label_field(text: str | None, spec: layout.FormSpec) -> layout.Field | None:
    """The table field of ``spec`` whose label a label cell shows."""
    key = label_key(text or "")
    return next((f for f in spec.table_fields() if label_key(f.label) == key), None)


def _cells(page, spec: layout.FormSpec) -> list[tuple[layout.Field, tuple]]:
    """(field, value cell bbox) for every row of the page's ruled tables."""
    found = []
    for table in page.find_tables():
        for row, cells in zip(table.rows, table.extract()):
            f = _label_field(cells[0], spec)
            if f is not None and row.cells[1] is not None:
                found.append((f, row.cells[1]))
    return found


def _chars_in(page, bbox: tuple, text: str) -> list[dict]:
    """The characters ``text`` inside ``bbox``, in reading order."""
    x0, top, x1, bottom = bbox
    chars = [c for c in page.chars if c["text"] == text and x0 <= c["x0"] and c["x1"] <= x1
             and top <= c["top"] and c["bottom"] <= bottom]
    return sorted(chars, key=lambda c: (round(c["top"]), c["x0"]))


def _box(char: dict) -> tuple[float, float, float, float]:
    """A checkbox square over a printed □ glyph."""
    size = char["x1"] - char["x0"]
    mid = (char["top"] + char["bottom"]) / 2
    return char["x0"], mid - size / 2, char["x1"], mid + size / 2


def _option_widgets(page, f: layout.Field, cell: tuple) -> list[Widget]:
    """A checkbox on each printed □ of an option cell; the 国名 gap for 欧州."""
    boxes = _chars_in(page, cell, layout.BOX_EMPTY)
    widgets = [Widget(option_name(f.key, value), "check", _box(ch))
               for ch, (_label, value) in zip(boxes, f.options)]
    if f.kind == "country":
        colon, close = _chars_in(page, cell, "：")[-1], _chars_in(page, cell, "）")[-1]
        rect = (colon["x1"], colon["top"] - 2, close["x0"], colon["bottom"] + 2)
        widgets.append(Widget(EUROPE_NAME_FIELD, "text", rect))
    return widgets


def _text_widget(f: layout.Field, cell: tuple) -> Widget:
    """A text field filling the value cell (short of the 印 mark on its row)."""
    x0, top, x1, bottom = cell
    right = x1 - (26 if f.seal_mark else 3)
    return Widget(f.key, "multiline" if f.lines > 1 else "text", (x0 + 3, top + 2, right, bottom - 2))


def _submitted_widget(page) -> Widget:
    """提出日: the gap after 「提出日：」 up to the right margin."""
    match = page.search(f"{layout.SUBMITTED_LABEL}：", regex=False)[0]
    rect = (match["x1"] + 1, match["top"] - 3, PAGE_W - MARGIN, match["bottom"] + 3)
    return Widget(layout.SUBMITTED_ON.key, "text", rect)


def _pledge_widgets(page, spec: layout.FormSpec) -> list[Widget]:
    """A checkbox over the □ that starts each pledge line."""
    widgets = []
    for pledge in spec.pledges:
        match = page.search(pledge.text[:12], regex=False)[0]
        line = (0, match["top"] - 2, match["x0"], match["bottom"] + 2)
        widgets.append(Widget(pledge.key, "check", _box(_chars_in(page, line, layout.BOX_EMPTY)[0])))
    return widgets


def measure(page_pdf: bytes, spec: layout.FormSpec = layout.APPLICATION
            ) -> tuple[list[Widget], tuple[float, float] | None]:
    """The widgets for a page of ``spec`` printed by fill.py, and the centre (x, top) of its 印.

    The 印 is None on a form without one (the consultation form).
    """
    with pdfplumber.open(io.BytesIO(page_pdf)) as pdf:
        page = pdf.pages[0]
        widgets = [_submitted_widget(page)] if layout.SUBMITTED_ON in spec.header else []
        mark = None
        for f, cell in _cells(page, spec):
            widgets += _option_widgets(page, f, cell) if f.options else [_text_widget(f, cell)]
            if f.seal_mark:
                seal = _chars_in(page, cell, layout.SEAL_MARK)[-1]
                mark = ((seal["x0"] + seal["x1"]) / 2, (seal["top"] + seal["bottom"]) / 2)
        return widgets + _pledge_widgets(page, spec), mark


# ---------------------------------------------------------------- building the blank

def _add_widget(canvas: Canvas, w: Widget) -> None:
    """One empty, borderless widget (the page's own rules and □ frame it)."""
    x0, top, x1, bottom = w.rect
    common = {"name": w.name, "x": x0, "y": PAGE_H - bottom, "borderWidth": 0, "fillColor": None,
              "borderColor": None, "textColor": None, "annotationFlags": "print"}
    if w.kind == "check":
        canvas.acroForm.checkbox(size=x1 - x0, buttonStyle="cross", fieldFlags="", **common)
        return
    # Auto size (0) where a long value must still fit: the 国名 gap.
    size = 0 if w.name == EUROPE_NAME_FIELD else FONT_SIZE
    canvas.acroForm.textfield(width=x1 - x0, height=bottom - top, maxlen=None, fontName="Helvetica",
                              fontSize=size, fieldFlags="multiline" if w.kind == "multiline" else "",
                              **common)


def _widget_layer(widgets: list[Widget]) -> bytes:
    """A page holding only the widgets (and the AcroForm that lists them)."""
    buf = io.BytesIO()
    canvas = Canvas(buf, pagesize=(PAGE_W, PAGE_H), invariant=1)
    for w in widgets:
        _add_widget(canvas, w)
    canvas.showPage()
    canvas.save()
    return buf.getvalue()


def build_fillable(page_pdf: bytes, spec: layout.FormSpec = layout.APPLICATION) -> bytes:
    """Widgets over a page of ``spec`` printed by fill.py: the fillable form on that page."""
    widgets, _mark = measure(page_pdf, spec)
    writer = PdfWriter(clone_from=io.BytesIO(_widget_layer(widgets)))
    writer.pages[0].merge_page(PdfReader(io.BytesIO(page_pdf)).pages[0], over=False)
    writer.add_metadata({"/Title": spec.title})
    return _written(writer)


def _written(writer: PdfWriter) -> bytes:
    """The writer's PDF, compressed."""
    for page in writer.pages:
        page.compress_content_streams()
    writer.compress_identical_objects()  # reportlab repeats every checkbox's appearance
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


@cache
def blank_fillable(spec: layout.FormSpec = layout.APPLICATION) -> bytes:
    """The shipped blank fillable ``spec`` form, built from code (same bytes every time)."""
    return build_fillable(_page(spec), spec)


def write_blank(path: Path | None = None, spec: layout.FormSpec = layout.APPLICATION) -> Path:
    """Write the blank fillable ``spec`` form to ``path`` (its shipped file by default)."""
    path = path or blank_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blank_fillable(spec))
    return path


def write_blanks(out_dir: Path = BLANK_DIR) -> list[Path]:
    """Write the blank fillable form of every form into ``out_dir``; their paths."""
    return [write_blank(out_dir / BLANK_NAMES[spec.name], spec) for spec in SPECS]


# ---------------------------------------------------------------- filling in

def _europe_name(code: str) -> str:
    """The Japanese name typed into the 国名 gap for EU:<code>."""
    return next((ja for ja, c in EUROPE_CODES.items() if c == code), code)


def _option_states(f: layout.Field, value: object) -> dict[str, str]:
    """ON/OFF per option box of ``f`` (plus the 国名 for EU:<code>)."""
    ticked = set(value) if isinstance(value, (list, tuple, set)) else {value}
    states = {}
    if f.kind == "country" and str(value).startswith("EU:"):
        ticked = {"EU"}
        states[EUROPE_NAME_FIELD] = _europe_name(str(value)[3:])
    for _label, option in f.options:
        states[option_name(f.key, option)] = ON if option in ticked else OFF
    return states


def _text_value(f: layout.Field, value: object) -> str:
    """A text widget's value: what the printed form shows in the cell.

    A 希望日時 that is text, not a list (a wish the reader kept unread), is
    typed as it is: value_text would take it for a list of characters.
    """
    if f.kind == "datetimes" and isinstance(value, str):
        return value
    return value_text(f, value)


def field_values(values: dict, spec: layout.FormSpec = layout.APPLICATION) -> dict[str, str]:
    """Widget name → value for pypdf, from FormReading.fields-style ``values``."""
    out: dict[str, str] = {}
    for f in spec.fields():
        if f.key in values:
            value = values[f.key]
            out.update(_option_states(f, value) if f.options else {f.key: _text_value(f, value)})
    for pledge in spec.pledges:
        out[pledge.key] = ON if values.get(pledge.key) else OFF
    return out


def _fill(writer: PdfWriter, named: dict[str, str]) -> None:
    """Set every widget's value; pypdf draws the ASCII ones, viewers the rest.

    pypdf can only draw a value in the widget's font (Helvetica); Japanese
    would come out as mojibake, so those get /V alone and NeedAppearances
    tells the viewer to draw them.
    """
    ascii_only = {k: v for k, v in named.items() if v.isascii()}
    writer.update_page_form_field_values(writer.pages[0], ascii_only, auto_regenerate=True)
    for annot in writer.pages[0].get("/Annots", []):
        widget = annot.get_object()
        value = named.get(widget.get("/T"))
        if value is not None and not value.isascii():
            widget[NameObject("/V")] = TextStringObject(value)


def render_fillable(values: dict | None = None, *, seal: str = "none",
                    spec: layout.FormSpec = layout.APPLICATION) -> bytes:
    """The fillable ``spec`` form filled in with ``values`` (FormReading.fields vocabulary).

    ``seal``: "none", "image" (a red seal pasted on the 印 mark),
    "stamp_annotation" (a red /Stamp annotation on it), "misplaced" (a red
    stamp annotation in the bottom margin), "black_stamp" (black, on the mark).
    A form without a 印 (the consultation form) takes "none" only.
    """
    if seal not in SEALS or (seal != "none" and not spec.seal):
        raise ValueError(f"unknown seal {seal!r} for the {spec.name} form")
    writer = PdfWriter(clone_from=io.BytesIO(_with_image_seal() if seal == "image" else blank_fillable(spec)))
    if values:
        _fill(writer, field_values(values, spec))
    if seal in ("stamp_annotation", "misplaced", "black_stamp"):
        _add_stamp(writer, seal, _seal_chars(values or {}))
    return _written(writer)


@lru_cache(maxsize=1)
def _with_image_seal() -> bytes:
    """The blank fillable form with a red 電子印鑑 image pasted on its 印 mark."""
    return build_fillable(_page(layout.APPLICATION, seal="red", seal_kind="image"))


# ---------------------------------------------------------------- stamp annotations

@lru_cache(maxsize=1)
def _seal_mark() -> tuple[float, float]:
    """The centre (x, top) of the printed 印 on the blank form."""
    return measure(_page(layout.APPLICATION))[1]


def _seal_chars(values: dict) -> str:
    """The characters inside the stamp: the representative's family name."""
    name = str(values.get("representative_name") or "").split()
    return (name[0] if name else "代表")[:3]


def _seal_drawing(chars: str, rgb: tuple[float, float, float]) -> bytes:
    """A one-page PDF, the stamp's size, with a ring and the name: the stamp's look."""
    d, buf = 2 * SEAL_RADIUS, io.BytesIO()
    canvas = Canvas(buf, pagesize=(d, d), invariant=1)
    canvas.setStrokeColorRGB(*rgb)
    canvas.setFillColorRGB(*rgb)
    canvas.setLineWidth(2.4)
    canvas.circle(d / 2, d / 2, SEAL_RADIUS - 1.5, stroke=1, fill=0)
    size = min(18.0, 1.6 * SEAL_RADIUS / len(chars))
    canvas.setFont(MINCHO, size)
    for i, ch in enumerate(chars):  # stacked vertically, as hanko are cut
        canvas.drawCentredString(d / 2, d / 2 + ((len(chars) - 1) / 2 - i) * size - size * 0.35, ch)
    canvas.showPage()
    canvas.save()
    return buf.getvalue()


def _appearance(writer: PdfWriter, chars: str, rgb: tuple[float, float, float]):
    """The stamp drawing as a Form XObject in ``writer`` (an indirect reference)."""
    page = PdfReader(io.BytesIO(_seal_drawing(chars, rgb))).pages[0]
    form = DecodedStreamObject()
    form.set_data(page.get_contents().get_data())
    form.update({NameObject("/Type"): NameObject("/XObject"),
                 NameObject("/Subtype"): NameObject("/Form"),
                 NameObject("/BBox"): ArrayObject(FloatObject(v) for v in page.mediabox),
                 NameObject("/Resources"): page["/Resources"].clone(writer)})
    # An appearance stream must be an indirect object; pypdf has no public call for one.
    return writer._add_object(form)


def _add_stamp(writer: PdfWriter, seal: str, chars: str) -> None:
    """A /Stamp annotation, as a PDF viewer's 電子印鑑 tool leaves one."""
    x, top = _seal_mark()
    if seal == "misplaced":  # the bottom margin, as fill.py misplaces its seal
        x, top = PAGE_W - MARGIN - 60, PAGE_H - 32
    rgb = BLACK_INK if seal == "black_stamp" else VERMILION
    r = SEAL_RADIUS
    writer.add_annotation(0, DictionaryObject({
        NameObject("/Type"): NameObject("/Annot"),
        NameObject("/Subtype"): NameObject("/Stamp"),
        NameObject("/Rect"): ArrayObject(FloatObject(v) for v in
                                         (x - r, PAGE_H - top - r, x + r, PAGE_H - top + r)),
        NameObject("/F"): NumberObject(4),  # print
        NameObject("/Name"): NameObject("/Approved"),
        NameObject("/Contents"): TextStringObject(chars),
        NameObject("/AP"): DictionaryObject({NameObject("/N"): _appearance(writer, chars, rgb)}),
    }))


if __name__ == "__main__":
    for written in write_blanks(Path(sys.argv[1]) if len(sys.argv) > 1 else BLANK_DIR):
        print(written)
