"""Read our forms from a fillable PDF's form fields (AcroForm).

A form filled in a PDF viewer keeps its values in widgets, not in the page
text (shared/notes/pdf.md), so the text reader finds labels and empty cells.
Here every widget is matched to a form field by its name: our own names
(fillable.py: ``company_name``, ``country.VN``, ``pledge_commitment``) or the
printed labels other tools use as names (「企業名」, 「対象国・地域.ベトナム」).
Checkbox groups are turned into the line the text form prints
(layout.option_line) and go through the same normalisers (fields.py), so a
value reads the same whichever reader found it.

Which form it is (the application or the consultation desk form) is told by
the names: the form whose fields the most widgets stand for, the application
on a tie (the two share 企業名, 法人番号, the contact rows and 対象国・地域, so
only 相談内容/希望日時 or the application's own rows tell them apart).
"""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass

from pypdf import PdfReader
from pypdf.errors import PyPdfError
from pypdf.generic import (
    ArrayObject,
    ByteStringObject,
    NameObject,
    TextStringObject,
    create_string_object,
)

from mailbot.forms import layout
from mailbot.forms.fields import label_key, normalise, pledge_value
from mailbot.forms.fillable import EUROPE_NAME_FIELD, SPECS
from mailbot.forms.reading import NO_SEAL, FormReading
from mailbot.forms.seal import NameRow, detect_seal

# Names a tool may give the 欧州（国名：…） text field.
_EUROPE_NAMES = {label_key(n).casefold() for n in (EUROPE_NAME_FIELD, "国名", "欧州国名", "欧州（国名）")}
_OFF = ("", "Off")
_JAPANESE_RE = re.compile(r"[\u3000-\u30ff\u4e00-\u9fff\uff00-\uffef ]+")


@dataclass(frozen=True)
class Widget:
    """One widget: its full field name, value, page (1-based) and rectangle.

    ``value`` is the decoded text of a text/choice field, the on-state name
    of a ticked box ("" when the box is off); ``rect`` in PDF points
    (x0, y0, x1, y1, y from the bottom); ``page_top`` the page's top y.
    """

    name: str
    value: str | list[str]
    button: bool
    page: int
    rect: tuple[float, float, float, float]
    page_top: float


@dataclass(frozen=True)
class Target:
    """What a widget name stands for: "text", "option", "group", "pledge", "europe"."""

    kind: str
    key: str = ""
    option: object = None


# ---------------------------------------------------------------- decoding values

def _is_text(text: str) -> bool:
    """No control characters but line breaks and tabs (a multi-line field has them)."""
    return all(ch.isprintable() or ch in "\r\n\t" for ch in text)


def _looks_utf16(raw: bytes) -> str | None:
    """UTF-16BE written without its BOM (some tools do): the text, if it reads as text."""
    if len(raw) % 2:
        return None
    try:
        text = raw.decode("utf-16-be")
    except UnicodeDecodeError:
        return None
    return text if _is_text(text) else None


def _japanese_utf16(raw: bytes) -> str | None:
    """BOM-less UTF-16BE that is all kana, kanji, full-width forms or spaces.

    PDFDocEncoding would read the same bytes as Latin mojibake without a
    control character, so only the script tells them apart.
    """
    text = _looks_utf16(raw)
    return text if text and _JAPANESE_RE.fullmatch(text) else None


def decode_text(obj: object) -> str:
    """A PDF string as text: UTF-16 with BOM, UTF-8 (BOM or not), PDFDocEncoding.

    The standard ones are BOM'd UTF-16 and PDFDocEncoding; the rest is what
    writers get wrong: UTF-8 bytes, or UTF-16BE without the BOM.
    """
    if isinstance(obj, NameObject):
        return str(obj)[1:]
    if not isinstance(obj, (TextStringObject, ByteStringObject)):
        return str(obj) if obj is not None else ""
    raw = bytes(obj.original_bytes)
    for bom, codec in ((b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"), (b"\xef\xbb\xbf", "utf-8")):
        if raw.startswith(bom):
            return raw[len(bom):].decode(codec, errors="replace")
    return _unmarked(raw)


def _unmarked(raw: bytes) -> str:
    """Bytes without a BOM: UTF-8, Japanese UTF-16BE, PDFDocEncoding, in that order."""
    if not raw.isascii():
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:  # not UTF-8: PDFDocEncoding or BOM-less UTF-16
            pass
        if (text := _japanese_utf16(raw)) is not None:
            return text
    pdfdoc = create_string_object(raw)  # pypdf's PDFDocEncoding, bytes when undefined codes
    if isinstance(pdfdoc, TextStringObject) and _is_text(str(pdfdoc)):
        return str(pdfdoc)
    return _looks_utf16(raw) or raw.decode("latin-1")


# ---------------------------------------------------------------- collecting widgets

def _inherited(widget, key: str):
    """A field attribute (/V, /FT) from the widget or the nearest parent that has it."""
    node, depth = widget, 0
    while node is not None and depth < 32:  # a /Parent loop must not hang the reader
        if key in node:
            return node[key]
        node, depth = node.get("/Parent"), depth + 1
        node = node.get_object() if node is not None else None
    return None


def _full_name(widget) -> str:
    """The fully qualified field name: parents' /T joined with dots."""
    parts, node = [], widget
    for _depth in range(32):
        if node is None:
            break
        if "/T" in node:
            parts.append(decode_text(node["/T"]))
        node = node.get("/Parent")
        node = node.get_object() if node is not None else None
    return ".".join(reversed(parts))


def _value(widget, button: bool) -> str | list[str]:
    """A box's on-state name when ticked ("" when off); a text field's text."""
    if button:
        state = widget.get("/AS", _inherited(widget, "/V"))
        state = decode_text(state) if state is not None else ""
        return "" if state in _OFF else state
    value = _inherited(widget, "/V")
    if isinstance(value, ArrayObject):  # a multiple-choice list box
        return [decode_text(v) for v in value]
    return decode_text(value) if value is not None else ""


def _widget(annot, page_no: int, page_top: float) -> Widget | None:
    """The Widget of an annotation, or None when it is not a named form widget."""
    widget = annot.get_object()
    if widget.get("/Subtype") != "/Widget":
        return None
    name = _full_name(widget)
    button = _inherited(widget, "/FT") == "/Btn"
    rect = tuple(float(v) for v in widget.get("/Rect", (0, 0, 0, 0)))
    return Widget(name, _value(widget, button), button, page_no, rect, page_top) if name else None


def widgets(data: bytes, reader: PdfReader | None = None) -> list[Widget]:
    """Every named widget of the PDF; [] when it has no AcroForm or pypdf cannot read it.

    ``reader``: pypdf's reader of ``data`` when the caller has one (preflight's).
    One that preflight decrypted (an owner password) is not used: such a PDF
    reads as it always did, through a reader of its own.
    """
    try:
        if reader is None or reader.is_encrypted:
            reader = PdfReader(io.BytesIO(data))
        if "/AcroForm" not in reader.trailer["/Root"]:
            return []
        found = []
        for page_no, page in enumerate(reader.pages, start=1):
            top = float(page.mediabox.top)
            found += [w for a in page.get("/Annots") or [] if (w := _widget(a, page_no, top))]
        return found
    except PyPdfError:  # a broken form dictionary: the text and OCR readers still try
        return []


# ---------------------------------------------------------------- names → form fields

def _spellings(spec: layout.FormSpec) -> list[tuple[str, layout.Field]]:
    """(label as compared, field) for every label and alias of ``spec``, longest first."""
    pairs = [(label_key(text).casefold(), f) for f in spec.fields() for text in layout.labels(f)]
    return sorted(pairs, key=lambda pair: -len(pair[0]))


def _field_named(name: str, spec: layout.FormSpec) -> layout.Field | None:
    """The field a name means: its key, its label or alias, or one with extras (「企業名（必須）」)."""
    key = label_key(name).casefold()
    spellings = _spellings(spec)
    exact = next((f for f in spec.fields() if name == f.key), None)
    exact = exact or next((f for text, f in spellings if key == text), None)
    return exact or next((f for text, f in spellings if key.startswith(text)), None)


def option_of(f: layout.Field, token: str) -> object:
    """The option value a box or choice names: its code ("VN", "True") or its label."""
    key = label_key(token).casefold()
    for label, value in sorted(f.options, key=lambda o: -len(o[0])):  # インドネシア ≠ インド
        if token == str(value) or key.startswith(label_key(label).casefold()):
            return value
    return None


def _pledge_named(name: str, spec: layout.FormSpec) -> layout.Pledge | None:
    """The pledge a box is named after: its key, or its text (the start suffices)."""
    key = label_key(name)
    return next((p for p in spec.pledges
                 if name == p.key or (len(key) >= 8 and label_key(p.text).startswith(key))
                 or key.startswith(label_key(p.text)[:12])), None)


def _option_target(name: str, spec: layout.FormSpec) -> Target | None:
    """「group.option」: ``country.VN``, 「対象国・地域.ベトナム」."""
    group, _dot, token = name.rpartition(".")
    f = _field_named(group, spec) if group else None
    if f is None or not f.options:
        return None
    value = option_of(f, token)
    return Target("option", f.key, value) if value is not None else None


def resolve(name: str, spec: layout.FormSpec = layout.APPLICATION) -> Target | None:
    """What a widget's full name stands for on form ``spec``; None when nothing."""
    if label_key(name).casefold() in _EUROPE_NAMES:
        return Target("europe")
    pledge = _pledge_named(name, spec)
    if pledge is not None:
        return Target("pledge", pledge.key)
    target = _option_target(name, spec)
    if target is not None:
        return target
    f = _field_named(name, spec)
    if f is None:
        return None
    return Target("group" if f.options else "text", f.key)


# ---------------------------------------------------------------- widgets → values

@dataclass
class _Collected:
    """What the matched widgets of form ``spec`` say, before normalising."""

    spec: layout.FormSpec
    texts: dict[str, str]
    ticked: dict[str, set]  # option field key → ticked option values (key present = boxes seen)
    pledges: dict[str, bool]
    europe: str = ""


def _tokens(value: str | list[str]) -> list[str]:
    """The chosen option names of a radio group, combo box or list box."""
    return [v for v in (value if isinstance(value, list) else [value]) if v not in _OFF]


def _collect_one(c: _Collected, target: Target, w: Widget) -> None:
    """Record one widget's value under the field it belongs to."""
    text = "\n".join(w.value) if isinstance(w.value, list) else w.value
    if target.kind == "text" and text.strip():
        c.texts.setdefault(target.key, text)
    elif target.kind == "europe":
        c.europe = c.europe or text.strip()
    elif target.kind == "pledge":
        c.pledges[target.key] = c.pledges.get(target.key, False) or text not in _OFF
    elif target.kind == "option":
        ticked = c.ticked.setdefault(target.key, set())
        if text not in _OFF:
            ticked.add(target.option)
    elif target.kind == "group":
        f = c.spec.field_by_key(target.key)
        values = (option_of(f, t) for t in _tokens(w.value))
        c.ticked.setdefault(target.key, set()).update(v for v in values if v is not None)


def _raw_texts(c: _Collected) -> dict[str, str]:
    """The text the printed form would show per key: values, option lines, pledge lines."""
    raw = dict(c.texts)
    for key, ticked in c.ticked.items():
        raw[key] = layout.option_line(c.spec.field_by_key(key), ticked, c.europe)
    for pledge in c.spec.pledges:
        if pledge.key in c.pledges:
            box = layout.BOX_TICKED if c.pledges[pledge.key] else layout.BOX_EMPTY
            raw[pledge.key] = f"{box} {pledge.text}"
    return raw


def _normalised(raw: dict[str, str], spec: layout.FormSpec) -> tuple[dict, dict[str, str]]:
    """(fields, originals) as the text reader gives them; blank values left out."""
    fields, originals = {}, {}
    for key, text in raw.items():
        value = pledge_value(text) if key.startswith("pledge_") else normalise(spec.field_by_key(key), text)
        if value is not None:
            fields[key], originals[key] = value, text.strip()
    return fields, originals


def _is_filled(c: _Collected) -> bool:
    """Anything typed or ticked at all (a blank form has only empty boxes)."""
    return bool(c.texts) or any(c.ticked.values()) or any(c.pledges.values())


# ---------------------------------------------------------------- the reading

def _name_row(matched: list[tuple[Target, Widget]], page: int) -> NameRow | None:
    """The 代表者氏名 row from its widget: pdfplumber coordinates (top from the page top)."""
    for target, w in matched:
        if target.key == "representative_name" and w.page == page:
            x0, y0, _x1, y1 = w.rect
            return NameRow(w.page_top - max(y0, y1), w.page_top - min(y0, y1), min(x0, _x1))
    return None


def _matched(found: list[Widget], spec: layout.FormSpec) -> list[tuple[Target, Widget]]:
    """The widgets that stand for a field of ``spec``, with what they stand for."""
    return [(t, w) for w in found if (t := resolve(w.name, spec)) is not None]


def which_form(found: list[Widget]) -> tuple[layout.FormSpec, list[tuple[Target, Widget]]]:
    """The form the most widget names belong to (the application on a tie), and its matches."""
    readings = [(spec, _matched(found, spec)) for spec in SPECS]
    return max(readings, key=lambda r: len(r[1]))  # max keeps the first of equals


def read_acroform(data: bytes, pdf, reader: PdfReader | None = None) -> FormReading | None:
    """The form read from its widgets; None when the PDF has none of ours filled in.

    ``pdf`` is any open PDF of ``data`` with ``pages`` (pdfplumber's, pypdf's: the page count);
    ``reader`` pypdf's, when the caller already has one. A form without a
    印 (the consultation form) gets NO_SEAL, as the text reader gives it.
    """
    spec, matched = which_form(widgets(data, reader))
    collected = _Collected(spec, {}, {}, {})
    for target, w in matched:
        _collect_one(collected, target, w)
    if not _is_filled(collected):
        return None
    fields, originals = _normalised(_raw_texts(collected), spec)
    page = Counter(w.page for _t, w in matched).most_common(1)[0][0]
    seal = detect_seal(data, page, _name_row(matched, page)) if spec.seal else NO_SEAL
    return FormReading(spec.name, "acroform", len(pdf.pages), page, fields, originals, seal)
