"""The consultation desk form (個別相談申込書): rendered, shipped blank, and read back."""

import io

import pytest
from docx import Document
from pypdf import PdfReader, PdfWriter

from mailbot.forms import fields as F
from mailbot.forms.blank import BLANK_DIR, CONSULTATION_DOCX, CONSULTATION_PDF, write_blank
from mailbot.forms.consultation import CONSULTATION, render_consultation, sample_consultation_values
from mailbot.forms.fill import render_application, render_form, sample_values
from mailbot.forms.read import read_form
from mailbot.forms.reading import NO_SEAL


def test_round_trip():
    reading = read_form(render_consultation(sample_consultation_values()))
    assert (reading.form, reading.source, reading.form_page) == ("consultation", "text", 1)
    assert reading.fields == sample_consultation_values()
    assert reading.seal == NO_SEAL


@pytest.mark.parametrize("key", CONSULTATION.all_keys())
def test_round_trip_field_by_field(key):
    values = sample_consultation_values(country="EU:FR", preferred_dates=["2027-01-15"])
    assert read_form(render_consultation(values)).fields.get(key) == values.get(key)


def test_application_is_not_read_as_consultation():
    assert read_form(render_application(sample_values())).form == "application"


def test_consultation_after_a_cover_page():
    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    writer.append(PdfReader(io.BytesIO(render_consultation(sample_consultation_values()))))
    buf = io.BytesIO()
    writer.write(buf)
    reading = read_form(buf.getvalue())
    assert (reading.form, reading.form_page, reading.pages) == ("consultation", 2, 2)


@pytest.mark.parametrize("text,dates", [
    ("第1希望：令和8年12月3日(木) 14:00〜15:00", ["2026-12-03T14:00"]),
    ("第1希望 2026/12/4 午後2時\n第2希望 2026年12月7日", ["2026-12-04T14:00", "2026-12-07"]),
    ("１２月３日　１４時", []),  # no year: not a date we can trust
])
def test_preferred_dates(text, dates):
    assert F.parse_datetimes(text) == dates


def test_unreadable_wish_is_kept_as_text():
    field = CONSULTATION.field_by_key("preferred_dates")
    assert F.normalise(field, "来月のどこか") == "来月のどこか"
    assert F.normalise(field, "第1希望：　　年　月　日　時") is None


def test_shipped_blank_consultation_form():
    assert (BLANK_DIR / CONSULTATION_PDF).read_bytes() == render_form(CONSULTATION, {}, seal="none")
    reading = read_form((BLANK_DIR / CONSULTATION_PDF).read_bytes())
    assert reading.form == "consultation" and reading.fields == {}
    doc = Document(str(BLANK_DIR / CONSULTATION_DOCX))
    labels = [F.label_key(row.cells[0].text) for t in doc.tables for row in t.rows]
    assert labels == [F.label_key(f.label) for f in CONSULTATION.table_fields()]


def test_write_blank_consultation(tmp_path):
    docx_path, pdf_path = write_blank(tmp_path, CONSULTATION)
    assert docx_path.name == CONSULTATION_DOCX and pdf_path.read_bytes().startswith(b"%PDF-")
