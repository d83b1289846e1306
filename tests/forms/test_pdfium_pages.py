"""pdfium_pages.py, the text reader's fast path, against pdfplumber, the reference.

On every text variant of the corpus (reportlab, fpdf2, LibreOffice; tables,
lines, rings, seals, cover letters, two-page forms) the form read from
pdfium's objects must be the form read from pdfplumber's: the same fields,
seal, form page, and the same originals but for whitespace (pdfium drops a
space that starts a line). Below that, the objects themselves: the same
characters in nearly the same boxes, the same table edges and tables.
Pages that are not plain go to pdfplumber.
"""

from __future__ import annotations

import io
from collections import Counter

import pdfplumber
import pypdfium2 as pdfium
import pytest
from pypdf import PdfReader, PdfWriter
from pypdf.generic import ArrayObject, NameObject, RectangleObject

from mailbot.forms import pdfium_pages, read, text
from mailbot.forms.fill import render_application, sample_values
from tests.forms import corpus_text as corpus

VARIANTS = {v.id: v for v in corpus.all_variants()}
_made: dict[str, bytes] = {}


def pdf_of(variant_id: str) -> bytes:
    if variant_id not in _made:
        _made[variant_id] = VARIANTS[variant_id].make()
    return _made[variant_id]


def by_pdfplumber(data: bytes):
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        return text.find_form(data, pdf)


def by_pdfium(data: bytes):
    with pdfium_pages.Document(data, PdfReader(io.BytesIO(data))) as pdf:
        return text.find_form(data, pdf)


def _squeezed(values: dict[str, str]) -> dict[str, str]:
    return {k: "".join(v.split()) for k, v in values.items()}


@pytest.mark.parametrize("variant_id", list(VARIANTS))
def test_the_form_read_from_pdfium_is_the_form_read_from_pdfplumber(variant_id):
    data = pdf_of(variant_id)
    fast, reference = by_pdfium(data), by_pdfplumber(data)
    assert reference is not None and fast is not None
    assert (fast.form, fast.source, fast.form_page) == (reference.form, reference.source, reference.form_page)
    assert fast.fields == reference.fields
    assert _squeezed(fast.originals) == _squeezed(reference.originals)
    assert fast.seal == reference.seal


def _pages(data: bytes):
    plumber = pdfplumber.open(io.BytesIO(data))
    fast = pdfium_pages.Document(data, PdfReader(io.BytesIO(data)))
    try:
        yield from zip(plumber.pages, fast.pages)
    finally:
        plumber.close()
        fast.close()


@pytest.mark.parametrize("variant_id", ["reportlab-table190-slash-ellipse-wrap", "fpdf2-table190-plain-square",
                                        "lo-circle-cover", "two-page-form"])
def test_the_same_characters_in_nearly_the_same_boxes(variant_id):
    for plumber, fast in _pages(pdf_of(variant_id)):
        assert fast.bbox == pytest.approx(plumber.bbox, abs=0.01)
        printed = Counter(c["text"] for c in plumber.chars if c["text"].strip())
        assert Counter(c["text"] for c in fast.chars if c["text"].strip()) == printed
        for c in (c for c in plumber.chars if c["text"].strip()):
            twin = min((f for f in fast.chars if f["text"] == c["text"]),
                       key=lambda f: abs(f["x0"] - c["x0"]) + abs(f["top"] - c["top"]))
            # LibreOffice's fonts: pdfium takes the descent from the font, pdfminer from the descriptor.
            assert abs(twin["x0"] - c["x0"]) < 1 and abs(twin["top"] - c["top"]) < 2.5, c["text"]
            assert twin["size"] == pytest.approx(c["size"], abs=0.01)
            assert text.is_red(twin["non_stroking_color"]) == text.is_red(c["non_stroking_color"])


def assert_same_boxes(ours, theirs) -> None:
    """The same boxes in any order, to 0.05 pt (pdfium computes in single precision)."""
    ours, theirs = [tuple(b) for b in ours], [tuple(b) for b in theirs]
    assert len(ours) == len(theirs)
    for box in theirs:
        assert any(max(abs(a - b) for a, b in zip(box, mine)) < 0.05 for mine in ours), box


@pytest.mark.parametrize("variant_id", ["reportlab-table4col-plain-square", "fpdf2-table120-spaced-wareki-ballot",
                                        "lo-ballot-wareki", "reportlab-lines-slash-ellipse-wrap"])
def test_the_same_lines_rects_curves_edges_and_tables(variant_id):
    for plumber, fast in _pages(pdf_of(variant_id)):
        for kind in ("line", "rect", "curve"):
            assert len(fast.objects[kind]) == len(plumber.objects.get(kind, [])), kind
        edge = ("x0", "top", "x1", "bottom")
        assert_same_boxes(([e[k] for k in edge] for e in fast.edges), ([e[k] for k in edge] for e in plumber.edges))
        assert_same_boxes((t.bbox for t in fast.find_tables()), (t.bbox for t in plumber.find_tables()))
        assert_same_boxes(([c[k] for k in edge] for c in fast.curves), ([c[k] for k in edge] for c in plumber.curves))
        assert [len(c["pts"]) for c in fast.curves] == [len(c["pts"]) for c in plumber.curves]


def _shifted(data: bytes, dy: float) -> bytes:
    """The PDF with its page's MediaBox moved ``dy`` points down (what's drawn stays put)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    for page in writer.pages:
        x0, y0, x1, y1 = (float(v) for v in page.mediabox)
        page.mediabox = RectangleObject([x0, y0 - dy, x1, y1 - dy])
        page.cropbox = page.mediabox
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_page_not_at_the_origin_is_read_by_pdfplumber():
    data = render_application(sample_values())
    shifted = _shifted(data, 20)
    with pdfium_pages.Document(shifted, PdfReader(io.BytesIO(shifted))) as pdf, \
            pytest.raises(pdfium_pages.NotSimple):
        pdf.pages[0]
    assert read._text_by_pdfium(shifted, PdfReader(io.BytesIO(shifted))) is None
    assert read.read_form(shifted).fields == read.read_form(data).fields


def test_a_rotated_page_is_left_to_pdfplumber():
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(render_application(sample_values()))))
    writer.pages[0].rotate(90)
    out = io.BytesIO()
    writer.write(out)
    assert read._text_by_pdfium(out.getvalue(), PdfReader(out)) is None


def test_the_fast_path_is_the_one_taken_for_our_own_form(monkeypatch):
    """read_form does not open pdfplumber for a plain text form (the point of the fast path)."""
    def refuse(data):
        raise AssertionError("pdfplumber opened")

    monkeypatch.setattr(read, "_open", refuse)
    reading = read.read_form(render_application(sample_values()))
    assert (reading.form, reading.source) == ("application", "text")
    assert reading.seal.present


def test_the_form_page_is_loaded_once_for_its_text_and_its_seal(monkeypatch):
    """The seal is rendered from the page the text pass opened (loading a page is ~6 ms): one load
    of page 1 for a one-page stamped form, and the seal found on it."""
    loaded = []
    get_page = pdfium.PdfDocument.get_page

    def counting(self, index):
        loaded.append(index)
        return get_page(self, index)

    monkeypatch.setattr(pdfium.PdfDocument, "get_page", counting)
    reading = read.read_form(render_application(sample_values()))
    assert loaded == [0]
    assert (reading.source, reading.seal.present, reading.seal.near_field) == ("text", True, True)


def test_a_broken_page_box_is_left_to_pdfplumber():
    """A MediaBox that is not four numbers: the fast path steps aside, read_form answers as before."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(render_application(sample_values()))))
    writer.pages[0][NameObject("/MediaBox")] = ArrayObject([NameObject("/A4")])
    out = io.BytesIO()
    writer.write(out)
    assert read._text_by_pdfium(out.getvalue(), PdfReader(io.BytesIO(out.getvalue()))) is None
