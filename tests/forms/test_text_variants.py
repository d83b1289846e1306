"""The text reader on every variant of tests/forms/corpus_text.py, field by field.

Each variant PDF is made and read once per session (LibreOffice converts all
its variants in one run); each test then compares one thing. Without
LibreOffice the LibreOffice variants FAIL with the Debian packages to install.
"""

from __future__ import annotations

import io

import pdfplumber
import pytest
from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject

from mailbot.forms import layout, text
from mailbot.forms.read import read_form
from tests.forms import corpus_text as corpus

VARIANTS = {v.id: v for v in corpus.all_variants()}
_readings: dict = {}


def reading(variant_id: str):
    """read_form of a variant, once per session."""
    if variant_id not in _readings:
        _readings[variant_id] = read_form(VARIANTS[variant_id].make())
    return _readings[variant_id]


def _expected(v: corpus.Variant) -> dict:
    return {k: x for k, x in v.expected.items() if not k.startswith("_")}


@pytest.mark.parametrize("variant_id", list(VARIANTS))
@pytest.mark.parametrize("key", layout.APPLICATION.all_keys())
def test_field(variant_id, key):
    assert reading(variant_id).fields.get(key) == _expected(VARIANTS[variant_id]).get(key)


@pytest.mark.parametrize("variant_id", list(VARIANTS))
def test_whole_reading(variant_id):
    v, r = VARIANTS[variant_id], reading(variant_id)
    assert (r.form, r.source, r.form_page) == ("application", "text", v.form_page)
    assert v.pages is None or r.pages == v.pages
    assert r.fields == _expected(v)
    assert (r.seal.present, r.seal.near_field, r.seal.color) == v.seal
    if v.seal[0]:
        assert r.seal.page == v.form_page


def test_originals_keep_the_applicants_spelling():
    r = reading("reportlab-table4col-fullwidth-check-wrap")
    assert r.originals["company_name"] == "㈱サンプル精機"
    assert r.originals["employees"] == "１，２００名" and r.fields["employees"] == 1200
    assert r.originals["submitted_on"] == "２０２６年１１月２６日"
    assert r.fields["contact_phone"] == "03-1234-5678"


def test_soffice_is_installed():
    assert corpus.soffice(), f"apt-get install {corpus.DEBIAN_PACKAGES}"


# ---------------------------------------------------------------- the text-quality gate

def _without_tounicode(data: bytes) -> bytes:
    """The PDF with every font's ToUnicode map removed: text reads as (cid:N)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    for page in writer.pages:
        for font in page["/Resources"]["/Font"].values():
            font.get_object().pop(NameObject("/ToUnicode"), None)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_garbled_text_layer_is_left_to_ocr():
    good = VARIANTS["fpdf2-table190-plain-square"].make()
    bad = _without_tounicode(good)
    with pdfplumber.open(io.BytesIO(bad)) as pdf:
        assert not text.text_is_usable(pdf.pages[0])
        assert text.find_form(bad, pdf) is None
    with pdfplumber.open(io.BytesIO(good)) as pdf:
        assert text.text_is_usable(pdf.pages[0])


def test_cover_letter_quoting_the_title_is_not_the_form():
    with pdfplumber.open(io.BytesIO(corpus.cover_letter())) as pdf:
        assert not text.text_is_usable(pdf.pages[0])
        assert text.find_form(b"", pdf) is None
