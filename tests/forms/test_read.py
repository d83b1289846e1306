"""read_form on PDFs made by fill.py: round trips, blanks, non-forms, bad files."""

import io
from functools import lru_cache

import pytest
from pypdf import PdfReader, PdfWriter
from reportlab.pdfgen.canvas import Canvas

from mailbot.errors import PdfError
from mailbot.forms import layout
from mailbot.forms.blank import BLANK_DIR, PDF_NAME
from mailbot.forms.fill import render_application, sample_values
from mailbot.forms.read import read_form


@lru_cache
def sample_pdf(seal: str = "red", seal_kind: str = "vector") -> bytes:
    """The sample application, rendered once per seal variant."""
    return render_application(sample_values(), seal=seal, seal_kind=seal_kind)


@lru_cache
def sample_reading(seal_kind: str):
    """read_form of the red-stamped sample, once per seal kind (FormReading is frozen)."""
    return read_form(sample_pdf("red", seal_kind))


def _writer_bytes(writer: PdfWriter) -> bytes:
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


@pytest.mark.parametrize("seal_kind", ["vector", "image"])
@pytest.mark.parametrize("key", layout.all_keys())
def test_round_trip_field_by_field(key, seal_kind):
    reading = sample_reading(seal_kind)
    assert reading.fields.get(key) == sample_values()[key]


@pytest.mark.parametrize("seal_kind", ["vector", "image"])
def test_round_trip_whole_reading(seal_kind):
    reading = sample_reading(seal_kind)
    assert (reading.form, reading.source, reading.pages, reading.form_page) == ("application", "text", 1, 1)
    assert reading.fields == sample_values()
    assert reading.originals["employees"] == "1,200名"
    assert reading.originals["submitted_on"] == "2026年11月26日"


def test_black_vector_stamp_text_does_not_leak_into_cells():
    assert read_form(sample_pdf("black", "vector")).fields == sample_values()


def test_missing_fields_are_absent():
    values = sample_values(industry=None, employees=None, country=None, base_kinds=None,
                           submitted_on=None, jetro_registered=None)
    fields = read_form(render_application(values)).fields
    for key in ("industry", "employees", "country", "base_kinds", "submitted_on", "jetro_registered"):
        assert key not in fields
    assert fields["company_name"] == "株式会社サンプル精機"


def test_european_country_and_other_values():
    values = sample_values(country="EU:DE", application_type="local", base_status="planned",
                           base_kinds=["rep_office"], jetro_registered=False, pledge_publicity=False,
                           investment_ratio=51, employees=12, submitted_on="2025-01-09")
    assert read_form(render_application(values)).fields == values


def test_unnormalisable_value_is_kept_as_text():
    reading = read_form(render_application(sample_values(employees="多数")))
    assert reading.fields["employees"] == "多数"


def test_blank_form_reads_as_application_with_no_values():
    reading = read_form((BLANK_DIR / PDF_NAME).read_bytes())
    assert reading.form == "application" and reading.form_page == 1
    # The pledge rows are there but unticked: False per the pledge rule; nothing else.
    assert reading.fields == {p.key: False for p in layout.PLEDGES}
    assert not reading.seal.present


def test_shipped_blank_pdf_is_current():
    assert (BLANK_DIR / PDF_NAME).read_bytes() == render_application({}, seal="none")


def test_form_found_after_a_cover_page():
    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    writer.append(PdfReader(io.BytesIO(sample_pdf())))
    reading = read_form(_writer_bytes(writer))
    assert (reading.pages, reading.form_page) == (2, 2)
    assert reading.seal.near_field and reading.seal.page == 2
    assert reading.fields == sample_values()


def test_non_form_pdf_has_no_form():
    buf = io.BytesIO()
    canvas = Canvas(buf)
    canvas.setFont("Helvetica", 14)
    canvas.drawString(72, 720, "Sample Seiki company brochure: precision parts since 1960")
    canvas.showPage()
    canvas.save()
    reading = read_form(buf.getvalue())
    assert (reading.form, reading.form_page, reading.fields, reading.pages) == (None, None, {}, 1)


def test_not_a_pdf():
    with pytest.raises(PdfError) as err:
        read_form(b"\x89PNG\r\n\x1a\n" + bytes(200))
    assert err.value.code == "not_pdf" and "PDF" in err.value.message


def test_encrypted_pdf():
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(sample_pdf())))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-256")
    with pytest.raises(PdfError) as err:
        read_form(_writer_bytes(writer))
    assert err.value.code == "encrypted" and "パスワード" in err.value.message


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_pdf(cut):
    data = sample_pdf()
    with pytest.raises(PdfError) as err:
        read_form(data[: int(len(data) * cut)])
    assert err.value.code == "broken"


def test_too_many_pages():
    writer = PdfWriter()
    for _ in range(6):
        writer.add_blank_page(595, 842)
    with pytest.raises(PdfError) as err:
        read_form(_writer_bytes(writer), max_pages=5)
    assert err.value.code == "too_many_pages" and "5" in err.value.message
