"""Seal variants: the sample application stamped in every way applicants do, with the verdict a person would give.

Each variant is the unstamped form (fill.render_application(seal="none"))
with an overlay merged on top (reportlab + pypdf) or a /Stamp annotation
added (pypdf), so no binary is committed. ``VARIANTS`` maps a name to
(builder, expected (present, near_field, color)).
"""

from __future__ import annotations

import io
from functools import lru_cache

import pdfplumber
from PIL import Image, ImageDraw, ImageFilter
from pypdf import PdfReader, PdfWriter
from pypdf.generic import ArrayObject, DictionaryObject, FloatObject, NameObject, NumberObject, StreamObject
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from mailbot.forms.fill import MINCHO, PAGE_H, PAGE_W, _pil_font, render_application, sample_values

VERMILION = (0.85, 0.12, 0.10)
ORANGE = (0.93, 0.38, 0.12)  # 朱肉 that has dried orange
FAINT = (0.96, 0.72, 0.70)  # a light press
BLACK, BLUE = (0.08, 0.08, 0.08), (0.10, 0.20, 0.75)
R = 25.0  # stamp radius in points (≈ 17.6 mm)


@lru_cache
def base() -> bytes:
    """The sample application, unstamped."""
    return render_application(sample_values(), seal="none")


@lru_cache
def mark() -> tuple[float, float]:
    """Centre (x, y from the bottom) of the printed 印 on the 代表者氏名 row."""
    with pdfplumber.open(io.BytesIO(base())) as pdf:
        ch = next(c for c in pdf.pages[0].chars if c["text"] == "印" and c["x0"] > PAGE_W / 2)
    return (ch["x0"] + ch["x1"]) / 2, PAGE_H - (ch["top"] + ch["bottom"]) / 2


def overlay(draw) -> bytes:
    """The base form with ``draw(canvas)`` merged on top of page 1."""
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(PAGE_W, PAGE_H))
    draw(c)
    c.showPage()
    c.save()
    writer = PdfWriter(clone_from=io.BytesIO(base()))
    writer.pages[0].merge_page(PdfReader(buf).pages[0])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# ---------------------------------------------------------------- vector stamps

def _chars(c: Canvas, cx: float, cy: float, rgb, text: str = "山田", size: float = 16) -> None:
    """Stamp characters as text, stacked vertically as hanko are cut."""
    c.setFillColorRGB(*rgb)
    c.setFont(MINCHO, size)
    for i, ch in enumerate(text):
        c.drawCentredString(cx, cy + ((len(text) - 1) / 2 - i) * size - size * 0.35, ch)


def round_stamp(rgb, at=None, rings=1, width=2.2):
    """A ring (or double ring) with the name inside, drawn as vector paths and text."""
    def draw(c: Canvas) -> None:
        cx, cy = at or mark()
        c.setStrokeColorRGB(*rgb)
        c.setLineWidth(width)
        for k in range(rings):
            c.circle(cx, cy, R - k * 4, stroke=1, fill=0)
        _chars(c, cx, cy, rgb)
    return draw


def square_stamp(rgb, at=None):
    """A 角印: a square frame with four characters in a 2×2 grid."""
    def draw(c: Canvas) -> None:
        cx, cy = at or mark()
        side = 62.0  # ≈ 22 mm
        c.setStrokeColorRGB(*rgb)
        c.setLineWidth(2.5)
        c.rect(cx - side / 2, cy - side / 2, side, side, stroke=1, fill=0)
        for i, ch in enumerate("株式会社"):
            _chars(c, cx + (12 if i < 2 else -12), cy + (10 if i % 2 == 0 else -14), rgb, ch, 20)
    return draw


def red_instructions(c: Canvas) -> None:
    """Red 「※記名押印してください」 and a red underline on the row: the form's own ink."""
    x, y = mark()
    c.setFillColorRGB(*VERMILION)
    c.setFont(MINCHO, 8)
    c.drawString(x - 150, y - 12, "※代表者が記名押印してください")
    c.setStrokeColorRGB(*VERMILION)
    c.setLineWidth(1.2)
    c.line(x - 110, y - 6, x - 30, y - 6)  # 28 mm: shorter than a table rule, so it is drawn


def red_mark_glyphs(c: Canvas) -> None:
    """A red 印 and ㊞ printed larger than usual: glyphs, not a stamp."""
    x, y = mark()
    _chars(c, x - 40, y, VERMILION, "㊞", 22)
    _chars(c, x - 70, y, VERMILION, "印", 22)


def instruction_image() -> Image.Image:
    """「※記名押印」 in red as a pasted picture (a scanned or exported form part)."""
    img = Image.new("RGBA", (420, 60), (255, 255, 255, 0))
    ImageDraw.Draw(img).text((4, 30), "※記名押印", fill=(215, 30, 25, 255), font=_pil_font(50), anchor="lm")
    return img


def printed_circle(c: Canvas) -> None:
    """A thin printed ○ around the 印 mark, as many forms have."""
    x, y = mark()
    c.setStrokeColorRGB(0, 0, 0)
    c.setLineWidth(0.6)
    c.circle(x, y, 15, stroke=1, fill=0)


def both(*draws):
    """Several drawings on one overlay."""
    return lambda c: [d(c) for d in draws]


# ---------------------------------------------------------------- raster stamps

def seal_png(rgb, *, background=None, faint=False, partial=False, size=240) -> Image.Image:
    """A 電子印鑑 image: ring and name; transparent or on a white background.

    ``faint``: light, blurred, speckled ink; ``partial``: the lower-right
    third not printed (an uneven press).
    """
    colour = tuple(int(v * 255) for v in rgb)
    img = Image.new("RGBA", (size, size), background or (255, 255, 255, 0))
    draw = ImageDraw.Draw(img)
    draw.ellipse((8, 8, size - 8, size - 8), outline=colour, width=12)
    font = _pil_font(int(size * 0.33))
    for i, ch in enumerate("山田"):
        draw.text((size / 2, size / 2 + size * 0.33 * (i - 0.5)), ch, fill=colour, font=font, anchor="mm")
    if partial:
        draw.pieslice((0, 0, size, size), -10, 110, fill=background or (255, 255, 255, 0))
    if faint:
        img = _speckle(img.filter(ImageFilter.GaussianBlur(1.5)))
    return img


def _speckle(img: Image.Image) -> Image.Image:
    """Knock out a regular scatter of ink pixels, as a dry stamp does."""
    px = img.load()
    for y in range(0, img.height, 3):
        for x in range((y * 7) % 5, img.width, 5):
            px[x, y] = (255, 255, 255, 0) if img.mode == "RGBA" else (255, 255, 255)
    return img


def image_stamp(img: Image.Image, fmt: str = "PNG", at=None, d: float = 2 * R):
    """The image pasted centred on the 印 mark (or ``at``), ``d`` points wide."""
    buf = io.BytesIO()
    (img.convert("RGB") if fmt == "JPEG" else img).save(buf, fmt, quality=70)
    h = d * img.height / img.width

    def draw(c: Canvas) -> None:
        x, y = at or mark()
        c.drawImage(ImageReader(io.BytesIO(buf.getvalue())), x - d / 2, y - h / 2, d, h, mask="auto")
    return draw


# ---------------------------------------------------------------- stamp annotations

def _appearance(writer: PdfWriter, draw, d: float) -> StreamObject:
    """A Form XObject of size d×d drawn by ``draw(canvas)`` (via a reportlab page)."""
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(d, d))
    draw(c)
    c.showPage()
    c.save()
    page = PdfReader(buf).pages[0]
    form = StreamObject()
    form.set_data(page.get_contents().get_data())
    form.update({NameObject("/Type"): NameObject("/XObject"), NameObject("/Subtype"): NameObject("/Form"),
                 NameObject("/BBox"): ArrayObject([FloatObject(0), FloatObject(0), FloatObject(d), FloatObject(d)]),
                 NameObject("/Resources"): page["/Resources"].clone(writer)})
    return form


def stamp_annotation(rgb, at=None, flags: int = 4, appearance: bool = True):
    """The base form with a /Stamp annotation (a round seal as its appearance stream)."""
    def build() -> bytes:
        writer = PdfWriter(clone_from=io.BytesIO(base()))
        x, y = at or mark()
        annot = DictionaryObject({
            NameObject("/Type"): NameObject("/Annot"), NameObject("/Subtype"): NameObject("/Stamp"),
            NameObject("/Rect"): ArrayObject([FloatObject(v) for v in (x - R, y - R, x + R, y + R)]),
            NameObject("/F"): NumberObject(flags), NameObject("/Name"): NameObject("/Approved")})
        if appearance:
            form = _appearance(writer, round_stamp(rgb, at=(R, R)), 2 * R)
            annot[NameObject("/AP")] = DictionaryObject({NameObject("/N"): writer._add_object(form)})
        writer.add_annotation(0, annot)
        out = io.BytesIO()
        writer.write(out)
        return out.getvalue()
    build.is_builder = True  # returns the PDF itself, not a drawing for overlay()
    return build


# ---------------------------------------------------------------- the corpus

ELSEWHERE = (PAGE_W - 100, 40.0)  # the bottom margin
TOP = (PAGE_W / 2 + 120, PAGE_H - 60)  # beside the title

RED, NONE = (True, True, "red"), (False, False, None)
MISPLACED = (True, False, "red")

VARIANTS = {
    # vector drawings
    "vector_round": (round_stamp(VERMILION), RED),
    "vector_double_ring": (round_stamp(VERMILION, rings=2), RED),
    "vector_square_kakuin": (square_stamp(VERMILION), RED),
    "vector_orange": (round_stamp(ORANGE), RED),
    "vector_faint": (round_stamp(FAINT, width=1.4), RED),
    "vector_off_centre": (round_stamp(VERMILION, at=(mark()[0] - 30, mark()[1] + 18)), RED),
    # raster images
    "png_transparent": (image_stamp(seal_png(VERMILION)), RED),
    "png_white_background": (image_stamp(seal_png(VERMILION, background=(255, 255, 255, 255))), RED),
    "jpeg_white_background": (image_stamp(seal_png(VERMILION, background=(255, 255, 255, 255)), "JPEG"), RED),
    "png_orange": (image_stamp(seal_png(ORANGE)), RED),
    "png_faint": (image_stamp(seal_png(FAINT, faint=True)), RED),
    "png_partial": (image_stamp(seal_png(VERMILION, partial=True)), RED),
    "png_small_mitome": (image_stamp(seal_png(VERMILION), d=30), RED),  # ≈ 10.6 mm
    # stamp annotations
    "annotation_stamp": (stamp_annotation(VERMILION), RED),
    "annotation_stamp_elsewhere": (stamp_annotation(VERMILION, at=ELSEWHERE), MISPLACED),
    "annotation_hidden": (stamp_annotation(VERMILION, flags=2), NONE),
    "annotation_without_appearance": (stamp_annotation(VERMILION, appearance=False), NONE),
    # what is not a seal
    "red_instructions_only": (red_instructions, NONE),
    "red_mark_glyphs_only": (red_mark_glyphs, NONE),
    "printed_circle_only": (printed_circle, NONE),
    "red_instructions_as_image": (image_stamp(instruction_image(), at=(mark()[0] - 60, mark()[1]), d=70), NONE),
    "red_instructions_and_seal": (both(red_instructions, round_stamp(VERMILION)), RED),
    "red_instructions_and_seal_elsewhere": (both(red_instructions, round_stamp(VERMILION, at=ELSEWHERE)), MISPLACED),
    # other inks
    "black_vector": (round_stamp(BLACK), (True, True, "black")),
    "black_png": (image_stamp(seal_png(BLACK)), (True, True, "black")),
    "black_square": (square_stamp(BLACK), (True, True, "black")),
    "blue_vector": (round_stamp(BLUE), (True, True, "blue")),
    "blue_png": (image_stamp(seal_png(BLUE)), (True, True, "blue")),
    "black_on_row_red_elsewhere": (both(round_stamp(BLACK), round_stamp(VERMILION, at=ELSEWHERE)), (True, True, "black")),
    # red elsewhere only
    "vector_bottom_margin": (round_stamp(VERMILION, at=ELSEWHERE), MISPLACED),
    "png_by_the_title": (image_stamp(seal_png(VERMILION), at=TOP), MISPLACED),
    "png_on_the_contact_row": (image_stamp(seal_png(VERMILION), at=(mark()[0], mark()[1] - 250)), MISPLACED),
}


def build(name: str) -> bytes:
    """The PDF of variant ``name``: an annotation builder's bytes, or the overlay merged."""
    make = VARIANTS[name][0]
    return make() if getattr(make, "is_builder", False) else overlay(make)
