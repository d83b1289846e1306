"""Write the blank application form the project ships.

    python -m mailbot.forms.blank [OUTPUT_DIR]

writes ``application-form.docx`` (to fill in Word/LibreOffice, then print or
export to PDF and stamp) and ``application-form.pdf`` (the same form printed
by fill.py with no values), and the same pair for the consultation desk form
(``consultation-form.*``), and both fillable PDFs (fillable.py:
``*-form-fillable.pdf``), into mailbot/forms/blank/ by default. All come
from layout.py, so they have exactly the labels and rows read.py expects.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from docx import Document
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_TAB_ALIGNMENT
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Pt

from mailbot.forms import fillable, layout
from mailbot.forms.consultation import CONSULTATION
from mailbot.forms.fill import render_form

BLANK_DIR = Path(__file__).parent / "blank"
DOCX_NAME, PDF_NAME = "application-form.docx", "application-form.pdf"
CONSULTATION_DOCX, CONSULTATION_PDF = "consultation-form.docx", "consultation-form.pdf"
FILE_NAMES = {"application": (DOCX_NAME, PDF_NAME), "consultation": (CONSULTATION_DOCX, CONSULTATION_PDF)}
LABEL_CM, VALUE_CM = 6.0, 11.0
WORD_BOX = "☐"  # Word has the ballot box; applicants change it to ☑ or ■
FIXED_DATE = dt.datetime(2026, 1, 1)  # regenerating gives the same metadata


def _set_fonts(doc: Document) -> None:
    """明朝 for Latin and Japanese text alike (East Asian font set explicitly)."""
    style = doc.styles["Normal"]
    style.font.name, style.font.size = "MS Mincho", Pt(10)
    rpr = style.element.get_or_add_rPr()
    rpr.get_or_add_rFonts().set(qn("w:eastAsia"), "ＭＳ 明朝")
    # Japanese text: without it LibreOffice breaks lines only at spaces and
    # 、, so a long Japanese value runs off the cell's right edge.
    lang = rpr.find(qn("w:lang"))
    if lang is None:
        lang = OxmlElement("w:lang")
        rpr.append(lang)
    lang.set(qn("w:eastAsia"), "ja-JP")


def _page_setup(doc: Document) -> None:
    """A4 with margins that keep the form on one page."""
    section = doc.sections[0]
    section.page_width, section.page_height = Cm(21.0), Cm(29.7)
    for side in ("left_margin", "right_margin"):
        setattr(section, side, Cm(2.0))
    section.top_margin = section.bottom_margin = Cm(1.5)


def _paragraph(doc: Document, text: str, *, size: float = 10, bold: bool = False,
               align: int | None = None) -> None:
    """One paragraph of one run, without the default space after it."""
    p = doc.add_paragraph()
    run = p.add_run(text)
    run.font.size, run.bold = Pt(size), bold
    p.alignment = align
    p.paragraph_format.space_after = Pt(2)


def _blank_value(f: layout.Field) -> str:
    """What an empty value cell shows: the options, a date pattern, or a unit."""
    if f.options:
        return layout.option_line(f, set()).replace(layout.BOX_EMPTY, WORD_BOX)
    if f.kind == "month":
        return "　　　　年　　月"
    if f.kind == "datetimes":  # 希望日時: one line per wish
        return "\n".join(f"第{n}希望：　　　　年　　月　　日　　時" for n in range(1, f.lines + 1))
    return f"　　　　{f.unit}" if f.unit else ""


def _fill_value_cell(cell, f: layout.Field) -> None:
    """The value cell; the 代表者氏名 row ends with 印 on a right tab stop."""
    p = cell.paragraphs[0]
    if f.seal_mark:
        p.paragraph_format.tab_stops.add_tab_stop(Cm(VALUE_CM - 0.5), WD_TAB_ALIGNMENT.RIGHT)
        p.add_run("\t" + layout.SEAL_MARK)
    else:
        p.add_run(_blank_value(f))


def _section_table(doc: Document, section: layout.Section) -> None:
    """A section heading and its ruled label | value table."""
    _paragraph(doc, section.title, size=10.5, bold=True)
    table = doc.add_table(rows=0, cols=2)
    table.style, table.alignment = "Table Grid", WD_TABLE_ALIGNMENT.CENTER
    for f in section.fields:
        label, value = table.add_row().cells
        label.width, value.width = Cm(LABEL_CM), Cm(VALUE_CM)
        label.paragraphs[0].add_run(f.label)
        _fill_value_cell(value, f)
    _fix_column_widths(table)


def _fix_column_widths(table) -> None:
    """Column widths in the table grid too: LibreOffice lays out by the grid
    (python-docx leaves it at equal halves), Word by the cells; without it the
    value column is half the page and long values run off its right edge.
    """
    table.autofit = False
    for column, width in zip(table.columns, (Cm(LABEL_CM), Cm(VALUE_CM))):
        column.width = width


def _header(doc: Document, spec: layout.FormSpec) -> None:
    """提出日 (when the form has it), title, addressee, how to tick."""
    if layout.SUBMITTED_ON in spec.header:
        _paragraph(doc, f"{layout.SUBMITTED_LABEL}：　　　　年　　月　　日", align=WD_ALIGN_PARAGRAPH.RIGHT)
    _paragraph(doc, spec.title, size=15, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER)
    _paragraph(doc, layout.ADDRESSEE, size=10.5)
    _paragraph(doc, f"（該当する{WORD_BOX}を☑または■に変えてください）", size=8.5)


def build_docx(spec: layout.FormSpec = layout.APPLICATION) -> Document:
    """The blank form as a Word document."""
    doc = Document()
    _set_fonts(doc)
    _page_setup(doc)
    _header(doc, spec)
    for section in spec.sections:
        _section_table(doc, section)
    if spec.pledges:
        _paragraph(doc, layout.PLEDGE_HEADING, size=10.5, bold=True)
    for pledge in spec.pledges:
        _paragraph(doc, f"{WORD_BOX} {pledge.text}")
    doc.core_properties.title = spec.title
    doc.core_properties.created = doc.core_properties.modified = FIXED_DATE
    return doc


def write_blank(out_dir: Path = BLANK_DIR, spec: layout.FormSpec = layout.APPLICATION) -> tuple[Path, Path]:
    """Write the blank .docx and .pdf of ``spec`` into ``out_dir``; their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    docx_name, pdf_name = FILE_NAMES[spec.name]
    docx_path, pdf_path = out_dir / docx_name, out_dir / pdf_name
    build_docx(spec).save(docx_path)
    pdf_path.write_bytes(render_form(spec, {}, seal="none"))
    return docx_path, pdf_path


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else BLANK_DIR
    for form in (layout.APPLICATION, CONSULTATION):
        for written in write_blank(out, form):
            print(written)
    for written in fillable.write_blanks(out):
        print(written)
