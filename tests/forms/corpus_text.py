"""A corpus of text-PDF variants of the application form, each with what must be read from it.

Every variant is one way an applicant's PDF really arrives: made by another
generator (reportlab with an embedded IPAex font, fpdf2, LibreOffice from
the shipped .docx), retyped on another layout (other column widths, two
fields to a row, 「企業名：…」 lines without rules), spelled otherwise
(「企 業 名：」, full-width digits, ㈱, 和暦/西暦 dates), ticked otherwise
(☑, ■, ✓, ○, an ellipse drawn around the option), with values wrapped
over lines, with cover letters and brochures around it, or over two pages.
``Variant.expected`` is FormReading.fields as it must be read.

Drawing is described once as operations (text, rule, ellipse, seal) and
played on two backends, reportlab and fpdf2, so both lay out the same form.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from docx import Document
from docx.shared import Cm
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from mailbot.forms import layout
from mailbot.forms.blank import BLANK_DIR, DOCX_NAME
from mailbot.forms.fill import _europe_name, render_application, sample_values, seal_png

FONT_DIR = Path("/usr/share/fonts")
MINCHO_TTF = FONT_DIR / "opentype/ipaexfont-mincho/ipaexm.ttf"
GOTHIC_TTF = FONT_DIR / "opentype/ipaexfont-gothic/ipaexg.ttf"
SYMBOL_TTF = FONT_DIR / "truetype/dejavu/DejaVuSans.ttf"  # ☑☐✔ are not in IPAex
FONT_FILES = {"M": MINCHO_TTF, "G": GOTHIC_TTF, "S": SYMBOL_TTF}
DEBIAN_PACKAGES = "fonts-ipaexfont fonts-dejavu-core libreoffice-writer-nogui"

PAGE_W, PAGE_H = A4
MARGIN, SIZE, LINE_H = 40.0, 9.5, 13.0
RED = (0.85, 0.12, 0.10)

_fonts_registered = False


def _register_fonts() -> None:
    """reportlab needs the TTFs registered once (for drawing and for widths)."""
    global _fonts_registered
    if not _fonts_registered:
        for name, path in FONT_FILES.items():
            pdfmetrics.registerFont(TTFont(f"corpus-{name}", str(path)))
        _fonts_registered = True


def _covered(ch: str) -> bool:
    """Whether IPAex has the character (else the symbol font draws it)."""
    _register_fonts()
    return ord(ch) in pdfmetrics.getFont("corpus-M").face.charToGlyph or ch.isspace()


def runs(text: str, font: str) -> list[tuple[str, str]]:
    """(font, text) runs: IPAex where it has the glyph, DejaVu for the rest."""
    out: list[tuple[str, str]] = []
    for ch in text:
        f = font if _covered(ch) else "S"
        if out and out[-1][0] == f:
            out[-1] = (f, out[-1][1] + ch)
        else:
            out.append((f, ch))
    return out


def width(text: str, font: str = "M", size: float = SIZE) -> float:
    """The printed width of ``text`` with the fallback font runs."""
    return sum(pdfmetrics.stringWidth(t, f"corpus-{f}", size) for f, t in runs(text, font))


# ---------------------------------------------------------------- operations

@dataclass(frozen=True)
class Text:
    x: float
    top: float  # baseline distance from the page top
    text: str
    font: str = "M"
    size: float = SIZE


@dataclass(frozen=True)
class Rule:
    x0: float
    top0: float
    x1: float
    top1: float


@dataclass(frozen=True)
class Ellipse:
    x0: float
    top: float
    x1: float
    bottom: float


@dataclass(frozen=True)
class SealMark:
    cx: float
    cy: float  # from the page top
    chars: str = "山田"


Page = list  # of operations


def play_reportlab(pages: list[Page]) -> bytes:
    """The pages drawn with reportlab and the embedded IPAex fonts."""
    _register_fonts()
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=A4, invariant=1)
    for page in pages:
        for op in page:
            _rl_op(c, op)
        c.showPage()
    c.save()
    return buf.getvalue()


def _rl_op(c: Canvas, op) -> None:
    """One operation on a reportlab canvas."""
    if isinstance(op, Text):
        x = op.x
        for font, text in runs(op.text, op.font):
            c.setFont(f"corpus-{font}", op.size)
            c.drawString(x, PAGE_H - op.top, text)
            x += pdfmetrics.stringWidth(text, f"corpus-{font}", op.size)
    elif isinstance(op, Rule):
        c.setLineWidth(0.7)
        c.line(op.x0, PAGE_H - op.top0, op.x1, PAGE_H - op.top1)
    elif isinstance(op, Ellipse):
        c.setLineWidth(0.8)
        c.ellipse(op.x0, PAGE_H - op.bottom, op.x1, PAGE_H - op.top, stroke=1, fill=0)
    else:
        _rl_seal(c, op)


def _rl_seal(c: Canvas, op: SealMark) -> None:
    """A red ring with the name stacked inside, drawn as vectors."""
    c.saveState()
    c.setStrokeColorRGB(*RED)
    c.setFillColorRGB(*RED)
    c.setLineWidth(2.2)
    c.circle(op.cx, PAGE_H - op.cy, 24, stroke=1, fill=0)
    c.setFont("corpus-M", 15)
    for i, ch in enumerate(op.chars):
        c.drawCentredString(op.cx, PAGE_H - op.cy + (0.5 - i) * 15 - 5, ch)
    c.restoreState()


def play_fpdf(pages: list[Page]) -> bytes:
    """The same pages drawn with fpdf2 (its own TTF embedding and ToUnicode)."""
    pdf = FPDF(unit="pt", format="A4")
    for name, path in FONT_FILES.items():
        pdf.add_font(f"corpus-{name}", fname=str(path))
    for page in pages:
        pdf.add_page()
        for op in page:
            _fpdf_op(pdf, op)
    return bytes(pdf.output())


def _fpdf_op(pdf: FPDF, op) -> None:
    """One operation on an fpdf2 page (top-left origin, like ours)."""
    if isinstance(op, Text):
        x = op.x
        for font, text in runs(op.text, op.font):
            pdf.set_font(f"corpus-{font}", size=op.size)
            pdf.text(x, op.top, text)
            x += pdf.get_string_width(text)
    elif isinstance(op, Rule):
        pdf.set_line_width(0.7)
        pdf.line(op.x0, op.top0, op.x1, op.top1)
    elif isinstance(op, Ellipse):
        pdf.set_line_width(0.8)
        pdf.ellipse(op.x0, op.top, op.x1 - op.x0, op.bottom - op.top, style="D")
    else:
        _fpdf_seal(pdf, op)


def _fpdf_seal(pdf: FPDF, op: SealMark) -> None:
    """The red ring and stacked name with fpdf2."""
    pdf.set_draw_color(*(int(v * 255) for v in RED))
    pdf.set_text_color(*(int(v * 255) for v in RED))
    pdf.set_line_width(2.2)
    pdf.ellipse(op.cx - 24, op.cy - 24, 48, 48, style="D")
    pdf.set_font("corpus-M", size=15)
    for i, ch in enumerate(op.chars):
        pdf.text(op.cx - 7.5, op.cy + (i - 0.5) * 15 + 5, ch)
    pdf.set_draw_color(0, 0, 0)
    pdf.set_text_color(0, 0, 0)


# ---------------------------------------------------------------- how values are written

@dataclass(frozen=True)
class Style:
    """How one applicant writes: label spelling, dates and digits, check marks, wrapping."""

    labels: str = "plain"  # "plain" | "spaced" (企 業 名：)
    dates: str = "kanji"  # "kanji" | "wareki" | "r-dots" | "slash" | "hyphen" | "fullwidth"
    boxes: str = "square"  # "square" ■□ | "ballot" ☑☐ | "check" ✓ | "circle" ○ | "ellipse"
    wrap: bool = False  # long address and issues that wrap over lines
    fullwidth: bool = False  # full-width digits, ㈱


def label_text(label: str, style: Style) -> str:
    """A label as retyped: as printed, or letter-spaced with a colon."""
    return " ".join(label) + "：" if style.labels == "spaced" else label


_FW = str.maketrans("0123456789,-%/", "０１２３４５６７８９，－％／")


def _fw(text: str, style: Style) -> str:
    """Full-width digits where the applicant types them so."""
    return text.translate(_FW) if style.fullwidth else text


def date_text(iso: str, style: Style) -> str:
    """A date as written in one of the common spellings."""
    y, m, d = (int(p) for p in iso.split("-"))
    r = y - 2018
    return {
        "kanji": f"{y}年{m}月{d}日", "wareki": f"令和{r}年{m}月{d}日", "r-dots": f"R{r}.{m}.{d}",
        "slash": f"{y}/{m}/{d}", "hyphen": f"{y:04d}-{m:02d}-{d:02d}",
        "fullwidth": f"{y}年{m}月{d}日".translate(_FW),
    }[style.dates]


def month_text(iso: str, style: Style) -> str:
    """A year and month (設立年月) in the same spelling family."""
    y, m = (int(p) for p in iso.split("-"))
    return {"wareki": f"平成{y - 1988}年{m}月", "r-dots": f"H{y - 1988}.{m}", "slash": f"{y}/{m}",
            "hyphen": f"{y:04d}-{m:02d}", "fullwidth": f"{y}年{m}月".translate(_FW)}.get(style.dates, f"{y}年{m}月")


def option_tokens(f: layout.Field, value: object, style: Style) -> list[tuple[str, bool]]:
    """(printed option, ticked) for an option field's cell, in printed order."""
    code = str(value) if f.kind == "country" else None
    ticked = {"EU" if code and code.startswith("EU:") else code} if code else (
        set(value) if isinstance(value, list) else {value})
    out = []
    for label, v in f.options:
        if v == "EU":
            label += f"（国名：{_europe_name(code[3:]) if code and code.startswith('EU:') else '　　'}）"
        out.append((label, v in ticked))
    return out


_MARKS = {"square": ("■", "□"), "ballot": ("☑", "☐"), "check": ("✓", ""), "circle": ("○", ""),
          "ellipse": ("", "")}


def option_text(tokens: list[tuple[str, bool]], style: Style) -> list[str]:
    """Each option with its mark (the ellipse style has none: it is drawn)."""
    on, off = _MARKS[style.boxes]
    return [(on if t else off) + label for label, t in tokens]


def value_text(f: layout.Field, value: object, style: Style) -> str:
    """A non-option value as the applicant typed it."""
    if value is None:
        return ""
    if f.kind == "date":
        return date_text(value, style)
    if f.kind == "month":
        return month_text(value, style)
    if f.kind == "int" and f.key == "employees":
        return _fw(f"{value:,}{f.unit}", style)
    if f.kind in ("int", "number"):
        return _fw(f"{value}{f.unit}", style)
    if f.key == "company_name" and style.fullwidth:
        return str(value).replace("株式会社", "㈱")
    return _fw(str(value), style) if f.key in ("contact_phone", "corporate_number") else str(value)


LONG_ADDRESS = "東京都港区赤坂一丁目十二番三十二号 アーク森ビル十二階 サンプル精機東京本社ビル総務部気付"
LONG_ISSUES = ("退職者による設計図面の持ち出しが懸念されるため、秘密情報の区分とアクセス管理の規程を"
               "現地法人でも整備したい。あわせて、現地採用の技術者との秘密保持契約の雛形と、"
               "退職時の誓約書の運用方法についても相談したい。")


def expected_values(style: Style, **overrides) -> dict:
    """The sample application (with the long texts when wrapping), as it must be read."""
    values = sample_values(**overrides)
    if style.wrap:
        values.update(address=LONG_ADDRESS, current_issues=LONG_ISSUES)
    if style.fullwidth:  # the applicant's spelling is kept; checks compare with match_text
        values["company_name"] = values["company_name"].replace("株式会社", "㈱")
    return values


# ---------------------------------------------------------------- layouts → operations

def wrap_text(text: str, w: float, font: str = "M") -> list[str]:
    """Lines of ``text`` fitting width ``w`` (broken anywhere: our texts wrap inside Japanese)."""
    lines = [""]
    for ch in text:
        if lines[-1] and width(lines[-1] + ch, font) > w:
            lines.append("")
        lines[-1] += ch
    return [ln.strip() for ln in lines]


@dataclass
class Pen:
    """Pages being drawn and the y of the next line (from the page top)."""

    pages: list[Page] = field(default_factory=lambda: [[]])
    top: float = MARGIN
    seal_at: tuple[float, float] | None = None

    def add(self, *ops) -> None:
        self.pages[-1].extend(ops)

    def new_page(self) -> None:
        self.pages.append([])
        self.top = MARGIN


def _options_ops(pen: Pen, tokens, style: Style, x: float, top: float) -> list[str]:
    """Draw an option cell on one line per fit; ellipses around ticked options."""
    texts, cur = option_text(tokens, style), x
    for (label, ticked), text in zip(tokens, texts):
        w = width(text)
        if cur + w > PAGE_W - MARGIN - 4:
            cur, top = x, top + LINE_H
        pen.add(Text(cur, top, text))
        if ticked and style.boxes == "ellipse":
            pen.add(Ellipse(cur - 3, top - SIZE - 2, cur + w + 3, top + 4))
        cur += w + SIZE
    return []


def _cell_lines(f: layout.Field, values: dict, style: Style, w: float) -> list[str]:
    """The wrapped lines of a non-option value."""
    text = value_text(f, values.get(f.key), style)
    return wrap_text(text, w) if text else [""]


def _header(pen: Pen, values: dict, style: Style) -> None:
    """提出日, title, addressee."""
    date = date_text(values["submitted_on"], style) if "submitted_on" in values else ""
    label = label_text(layout.SUBMITTED_LABEL, style)
    sep = "" if label.endswith("：") else "："
    text = f"{label}{sep}{date}"
    pen.add(Text(PAGE_W - MARGIN - width(text), pen.top + 10, text),
            Text(MARGIN + 40, pen.top + 40, layout.TITLE, "G", 14),
            Text(MARGIN, pen.top + 64, layout.ADDRESSEE))
    pen.top += 80


def _pledges(pen: Pen, values: dict, style: Style) -> None:
    """Pledge heading and lines, ticked in the variant's style."""
    pen.add(Text(MARGIN, pen.top + 12, layout.PLEDGE_HEADING, "G", 10))
    pen.top += 16
    on, off = _MARKS[style.boxes]
    for p in layout.PLEDGES:
        ticked = values.get(p.key)
        pen.add(Text(MARGIN + 4, pen.top + 11, f"{on if ticked else off or '□'} {p.text}"))
        if ticked and style.boxes == "ellipse":
            pen.add(Ellipse(MARGIN, pen.top, MARGIN + 8 + width(p.text[:8]), pen.top + 15))
        pen.top += 15


def _table_row(pen: Pen, cols: list[tuple[float, float]], row: list[layout.Field], values, style) -> None:
    """One ruled row: label | value (| label | value); rules drawn by the caller."""
    heights = []
    for i, f in enumerate(row):
        (lx, lw), (vx, vw) = cols[2 * i], cols[2 * i + 1]
        if i == len(row) - 1:
            vw = PAGE_W - MARGIN - vx
        heights.append(_draw_field(pen, f, values, style, (lx, lw), (vx, vw)))
    pen.top += max(heights)


def _draw_field(pen: Pen, f: layout.Field, values, style, label_col, value_col) -> float:
    """Label and value of one field from pen.top; the height used."""
    (lx, lw), (vx, vw) = label_col, value_col
    labels = wrap_text(label_text(f.label, style), lw - 8, "G")
    if f.options:
        tokens = option_tokens(f, values.get(f.key), style)
        n = _count_option_lines(tokens, style, vx + 4)
        _options_ops(pen, tokens, style, vx + 4, pen.top + 4 + SIZE)
        lines = [""] * n
    else:
        lines = _cell_lines(f, values, style, vw - 8 - (30 if f.seal_mark else 0))
        for j, line in enumerate(lines):
            pen.add(Text(vx + 4, pen.top + 4 + SIZE + j * LINE_H, line))
    for j, line in enumerate(labels):
        pen.add(Text(lx + 4, pen.top + 4 + SIZE + j * LINE_H, line, "G", 9))
    h = LINE_H * max(len(labels), len(lines)) + 6
    if f.seal_mark:
        x = vx + vw - 20
        pen.add(Text(x, pen.top + 4 + SIZE, layout.SEAL_MARK))
        pen.seal_at = (x + 5, pen.top + h / 2)
    return h


def _count_option_lines(tokens, style: Style, x: float) -> int:
    """How many lines _options_ops will take."""
    lines, cur = 1, x
    for text in option_text(tokens, style):
        w = width(text)
        if cur + w > PAGE_W - MARGIN - 4:
            lines, cur = lines + 1, x
        cur += w + SIZE
    return lines


def _short(f: layout.Field) -> bool:
    """A field that can share a row with another (short label, short value)."""
    return not f.options and f.lines == 1 and len(f.label) <= 8 and "address" not in f.key


def _rows(section: layout.Section, pairs: bool) -> list[list[layout.Field]]:
    """The section's fields grouped one per row, or two short ones per row."""
    rows: list[list[layout.Field]] = []
    for f in section.fields:
        if pairs and rows and len(rows[-1]) == 1 and _short(rows[-1][0]) and _short(f):
            rows[-1].append(f)
        else:
            rows.append([f])
    return rows


def table_pages(values: dict, style: Style, label_w: float = 190, pairs: bool = False,
                break_after: int | None = None) -> list[Page]:
    """A ruled form: label | value tables (4 columns with ``pairs``)."""
    pen = Pen()
    _header(pen, values, style)
    x1 = PAGE_W - MARGIN
    if pairs:
        cols = [(MARGIN, 90), (MARGIN + 90, 170), (MARGIN + 260, 90), (MARGIN + 350, x1 - MARGIN - 350)]
    else:
        cols = [(MARGIN, label_w), (MARGIN + label_w, x1 - MARGIN - label_w)]
    for n, section in enumerate(layout.SECTIONS):
        _table_section(pen, section, cols, values, style, pairs)
        if break_after is not None and n == break_after:
            pen.new_page()
    _pledges(pen, values, style)
    return _sealed(pen, values)


def _table_section(pen: Pen, section: layout.Section, cols, values: dict, style: Style, pairs: bool) -> None:
    """A section heading and its ruled rows."""
    x1 = PAGE_W - MARGIN
    pen.add(Text(MARGIN, pen.top + 12, section.title, "G", 10.5))
    pen.top += 16
    edges = [pen.top]
    for row in _rows(section, pairs):
        xs, before = [c[0] for c in cols[: 2 * len(row)]], pen.top
        _table_row(pen, cols, row, values, style)
        pen.add(*(Rule(x, before, x, pen.top) for x in [*xs, x1]))
        edges.append(pen.top)
    pen.add(*(Rule(MARGIN, e, x1, e) for e in edges))
    pen.top += 8


def _sealed(pen: Pen, values: dict) -> list[Page]:
    """The pages, with the red seal on the 印 mark when the values ask for it."""
    if values.get("_seal", True) and pen.seal_at:
        page = next(p for p in pen.pages if any(isinstance(o, Text) and o.text == layout.SEAL_MARK for o in p))
        page.append(SealMark(*pen.seal_at))
    return pen.pages


def lines_pages(values: dict, style: Style, pairs: bool = False) -> list[Page]:
    """A retyped form without rules: 「label：value」 lines, wrapped under the value."""
    pen = Pen()
    _header(pen, values, style)
    for section in layout.SECTIONS:
        pen.add(Text(MARGIN, pen.top + 12, section.title, "G", 10.5))
        pen.top += 18
        for row in _rows(section, pairs):
            _line_row(pen, row, values, style)
        pen.top += 6
    _pledges(pen, values, style)
    return _sealed(pen, values)


def _line_row(pen: Pen, row: list[layout.Field], values: dict, style: Style) -> None:
    """One text line with one or two 「label：value」 (no rules)."""
    heights = []
    for i, f in enumerate(row):
        x = MARGIN + 4 + i * 260
        label = label_text(f.label, style)
        label += "" if label.endswith("：") else "："
        pen.add(Text(x, pen.top + SIZE, label, "G", 9))
        vx = x + width(label, "G", 9) + 4
        vw = (x + 250 if len(row) > 1 else PAGE_W - MARGIN) - vx
        heights.append(_line_value(pen, f, values, style, vx, vw))
    pen.top += max(heights)


def _line_value(pen: Pen, f: layout.Field, values: dict, style: Style, vx: float, vw: float) -> float:
    """A value after its label on a line; wrapped lines hang under the value's start."""
    if f.options:
        tokens = option_tokens(f, values.get(f.key), style)
        _options_ops(pen, tokens, style, vx, pen.top + SIZE)
        return LINE_H * _count_option_lines(tokens, style, vx) + 2
    lines = _cell_lines(f, values, style, vw - (40 if f.seal_mark else 0))
    for j, line in enumerate(lines):
        pen.add(Text(vx, pen.top + SIZE + j * LINE_H, line))
    if f.seal_mark:
        x = vx + width(lines[0]) + 30
        pen.add(Text(x, pen.top + SIZE, layout.SEAL_MARK))
        pen.seal_at = (x + 5, pen.top + SIZE / 2)
    return LINE_H * len(lines) + 2


# ---------------------------------------------------------------- around the form

def cover_letter() -> bytes:
    """A cover letter that quotes the title and a contact, as applicants write them."""
    pen = Pen()
    lines = ["独立行政法人日本貿易振興機構 知的財産課 御中", "",
             f"{layout.TITLE}への申請について",
             "標記の件につき、押印した申請書を添付のとおり提出いたします。",
             "ご査収のほど、よろしくお願い申し上げます。", "",
             "株式会社サンプル精機 総務部 佐藤 花子", "電話番号：03-1234-5678"]
    pen.add(*(Text(MARGIN, MARGIN + 20 * (i + 1), ln) for i, ln in enumerate(lines)))
    return play_reportlab(pen.pages)


def brochure() -> bytes:
    """A company brochure page (attachment after the form)."""
    pen = Pen()
    lines = ["会社案内 株式会社サンプル精機", "精密部品の設計・製造 1960年創業",
             "本社：東京都港区赤坂1-12-32", "拠点：ベトナム、タイ", "電話番号 03-1234-0000"]
    pen.add(*(Text(MARGIN, MARGIN + 24 * (i + 1), ln, "G", 12) for i, ln in enumerate(lines)))
    return play_reportlab(pen.pages)


def concat(*pdfs: bytes) -> bytes:
    """The PDFs one after another, as a mail client's 'combine' makes them."""
    writer = PdfWriter()
    for data in pdfs:
        writer.append(PdfReader(io.BytesIO(data)))
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


# ---------------------------------------------------------------- LibreOffice from the shipped .docx

def _docx_option(cell, f: layout.Field, value: object, style: Style) -> None:
    """Replace an option cell's ☐ line with the ticked options."""
    text = "　".join(option_text(option_tokens(f, value, style), style))
    cell.paragraphs[0].runs[0].text = text


def _docx_value(cell, f: layout.Field, values: dict, style: Style, seal_png: Path | None) -> None:
    """Fill one value cell of the shipped form."""
    value = values.get(f.key)
    p = cell.paragraphs[0]
    if f.options:
        _docx_option(cell, f, value, style)
    elif f.seal_mark:
        p.runs[0].text = f"{value}\t{layout.SEAL_MARK}"
        if seal_png:
            p.add_run().add_picture(str(seal_png), width=Cm(1.6))
    elif value is not None:
        for run in p.runs:
            run.text = ""
        (p.runs[0] if p.runs else p.add_run()).text = value_text(f, value, style)


def fill_docx(values: dict, style: Style, seal_png: Path | None, cover: bool = False) -> Document:
    """The shipped Word form filled in as an applicant does it (python-docx)."""
    doc = Document(str(BLANK_DIR / DOCX_NAME))
    fields = iter(layout.table_fields())
    for table in doc.tables:
        for row in table.rows:
            _docx_value(row.cells[1], next(fields), values, style, seal_png)
    on, off = _MARKS[style.boxes]
    for p in doc.paragraphs:
        if p.text.startswith(layout.SUBMITTED_LABEL):
            p.runs[0].text = f"{layout.SUBMITTED_LABEL}：{date_text(values['submitted_on'], style)}"
        for pledge in layout.PLEDGES:
            if pledge.text in p.text:
                p.runs[0].text = f"{on if values.get(pledge.key) else off} {pledge.text}"
    if cover:
        _cover_page(doc)
    return doc


def _cover_page(doc: Document) -> None:
    """A cover letter before the form, in the same document (page break after it)."""
    from docx.enum.text import WD_BREAK

    first = doc.paragraphs[0]
    for text in ("知的財産課 御中", f"{layout.TITLE}の申請書を提出いたします。", "株式会社サンプル精機"):
        first.insert_paragraph_before(text)
    first.insert_paragraph_before().add_run().add_break(WD_BREAK.PAGE)


def soffice() -> str:
    """The LibreOffice binary; the tests that need it fail (not skip) without it."""
    path = shutil.which("soffice") or shutil.which("libreoffice")
    if path is None:
        raise RuntimeError(f"LibreOffice is missing: apt-get install {DEBIAN_PACKAGES}")
    return path


def convert_docx(docs: dict[str, Document]) -> dict[str, bytes]:
    """PDFs of the documents, converted in ONE LibreOffice run (1–2 s per start)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, doc in docs.items():
            doc.save(Path(tmp) / f"{name}.docx")
            paths.append(str(Path(tmp) / f"{name}.docx"))
        profile = Path(tmp) / "profile"  # its own profile: no clash with a running soffice
        cmd = [soffice(), f"-env:UserInstallation=file://{profile}", "--headless",
               "--convert-to", "pdf", "--outdir", tmp, *paths]
        subprocess.run(cmd, check=True, capture_output=True, timeout=180)
        return {name: (Path(tmp) / f"{name}.pdf").read_bytes() for name in docs}


# ---------------------------------------------------------------- the variants

SEALED = (True, True, "red")
UNSEALED = (False, False, None)


@dataclass(frozen=True)
class Variant:
    """One PDF of the corpus and what must be read from it."""

    id: str
    make: Callable[[], bytes]
    expected: dict
    seal: tuple = SEALED
    form_page: int = 1
    pages: int | None = 1
    needs_soffice: bool = False


def _drawn(gen: str, pages_fn: Callable, style: Style, **kw) -> Callable[[], bytes]:
    """A make() for a drawn layout on one backend."""
    values = expected_values(style, **kw.pop("overrides", {}))
    play = play_reportlab if gen == "reportlab" else play_fpdf
    return lambda: play(pages_fn(values, style, **kw))


# The value sets the tick styles are tried with: each exercises other options.
OVERRIDES = {
    "square": {},
    "ballot": {"country": "EU:DE", "base_kinds": ["rep_office"]},
    "check": {"country": "ID", "base_status": "planned", "jetro_registered": True},
    "circle": {"country": "IN", "application_type": "local", "base_kinds": ["subsidiary", "rep_office"]},
    "ellipse": {"country": "TH", "base_kinds": ["factory"], "base_status": "planned"},
}

LAYOUTS: dict[str, tuple[Callable, dict]] = {
    "table190": (table_pages, {"label_w": 190}),
    "table120": (table_pages, {"label_w": 120}),
    "table4col": (table_pages, {"pairs": True}),
    "lines": (lines_pages, {}),
    "lines2col": (lines_pages, {"pairs": True}),
}

STYLES: dict[str, Style] = {
    "plain-square": Style(),
    "spaced-wareki-ballot": Style(labels="spaced", dates="wareki", boxes="ballot"),
    "fullwidth-check-wrap": Style(dates="fullwidth", boxes="check", wrap=True, fullwidth=True),
    "rdots-circle": Style(dates="r-dots", boxes="circle"),
    "slash-ellipse-wrap": Style(dates="slash", boxes="ellipse", wrap=True),
    "hyphen-spaced-square": Style(labels="spaced", dates="hyphen", wrap=True),
}


def _drawn_variant(gen: str, lname: str, sname: str) -> Variant:
    """One drawn variant with its expected fields and a red seal."""
    (fn, kw), style = LAYOUTS[lname], STYLES[sname]
    over = OVERRIDES[style.boxes]
    make = _drawn(gen, fn, style, overrides=over, **kw)
    return Variant(f"{gen}-{lname}-{sname}", make, expected_values(style, **over))


def drawn_variants() -> list[Variant]:
    """reportlab: every layout × style; fpdf2 (~0.35 s a PDF: it subsets the
    fonts) every layout and every style once, paired off."""
    out = [_drawn_variant("reportlab", lname, sname) for lname in LAYOUTS for sname in STYLES]
    styles = list(STYLES)
    for n, lname in enumerate(LAYOUTS):
        out.append(_drawn_variant("fpdf2", lname, styles[n % len(styles)]))
    out.append(_drawn_variant("fpdf2", "lines2col", styles[len(LAYOUTS) % len(styles)]))
    return out


def mixed_variants() -> list[Variant]:
    """The form among other pages, over two pages, without a seal, from fill.py."""
    style, plain = Style(dates="wareki", wrap=True), Style()
    form = _drawn("reportlab", table_pages, plain)
    two = _drawn("fpdf2", table_pages, style, break_after=2)
    unsealed = expected_values(plain) | {"_seal": False}
    return [
        Variant("cover-before", lambda: concat(cover_letter(), form()), expected_values(plain), form_page=2, pages=2),
        Variant("brochure-after", lambda: concat(form(), brochure(), brochure()), expected_values(plain), pages=3),
        Variant("cover-and-brochure", lambda: concat(cover_letter(), form(), brochure()),
                expected_values(plain), form_page=2, pages=3),
        Variant("two-page-form", two, expected_values(style), pages=2),
        Variant("two-page-form-after-cover", lambda: concat(cover_letter(), two()), expected_values(style),
                form_page=2, pages=3),
        Variant("no-seal-lines", lambda: play_fpdf(lines_pages(unsealed, plain)), expected_values(plain),
                seal=UNSEALED),
        Variant("fill.py-image-seal", lambda: render_application(sample_values(), seal_kind="image"),
                sample_values()),
    ]


LIBREOFFICE_STYLES = {
    "lo-ballot-wareki": (Style(dates="wareki", boxes="ballot"), True, False),
    "lo-square-fullwidth-wrap": (Style(dates="fullwidth", boxes="square", wrap=True, fullwidth=True), True, False),
    "lo-check-slash-noseal": (Style(dates="slash", boxes="check"), False, False),
    "lo-circle-cover": (Style(dates="r-dots", boxes="circle"), True, True),
}


def libreoffice_variants() -> list[Variant]:
    """The shipped .docx filled with python-docx and exported by LibreOffice (converted once)."""
    out = []
    for name, (style, sealed, cover) in LIBREOFFICE_STYLES.items():
        values = expected_values(style, **OVERRIDES[style.boxes])
        out.append(Variant(name, lambda n=name: libreoffice_pdfs()[n], values,
                           SEALED if sealed else UNSEALED, 2 if cover else 1, None, needs_soffice=True))
    return out


_converted: dict[str, bytes] = {}


def libreoffice_pdfs() -> dict[str, bytes]:
    """Every LibreOffice variant's PDF, made on first use (one soffice run per session)."""
    if not _converted:
        with tempfile.TemporaryDirectory() as tmp:
            png = Path(tmp) / "seal.png"
            png.write_bytes(seal_png("山田", RED))
            docs = {}
            for name, (style, sealed, cover) in LIBREOFFICE_STYLES.items():
                values = expected_values(style, **OVERRIDES[style.boxes])
                docs[name] = fill_docx(values, style, png if sealed else None, cover)
            _converted.update(convert_docx(docs))
    return _converted


def all_variants() -> list[Variant]:
    """The whole corpus."""
    return drawn_variants() + mixed_variants() + libreoffice_variants()
