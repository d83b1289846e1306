"""The shipped Word form has the layout's labels, rows and pledges."""

from docx import Document

from mailbot.forms import fillable, layout
from mailbot.forms.blank import BLANK_DIR, DOCX_NAME, write_blank
from mailbot.forms.fields import label_key


def _labels(doc) -> list[str]:
    return [row.cells[0].text for table in doc.tables for row in table.rows]


def test_shipped_docx_has_every_label_in_order():
    doc = Document(str(BLANK_DIR / DOCX_NAME))
    assert [label_key(t) for t in _labels(doc)] == [label_key(f.label) for f in layout.table_fields()]
    assert len(doc.tables) == len(layout.SECTIONS)
    text = "\n".join(p.text for p in doc.paragraphs)
    assert layout.TITLE in text and layout.ADDRESSEE in text and layout.SUBMITTED_LABEL in text
    assert all(p.text in text for p in layout.PLEDGES)


def test_name_row_ends_with_the_seal_mark():
    doc = Document(str(BLANK_DIR / DOCX_NAME))
    row = next(r for t in doc.tables for r in t.rows if r.cells[0].text == "代表者氏名")
    assert row.cells[1].text.strip().endswith(layout.SEAL_MARK)


def test_write_blank_to_another_directory(tmp_path):
    docx_path, pdf_path = write_blank(tmp_path)
    assert docx_path.stat().st_size > 0 and pdf_path.read_bytes().startswith(b"%PDF-")


def test_write_fillable_blanks_to_another_directory(tmp_path):
    written = fillable.write_blanks(tmp_path)
    assert [p.name for p in written] == ["application-form-fillable.pdf", "consultation-form-fillable.pdf"]
    assert all(p.read_bytes() == (fillable.BLANK_DIR / p.name).read_bytes() for p in written)
