"""Render the application form, filled with given values, as a text PDF.

Used by the tests (round trips through read_form), by ``mailbot demo`` and by
blank.py (the shipped blank PDF is ``render_application({}, seal="none")``).
reportlab's built-in CID fonts (HeiseiMin-W3, HeiseiKakuGo-W5) need no font
files and pdfplumber reads their text back cleanly.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas

from mailbot.forms import layout
from mailbot.forms.fields import EUROPE_CODES
from mailbot.forms.layout import Field

MINCHO, GOTHIC = "HeiseiMin-W3", "HeiseiKakuGo-W5"
for _font in (MINCHO, GOTHIC):
    pdfmetrics.registerFont(UnicodeCIDFont(_font))

PAGE_W, PAGE_H = A4
MARGIN = 40.0
LABEL_W = 190.0
VALUE_SIZE, LABEL_SIZE, LINE_H = 9.5, 9.0, 11.5
ROW_MIN_H = 18.0
SEAL_RADIUS = 25.0  # 50 pt ≈ 17.6 mm, a usual 代表者印
VERMILION = (0.85, 0.12, 0.10)
SEALS = ("red", "none", "misplaced", "black")


@dataclass
class _Pen:
    """The canvas and the y of the next thing to draw (from the page top)."""

    canvas: Canvas
    top: float = MARGIN
    seal_mark: tuple[float, float] | None = None  # centre of 印, from the top

    def y(self, top: float) -> float:
        """reportlab's y (from the bottom) for a distance from the page top."""
        return PAGE_H - top


def wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Lines of ``text`` fitting ``width``; Japanese breaks anywhere, Latin at spaces."""
    lines: list[str] = []
    for para in text.splitlines() or [""]:
        line = ""
        for token in _tokens(para):
            if line and pdfmetrics.stringWidth(line + token, font, size) > width:
                lines.append(line.rstrip())
                line = token.lstrip()
            else:
                line += token
        lines.append(line.rstrip())
    return lines


def _tokens(text: str) -> list[str]:
    """Latin words (with their leading space) stay whole; other characters single."""
    tokens: list[str] = []
    for ch in text:
        latin = ch.isascii() and not ch.isspace()
        if latin and tokens and tokens[-1][-1:].isascii() and tokens[-1].strip():
            tokens[-1] += ch
        elif latin and tokens and tokens[-1] == " ":
            tokens[-1] += ch
        else:
            tokens.append(ch)
    return tokens


# ---------------------------------------------------------------- values → text

def _europe_name(code: str) -> str:
    """The Japanese name printed for EU:<code> (the first spelling in the map)."""
    return next((ja for ja, c in EUROPE_CODES.items() if c == code), code)


def _option_text(f: Field, value: object) -> str:
    """An option field's cell: every option with □ or ■."""
    if f.kind == "country":
        code = str(value or "")
        ticked = {"EU"} if code.startswith("EU:") else {code}
        return layout.option_line(f, ticked, _europe_name(code[3:]) if code.startswith("EU:") else "")
    ticked = set(value) if isinstance(value, (list, tuple, set)) else {value}
    return layout.option_line(f, ticked if value is not None else set())


def _date_text(value: str, kind: str) -> str:
    """"2026-11-26" → 2026年11月26日; "2018-04" → 2018年4月; other text as is."""
    parts = value.split("-")
    if not all(p.isdigit() for p in parts) or len(parts) != (3 if kind == "date" else 2):
        return value
    text = f"{int(parts[0])}年{int(parts[1])}月"
    return text + (f"{int(parts[2])}日" if kind == "date" else "")


def _datetimes_text(values: list) -> str:
    """希望日時: one line per wish, 「第1希望：2026年12月3日 14:00」."""
    lines = []
    for n, value in enumerate(values, start=1):
        day, _, time = str(value).partition("T")
        lines.append(f"第{n}希望：{_date_text(day, 'date')}{' ' + time if time else ''}")
    return "\n".join(lines)


def value_text(f: Field, value: object) -> str:
    """What is printed in the value cell for ``value`` (missing → blank/unit only)."""
    if f.options:
        return _option_text(f, value)
    if value is None:
        return f"　　　{f.unit}" if f.unit else ""
    if f.kind == "datetimes":
        return _datetimes_text(list(value))
    if f.kind in ("date", "month"):
        return _date_text(str(value), f.kind)
    if f.kind == "int" and isinstance(value, int):
        return f"{value:,}{f.unit}"
    return f"{value}{f.unit}" if isinstance(value, (int, float)) else str(value)


# ---------------------------------------------------------------- drawing

def _draw_header(pen: _Pen, values: dict, spec: layout.FormSpec) -> None:
    """提出日 (if the form has one) top right, the title centred, the addressee on the left."""
    c = pen.canvas
    if layout.SUBMITTED_ON in spec.header:
        date = value_text(layout.SUBMITTED_ON, values.get("submitted_on"))
        c.setFont(MINCHO, 10)
        c.drawRightString(PAGE_W - MARGIN, pen.y(pen.top + 10), f"{layout.SUBMITTED_LABEL}：{date or '　　　　年　　月　　日'}")
    c.setFont(GOTHIC, 15)
    c.drawCentredString(PAGE_W / 2, pen.y(pen.top + 45), spec.title)
    c.setFont(MINCHO, 10.5)
    c.drawString(MARGIN, pen.y(pen.top + 75), layout.ADDRESSEE)
    pen.top += 88


def _row_lines(f: Field, value: object) -> tuple[list[str], list[str]]:
    """The wrapped label and value lines of one table row."""
    value_w = PAGE_W - 2 * MARGIN - LABEL_W - 12 - (24 if f.seal_mark else 0)
    labels = wrap(f.label, GOTHIC, LABEL_SIZE, LABEL_W - 10)
    text = value_text(f, value)
    if f.options:  # break between options, never inside 「欧州（国名：…）」
        values = _pack(text.split("　"), value_w)
    else:
        values = wrap(text, MINCHO, VALUE_SIZE, value_w)
    return labels, values + [""] * (f.lines - len(values))


def _pack(parts: list[str], width: float) -> list[str]:
    """Options joined by 「　」 on as few lines as fit ``width``."""
    lines = [parts[0]]
    for part in parts[1:]:
        candidate = f"{lines[-1]}　{part}"
        if pdfmetrics.stringWidth(candidate, MINCHO, VALUE_SIZE) > width:
            lines.append(part)
        else:
            lines[-1] = candidate
    return lines


def _draw_lines(c: Canvas, lines: list[str], x: float, top: float, h: float, font: str, size: float) -> None:
    """Lines of text vertically centred in a cell of height ``h``."""
    c.setFont(font, size)
    first = top + (h - LINE_H * len(lines)) / 2 + size
    for i, line in enumerate(lines):
        c.drawString(x, PAGE_H - (first + i * LINE_H) + 1, line)


def _draw_row(pen: _Pen, f: Field, value: object) -> float:
    """One label | value row below pen.top; returns its height."""
    labels, values = _row_lines(f, value)
    h = max(ROW_MIN_H, LINE_H * max(len(labels), len(values)) + 7)
    x_value = MARGIN + LABEL_W
    _draw_lines(pen.canvas, labels, MARGIN + 5, pen.top, h, GOTHIC, LABEL_SIZE)
    _draw_lines(pen.canvas, values, x_value + 6, pen.top, h, MINCHO, VALUE_SIZE)
    if f.seal_mark:  # the 印 at the end of the 代表者氏名 row
        x = PAGE_W - MARGIN - 20
        _draw_lines(pen.canvas, [layout.SEAL_MARK], x, pen.top, h, MINCHO, 11)
        pen.seal_mark = (x + 5.5, pen.top + h / 2)
    return h


def _draw_section(pen: _Pen, section: layout.Section, values: dict) -> None:
    """The heading and the ruled two-column table of one section."""
    c = pen.canvas
    c.setFont(GOTHIC, 10.5)
    c.drawString(MARGIN, pen.y(pen.top + 13), section.title)
    pen.top += 18
    edges = [pen.top]
    for f in section.fields:
        pen.top = edges[-1]
        edges.append(edges[-1] + _draw_row(pen, f, values.get(f.key)))
    _rule_table(c, edges)
    pen.top = edges[-1] + 8


def _rule_table(c: Canvas, edges: list[float]) -> None:
    """Full-width horizontal rules and full-height column rules of a table."""
    c.setLineWidth(0.7)
    x0, xm, x1 = MARGIN, MARGIN + LABEL_W, PAGE_W - MARGIN
    for top in edges:
        c.line(x0, PAGE_H - top, x1, PAGE_H - top)
    for x in (x0, xm, x1):
        c.line(x, PAGE_H - edges[0], x, PAGE_H - edges[-1])


def _draw_pledges(pen: _Pen, values: dict, spec: layout.FormSpec) -> None:
    """The pledge heading and one checkbox line per pledge (none: nothing)."""
    if not spec.pledges:
        return
    c = pen.canvas
    c.setFont(GOTHIC, 10.5)
    c.drawString(MARGIN, pen.y(pen.top + 13), layout.PLEDGE_HEADING)
    pen.top += 18
    for pledge in spec.pledges:
        box = layout.BOX_TICKED if values.get(pledge.key) else layout.BOX_EMPTY
        c.setFont(MINCHO, VALUE_SIZE)
        c.drawString(MARGIN + 5, pen.y(pen.top + 11), f"{box} {pledge.text}")
        pen.top += 15


# ---------------------------------------------------------------- the seal

def _seal_chars(values: dict) -> str:
    """The characters inside the stamp: the representative's family name."""
    name = str(values.get("representative_name") or "").split()
    return (name[0] if name else "代表")[:3]


def _seal_image(chars: str, rgb: tuple[float, float, float]) -> ImageReader:
    """A pasted 電子印鑑 for reportlab (see seal_png)."""
    return ImageReader(io.BytesIO(seal_png(chars, rgb)))


def seal_png(chars: str, rgb: tuple[float, float, float]) -> bytes:
    """A pasted 電子印鑑: a transparent PNG with a ring and the name, made with Pillow."""
    from PIL import Image, ImageDraw

    size, colour = 240, tuple(int(v * 255) for v in rgb) + (255,)
    img = Image.new("RGBA", (size, size), (255, 255, 255, 0))
    draw = ImageDraw.Draw(img)
    draw.ellipse((6, 6, size - 6, size - 6), outline=colour, width=12)
    px = int(size * 0.66 / max(len(chars), 1))
    font = _pil_font(px)
    for i, ch in enumerate(chars):  # stacked vertically, as hanko are cut
        y = size / 2 + px * (i - (len(chars) - 1) / 2)
        draw.text((size / 2, y), ch, fill=colour, font=font, anchor="mm")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _pil_font(px: int):
    """A Japanese TrueType font when the machine has one, else Pillow's default."""
    from PIL import ImageFont

    for path in ("/usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf",
                 "/usr/share/fonts/truetype/fonts-japanese-mincho.ttf"):
        try:
            return ImageFont.truetype(path, px)
        except OSError:  # not installed here: the ring alone still makes a seal
            continue
    return ImageFont.load_default(px)


def _draw_vector_seal(c: Canvas, cx: float, cy: float, chars: str, rgb: tuple) -> None:
    """A ring and the name drawn as text, the way 電子印鑑 tools paste them."""
    c.saveState()
    c.setStrokeColorRGB(*rgb)
    c.setFillColorRGB(*rgb)
    c.setLineWidth(2.2)
    c.circle(cx, cy, SEAL_RADIUS, stroke=1, fill=0)
    size = min(18.0, 1.6 * SEAL_RADIUS / max(len(chars), 1))
    c.setFont(MINCHO, size)
    for i, ch in enumerate(chars):
        offset = (len(chars) - 1) / 2 - i
        c.drawCentredString(cx, cy + offset * size - size * 0.35, ch)
    c.restoreState()


def _draw_seal(pen: _Pen, values: dict, seal: str, seal_kind: str) -> None:
    """Stamp the page as asked: on the 印 mark, elsewhere, in black, or not at all."""
    if seal == "none" or pen.seal_mark is None:
        return
    x, top = pen.seal_mark
    if seal == "misplaced":  # the bottom margin, far from the 代表者氏名 row
        x, top = PAGE_W - MARGIN - 60, PAGE_H - 32  # centre 32 pt above the bottom edge
    rgb = (0.08, 0.08, 0.08) if seal == "black" else VERMILION
    chars = _seal_chars(values)
    if seal_kind == "image":
        img, d = _seal_image(chars, rgb), 2 * SEAL_RADIUS
        pen.canvas.drawImage(img, x - d / 2, PAGE_H - top - d / 2, d, d, mask="auto")
    else:
        _draw_vector_seal(pen.canvas, x, PAGE_H - top, chars, rgb)


def render_form(spec: layout.FormSpec, values: dict, *, seal: str = "none",
                seal_kind: str = "vector") -> bytes:
    """Form ``spec`` filled with ``values``, one A4 page (see render_application)."""
    if seal not in SEALS or seal_kind not in ("vector", "image"):
        raise ValueError(f"unknown seal {seal!r} / seal_kind {seal_kind!r}")
    buf = io.BytesIO()
    # invariant: no timestamp or random ID, so the same values give the same bytes
    canvas = Canvas(buf, pagesize=A4, pageCompression=1, invariant=1)
    canvas.setTitle(spec.title)
    pen = _Pen(canvas)
    _draw_header(pen, values, spec)
    for section in spec.sections:
        _draw_section(pen, section, values)
    _draw_pledges(pen, values, spec)
    _draw_seal(pen, values, seal, seal_kind)
    canvas.showPage()
    canvas.save()
    return buf.getvalue()


def render_application(values: dict, *, seal: str = "red", seal_kind: str = "vector") -> bytes:
    """The application form filled with ``values`` (FormReading.fields vocabulary).

    ``seal``: "red" (on the 印 mark), "none", "misplaced" (bottom margin),
    "black" (on the 印 mark, black ink); ``seal_kind``: "vector" or "image".
    A missing key prints a blank value / no ticked box.
    """
    return render_form(layout.APPLICATION, values, seal=seal, seal_kind=seal_kind)


# ---------------------------------------------------------------- sample data

def corporate_check_digit(base12: str) -> int:
    """The National Tax Agency check digit for the 12 digits after it.

    9 − (Σ Pn × Qn mod 9), Pn the n-th digit counted from the right,
    Qn = 1 for odd n and 2 for even n.
    """
    total = sum(int(d) * (2 if n % 2 == 0 else 1) for n, d in enumerate(reversed(base12), start=1))
    return 9 - total % 9


def corporate_number(base12: str) -> str:
    """A 13-digit 法人番号: check digit first, then the 12 digits."""
    return f"{corporate_check_digit(base12)}{base12}"


def sample_values(**overrides) -> dict:
    """A complete, valid application; an override of None removes that key."""
    values = {
        "submitted_on": "2026-11-26",
        "application_type": "domestic",
        "company_name": "株式会社サンプル精機",
        "corporate_number": corporate_number("010401099887"),
        "representative_title": "代表取締役社長",
        "representative_name": "山田 太郎",
        "address": "東京都港区赤坂1-12-32 サンプルビル5階",
        "industry": "精密機械製造業",
        "employees": 1200,
        "contact_name": "佐藤 花子",
        "contact_department": "総務部 法務課長",
        "contact_phone": "03-1234-5678",
        "contact_email": "hanako.sato@sample-seiki.co.jp",
        "jetro_registered": True,
        "country": "VN",
        "base_status": "existing",
        "base_kinds": ["subsidiary", "factory"],
        "base_name": "SAMPLE SEIKI VIETNAM CO., LTD.",
        "base_address": "Lot A-1, Thang Long Industrial Park, Dong Anh, Hanoi, Vietnam",
        "base_established": "2018-04",
        "investment_ratio": 100,
        "consultation_hours": 10,
        "training_hours": 8,
        "current_issues": "退職者による設計図面の持ち出しが懸念されるため、秘密情報の区分と"
                          "アクセス管理の規程を現地法人でも整備したい。",
        "pledge_commitment": True,
        "pledge_experience": True,
        "pledge_publicity": True,
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}
