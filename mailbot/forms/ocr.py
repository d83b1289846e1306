"""Read our forms (the application, the consultation request) from scanned pages with tesseract (Japanese).

A page is prepared by scan_image.py (red whited out, deskewed, table rules
removed, rows found from the rules) and OCR'd once with ``--psm 6``. Values
are read BY POSITION: each word box belongs to a table row, left of the row's
split is the label, right of it the value; labels are matched fuzzily
(OCR garbles them). Checkboxes are judged from pixels. Every value is then
validated (check digit, e-mail shape, phone digits, numbers) and, when it
fails or OCR was unsure, re-read from a crop; a value that still does not
hold up is left out of ``fields`` and listed in ``uncertain`` — a scan is
never allowed to put a wrong value in front of the checks unflagged.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytesseract

from mailbot.checks.corporate import is_valid_corporate_number
from mailbot.errors import PdfError
from mailbot.forms import (
    layout,
    ocr_latin,
    ocr_marks,
    ocr_spacing,
    scan_image,
    scan_seal,
    scan_ticks,
)
from mailbot.forms.consultation import CONSULTATION
from mailbot.forms.fields import label_key, nfkc, normalise
from mailbot.forms.reading import NO_SEAL, FormReading
from mailbot.forms.scan_image import Box, Page, Row, px

LANG = "jpn"
CONFIDENT = 0.80  # tesseract word confidence below this gets a second reading
LABEL_MATCH = 0.6  # difflib ratio for an OCR'd label to count as the printed one
SPACE_EM = 0.33  # a blank this wide (in em) between two words is a typed space
ENLARGE = 1.5  # the third look at a cell: its crop this much bigger
# The enlarged crop sees the crop's own pixels, so it may confirm the crop only when
# tesseract was somewhat sure of the crop: measured, a blurred 懸 read as 朱 in both
# at confidence 0.00, while the crops their enlargement rightly confirmed had 0.64–0.72.
SELF_CONFIRMED = 0.3
UNAVAILABLE_MESSAGE = (
    "スキャンされたPDF（画像のみのPDF）を読み取る文字認識（OCR）がこのサーバーで利用できません。"
    "担当者が確認いたしますので、しばらくお待ちください。"
)


def ocr_available() -> bool:
    """Whether the tesseract binary and its Japanese model are installed."""
    if shutil.which("tesseract") is None:
        return False
    try:
        return LANG in pytesseract.get_languages(config="")
    except (pytesseract.TesseractError, OSError):  # a broken install lists nothing
        return False


# ---------------------------------------------------------------- tesseract

@dataclass(frozen=True)
class Word:
    """One OCR'd word with its box (pixels) and confidence (0–1)."""

    text: str
    x0: int
    top: int
    x1: int
    bottom: int
    conf: float
    line: tuple[int, int, int]  # tesseract's (block, paragraph, line)

    @property
    def cx(self) -> float:
        return (self.x0 + self.x1) / 2

    @property
    def cy(self) -> float:
        return (self.top + self.bottom) / 2


def tesseract(ink: np.ndarray, lang: str = LANG, psm: int = 6) -> list[Word]:
    """Words of a binary image (True = ink), via a PNG file.

    A file path, not a PIL image: pytesseract would re-encode it (~1.2 s a
    page); one OpenMP thread: ~3× faster on this machine (notes/pdf.md).
    """
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    with tempfile.TemporaryDirectory(prefix="mailbot-ocr-") as tmp:
        path = str(Path(tmp) / "page.png")
        cv2.imwrite(path, np.where(ink, 0, 255).astype(np.uint8))
        data = pytesseract.image_to_data(path, lang=lang, config=f"--psm {psm}",
                                         output_type=pytesseract.Output.DICT)
    return [_word(data, i) for i, text in enumerate(data["text"]) if text.strip()]


def _word(data: dict, i: int) -> Word:
    """Row ``i`` of tesseract's table as a Word."""
    x, y, w, h = (int(data[k][i]) for k in ("left", "top", "width", "height"))
    line = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
    return Word(data["text"][i].strip(), x, y, x + w, y + h, max(0.0, float(data["conf"][i])) / 100, line)


# ---------------------------------------------------------------- words → text

def text_lines(words: list[Word]) -> list[list[Word]]:
    """Words grouped into visual lines (by their vertical centre), each left to right."""
    if not words:
        return []
    height = float(np.median([w.bottom - w.top for w in words]))
    lines: list[list[Word]] = []
    for word in sorted(words, key=lambda w: w.cy):
        if lines and abs(word.cy - np.mean([w.cy for w in lines[-1]])) < 0.6 * height:
            lines[-1].append(word)
        else:
            lines.append([word])
    return [sorted(line, key=lambda w: w.x0) for line in lines]


_JA_PUNCT = "、。・「」（）()：:，,"


_KANA = re.compile(r"[\u3040-\u30ff]")
_KANJI = re.compile(r"[\u4e00-\u9fff0-9A-Z]")


def em_size(line: list[Word]) -> float:
    """The font size of a line in pixels: the height of its kanji, digits and capitals
    (kana and punctuation boxes are shorter than the em)."""
    tall = [w.bottom - w.top for w in line if _KANJI.search(w.text)] or [w.bottom - w.top for w in line]
    return float(np.median(tall))


def _spaced(left: Word, right: Word, ink: np.ndarray, top: int, bottom: int, em: float) -> bool | None:
    """Whether a space separates two words; None when the page cannot tell.

    Measured on the form's Mincho: a space leaves 0.35–0.42 em of blank
    paper, kanji side bearings under 0.3 em — but kana bearings reach 0.35 em,
    so a blank next to kana in between is ambiguous (never a guess).
    """
    a, b = left.text[-1], right.text[0]
    if a.isascii() and b.isascii():
        return True  # tesseract splits Latin words at spaces only
    if a in _JA_PUNCT or b in _JA_PUNCT or (_KANA.match(a) and _KANA.match(b)):
        return False  # 、 and 。 carry their own blank; prose has no spaces between kana
    gap = scan_image.blank_run(ink, top, bottom, left.x0, right.x1) / em
    if not (_KANA.match(a) or _KANA.match(b)):
        return gap >= SPACE_EM
    return True if gap >= 0.45 else False if gap < 0.30 else None


def _pixel_spaces(line: list[Word], ink: np.ndarray, top: int, bottom: int, em: float) -> list[str | None] | None:
    """The space at each junction of the line's characters as its pixels' pitch shows it
    (ocr_spacing); None when the line cannot be cut into its characters."""
    pad = round(0.3 * em)  # tesseract's boxes clip the first and last glyph's edges
    x0, x1 = max(0, min(w.x0 for w in line) - pad), max(w.x1 for w in line) + pad
    return ocr_spacing.spaces(ink[max(0, top):bottom, x0:x1], "".join(w.text for w in line), em)


def _box_spaces(line: list[Word], ink: np.ndarray, top: int, bottom: int, em: float) -> list[bool | None]:
    """The space at each junction of the line's characters as tesseract's words show it:
    none inside a word, _spaced() between two words."""
    out: list[bool | None] = []
    for left, right in itertools.pairwise(line):
        out += [False] * (len(left.text) - 1) + [_spaced(left, right, ink, top, bottom, em)]
    return out + [False] * (len(line[-1].text) - 1)


def _decided(boxes: bool | None, pixels: list[str | None] | None, i: int, a: str, b: str) -> str | None:
    """Junction ``i`` ("", " " or 「　」): by the pitch wherever it can measure one (its
    None is a doubt, not a gap to fill), else by the word boxes."""
    if pixels is not None and ocr_spacing.measurable(a, b):
        return pixels[i]
    return None if boxes is None else " " if boxes else ""


def spaced_text(line: list[Word], ink: np.ndarray) -> tuple[str, bool]:
    """One line's text with spaces where the page shows them (「山田 太郎」, not 「山田太郎」),
    and False when a space could not be told from a wide glyph."""
    top, bottom, em = min(w.top for w in line), max(w.bottom for w in line), em_size(line)
    chars = "".join(w.text for w in line)
    pixels, boxes = _pixel_spaces(line, ink, top, bottom, em), _box_spaces(line, ink, top, bottom, em)
    out, sure = chars[0], True
    for i, (a, b) in enumerate(itertools.pairwise(chars)):
        space = _decided(boxes[i], pixels, i, a, b)
        out, sure = out + (space or "") + b, sure and space is not None
    return out, sure


def line_text(line: list[Word], ink: np.ndarray) -> str:
    """One line's text, spaced as well as the page shows."""
    return spaced_text(line, ink)[0]


# ---------------------------------------------------------------- finding the form

@dataclass
class Cell:
    """A table row as read: its label text and the value words."""

    row: Row
    label: str
    words: list[Word]


def cells(page: Page, words: list[Word]) -> list[Cell]:
    """Each table row with the words on it, split at the row's label | value rule."""
    found = []
    for row in page.rows:
        inside = [w for w in words if row.top < w.cy < row.bottom and w.cx > row.left]
        label = "".join(w.text for line in text_lines([w for w in inside if w.cx < row.split]) for w in line)
        found.append(Cell(row, label, [w for w in inside if w.cx > row.split]))
    return found


def similarity(a: str, b: str) -> float:
    """How alike two labels are after NFKC and space removal (0–1)."""
    return difflib.SequenceMatcher(None, label_key(a), label_key(b)).ratio()


SPECS: tuple[layout.FormSpec, ...] = (layout.APPLICATION, CONSULTATION)
TITLE_MATCH = 0.7  # an OCR'd line this like a form's title is that title (消談 for 相談)
# Labels only the consultation form prints: without its title, one of them must be read.
CONSULTATION_ONLY = frozenset({"topic", "preferred_dates"})


def match_fields(found: list[Cell], spec: layout.FormSpec = layout.APPLICATION,
                 keys: frozenset[str] | None = None) -> dict[str, Cell]:
    """{key: cell}: the printed order when every row is there, else the best label matches
    (``keys``: only those fields, for a page that continues the form)."""
    fields = tuple(f for f in spec.table_fields() if keys is None or f.key in keys)
    if len(found) == len(fields) and keys is None:
        scores = [similarity(c.label, f.label) for c, f in zip(found, fields)]
        if np.mean(scores) >= LABEL_MATCH:  # our own form: order is certain, labels only confirm
            return {f.key: c for f, c in zip(fields, found)}
    pairs = sorted(((similarity(c.label, f.label), i, f.key) for i, c in enumerate(found) for f in fields), reverse=True)
    matched: dict[str, Cell] = {}
    used: set[int] = set()
    for score, i, key in pairs:
        if score >= LABEL_MATCH and i not in used and key not in matched:
            matched[key], _ = found[i], used.add(i)
    return matched


def _titled(spec: layout.FormSpec, lines: list[str]) -> float:
    """How like ``spec``'s title the most similar line is (0–1)."""
    return max((similarity(line, spec.title) for line in lines), default=0.0)


def is_form(matched: dict[str, Cell], lines: list[str], spec: layout.FormSpec = layout.APPLICATION) -> bool:
    """The form ``spec``: its title on a line, or most of its table labels (the
    consultation's only with a label the application does not print)."""
    if _titled(spec, lines) >= TITLE_MATCH:
        return True
    if spec.name == CONSULTATION.name:
        return len(matched) >= 6 and bool(CONSULTATION_ONLY & set(matched))
    return len(matched) >= 8


def identify(found: list[Cell], lines: list[str]) -> tuple[layout.FormSpec, dict[str, Cell]] | None:
    """(form, {key: cell}) for the form whose title reads best, else whose labels do; None
    when the page is neither (both forms print 企業名, 法人番号, 電話番号 …)."""
    ranked = sorted(SPECS, key=lambda spec: _titled(spec, lines), reverse=True)
    for spec in ranked:
        matched = match_fields(found, spec)
        if is_form(matched, lines, spec):
            return spec, matched
    return None


# ---------------------------------------------------------------- validation

_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")  # as checks.fields.Email
_PHONE = re.compile(r"\+?[\d\s()\-]+")


_ISO_WISH = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2})?")


def _valid_scalar(f: layout.Field, value: object) -> bool:
    """Whether a typed value has its field's shape (ints, ISO dates, 0–100 %)."""
    if f.kind == "datetimes":  # 希望日時: every wish read as a date (a cell kept as text is not)
        return isinstance(value, list) and bool(value) and all(
            isinstance(v, str) and _ISO_WISH.fullmatch(v) for v in value)
    if f.kind == "date":
        return isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is not None
    if f.kind == "month":
        return isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}", value) is not None
    if f.kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if f.kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 100
    return isinstance(value, str) and value.strip() != ""


def valid(f: layout.Field, value: object) -> bool:
    """Whether an OCR'd value passes its field's rule; OCR errors mostly do not.

    A scan whose value fails is flagged for staff rather than reported to the
    applicant as wrong: the applicant may have written it right.
    """
    if f.key == "corporate_number":
        return is_valid_corporate_number(value)
    if f.key == "contact_email":
        return isinstance(value, str) and _EMAIL.fullmatch(value) is not None
    if f.key == "contact_phone":
        digits = re.sub(r"\D", "", value) if isinstance(value, str) else ""
        return _PHONE.fullmatch(str(value)) is not None and 10 <= len(digits) <= 15
    return _valid_scalar(f, value)


JA_ADDRESSES = frozenset({"address"})  # Japanese addresses (the overseas base's is in Latin)
_DASH_BETWEEN_DIGITS = re.compile(r"(?<=\d)\s*[ー一―−‐–—~〜]\s*(?=\d)")


def ocr_fixes(f: layout.Field, text: str) -> str:
    """Undo OCR's usual misreadings that the field's type makes unambiguous.

    A dash between digits (03ー1234, 1一12) is a hyphen; in a whole number a
    "." before three digits (1.200名) is the thousands comma; in a Japanese
    address a "." or "," between digits (西2.1) is a hyphen.
    """
    text = _DASH_BETWEEN_DIGITS.sub("-", nfkc(text) if f.kind != "text" else text)
    if f.key in JA_ADDRESSES:  # 丁目-番地-号 are joined by hyphens; no 住所 has a decimal point
        text = re.sub(r"(?<=\d)[.,](?=\d)", "-", text)
    if f.kind == "int":
        text = re.sub(r"(?<=\d)[.,]{1,2}(?=\d{3}(\D|$))", ",", text)  # 3,.450: a comma and a speck
    # Katakana twins of kanji (ニ/二, ロ/口, エ/工, カ/力, タ/夕, ハ/八) after a kanji and
    # before a kanji or the end: a name like 健二 read as 健ニ.
    return _TWIN_RE.sub(lambda m: _TWINS[m.group(0)], text)


_TWINS = {"ニ": "二", "ロ": "口", "エ": "工", "カ": "力", "タ": "夕", "ハ": "八"}
_TWIN_RE = re.compile(f"(?<=[\u4e00-\u9fff])[{''.join(_TWINS)}](?=[\u4e00-\u9fff]|\\s|$)")


def compact(text: str) -> str:
    """Text as two readings are compared: NFKC, no spaces."""
    return re.sub(r"\s+", "", nfkc(text))


# ---------------------------------------------------------------- reading one field

@dataclass(frozen=True)
class Read:
    """One field as OCR read it; ``sure`` False puts it in ``uncertain`` instead of ``fields``."""

    value: object
    original: str
    conf: float
    sure: bool


UNREAD = Read(None, "", 0.0, False)
# Unread because the page has no row (or line) for it at all: a two-page form's next page may.
MISSING = Read(None, "", 0.0, False)
# Always read twice: a misread digit or letter passes every rule, and replies go there.
# 希望日時 too: a misread digit is another valid day.
DOUBLE_CHECKED = frozenset({"contact_email", "contact_phone", "corporate_number", "preferred_dates"})


def region(words: list[Word], row: Row | None) -> tuple[int, int, int, int]:
    """(x0, top, x1, bottom) to crop for a second reading: the words' cell, or the words
    with a margin; generous, because tesseract's boxes clip glyph edges."""
    pad = px(4)
    x0, x1 = min(w.x0 for w in words) - pad, max(w.x1 for w in words) + 2 * pad
    if row is not None:
        return max(x0, row.split + px(1.5)), row.top + px(1.5), x1, row.bottom - px(1.5)
    return x0, min(w.top for w in words) - pad, x1, max(w.bottom for w in words) + pad


def _crop(page: Page, box: tuple[int, int, int, int], scale: float, own_threshold: bool) -> np.ndarray:
    """The ink in ``box`` (white-bordered, ``scale``d); ``own_threshold``: only what is
    darker than the crop's own Otsu threshold, for a cell the page's threshold
    inked too heavily (a 150 dpi JPEG: strokes run together and tesseract reads nothing)."""
    x0, top, x1, bottom = max(0, box[0]), max(0, box[1]), box[2], box[3]
    crop = page.ink[top:bottom, x0:x1]
    if own_threshold and crop.any():
        gray = cv2.cvtColor(np.ascontiguousarray(page.rgb[top:bottom, x0:x1]), cv2.COLOR_RGB2GRAY)
        crop = crop & (gray < cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)[0])
    if scale != 1.0:
        crop = cv2.resize(crop.astype(np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) > 0
    return np.pad(crop, px(6), constant_values=False)  # tesseract wants a white border


def second_reading(page: Page, box: tuple[int, int, int, int], lines: int, lang: str,
                   scale: float = 1.0) -> tuple[str, float, bool]:
    """The text in ``box`` OCR'd again on its own (``lang``: "eng" for Latin-only text).

    A crop is laid out differently from the whole page, so tesseract's errors
    there are not the same ones: two readings that agree are trustworthy.
    ``scale`` enlarges the crop for a third view of the same glyphs; a crop
    that reads as nothing is read once more at its own threshold. Returns the
    text, its lowest word confidence, and whether its spaces are certain.
    """
    crop = _crop(page, box, scale, own_threshold=False)
    again = tesseract(crop, lang, 7 if lines == 1 else 6)
    if not again:
        crop = _crop(page, box, scale, own_threshold=True)
        again = tesseract(crop, lang, 7 if lines == 1 else 6)
    if not again:
        return "", 0.0, True
    spaced = [spaced_text(line, crop) for line in text_lines(again)]
    return "\n".join(t for t, _ in spaced), min(w.conf for w in again), all(sure for _, sure in spaced)


def _cut_at_gap(line: list[Word]) -> list[Word]:
    """The words before a gap of 3 em: the name, not the printed 印 at the row's end."""
    em = float(np.median([w.bottom - w.top for w in line]))
    for i, (left, right) in enumerate(itertools.pairwise(line)):
        if right.x0 - left.x1 > 3 * em:
            return line[: i + 1]
    return line


@dataclass(frozen=True)
class CellText:
    """A text cell as the page OCR gave it: its lines joined by newlines, the words
    they came from, stray marks far off to the right, and whether its spaces are certain."""

    text: str
    words: list[Word]
    stray: bool
    spaces_sure: bool


def _cell_text(page: Page, f: layout.Field, words: list[Word]) -> CellText:
    """The cell's text, spaced as the page shows; the 印 printed at the name row's end cut off."""
    lines = text_lines(words)
    cut = [_cut_at_gap(line) for line in lines]
    stray = not f.seal_mark and cut != lines  # far-off words: a seal's or a stamp's strokes
    lines = cut if f.seal_mark else lines
    texts = [spaced_text(line, page.ink) for line in lines]
    text = "\n".join(t for t, _sure in texts)
    if f.seal_mark:
        text = re.sub(r"\s*[印㊞]\s*$", "", text)
    spaces_sure = f.lines > 1 or all(sure for _t, sure in texts)  # prose has no spaces to get wrong
    return CellText(ocr_fixes(f, text), [w for line in lines for w in line], stray, spaces_sure)


def _has_unit(f: layout.Field, text: str) -> bool:
    """The unit printed after a number (名, 時間, %) is in the reading: nothing was lost there."""
    return not f.unit or f.unit in nfkc(text)


def _latin(page: Page, f: layout.Field, cell: CellText, box: tuple[int, int, int, int]) -> Read:
    """An ASCII cell: the English model's reading of the crop, confirmed by the page's
    (ocr_latin.agree), with no I/l its words cannot decide. A code has no spaces to compare."""
    lines = len(text_lines(cell.words))
    again, again_conf, _spaces_sure = second_reading(page, box, lines, "eng")  # Latin spaces are certain
    again = ocr_fixes(f, again)
    value = normalise(f, again)
    spaces = f.key not in ("contact_email", "corporate_number")
    sure = (not cell.stray and valid(f, value) and _has_unit(f, again)
            and ocr_latin.agree(cell.text, again, spaces) and not ocr_latin.ambiguous(again))
    return Read(value, again, again_conf, sure)


def _vote(f: layout.Field, readings: list[str]) -> str | None:
    """The crop's reading (``readings[1]``) when the page's or the enlarged crop's agrees
    with it (NFKC, no spaces) and it passes the field's rule.

    The page and the enlarged crop must not outvote the crop: measured, they
    can share a misreading of a blurred kanji (懸 → 抄) that the crop got right.
    """
    crop, others = ocr_fixes(f, readings[1]), readings[:1] + readings[2:]
    for other in others:
        if crop and compact(crop) == compact(ocr_fixes(f, other)) and valid(f, normalise(f, crop)):
            return crop
    return None


def _japanese(page: Page, f: layout.Field, cell: CellText, box: tuple[int, int, int, int]) -> Read:
    """A cell with Japanese in it: the page reading when tesseract was sure of it, else
    the one that a re-read of the crop (and, failing that, of the crop enlarged when the
    crop was read with some confidence) agrees with."""
    value, conf = normalise(f, cell.text), min(w.conf for w in cell.words)
    plain = not cell.stray and cell.spaces_sure and _has_unit(f, cell.text)
    if not plain or not valid(f, value):
        return Read(value, cell.text, conf, False)
    if conf >= CONFIDENT and f.key not in DOUBLE_CHECKED:
        return Read(value, cell.text, conf, True)
    lines = len(text_lines(cell.words))
    crop, crop_conf, crop_spaced = second_reading(page, box, lines, LANG)
    readings = [cell.text, crop]
    if _vote(f, readings) is None and crop_conf >= SELF_CONFIRMED:
        readings.append(second_reading(page, box, lines, LANG, ENLARGE)[0])
    chosen = _vote(f, readings)
    if chosen is None:
        return Read(value, cell.text, conf, False)
    if compact(chosen) == compact(cell.text):  # the page's spacing, measured on the page
        return Read(value, cell.text, conf, True)
    chosen = ocr_fixes(f, chosen)
    return Read(normalise(f, chosen), chosen, conf, crop_spaced or f.lines > 1)


def read_value(page: Page, f: layout.Field, words: list[Word], row: Row | None = None) -> Read | None:
    """A text/number/date cell (``row``: its table row); None when it is blank."""
    if not words:
        return None
    cell = _cell_text(page, f, words)
    if normalise(f, cell.text) is None:
        return None
    box = region(cell.words, row)
    if cell.text.isascii():
        return _latin(page, f, cell, box)
    return _japanese(page, f, cell, box)


# ---------------------------------------------------------------- checkboxes

def _europe_name(page: Page, words: list[Word], box: Box) -> str:
    """What is written in 欧州（国名：…） right of the 欧州 box."""
    line = [w for w in words if w.cx > box.x1 and box.top - px(6) < w.cy < box.bottom + px(6)]
    text = line_text(sorted(line, key=lambda w: w.x0), page.ink) if line else ""
    m = re.search(r"国名\s*[:：]?\s*(.*?)\s*[)）]?\s*$", nfkc(text))
    return m.group(1) if m else ""


def _options_sure(f: layout.Field, ticked: list[object], value: object) -> bool:
    """Exactly one ticked (a multi: one or more); 欧州 only with a country we know."""
    if f.kind == "multi":
        return len(ticked) >= 1
    if f.kind == "country" and "EU" in ticked:
        return len(ticked) == 1 and isinstance(value, str) and value.startswith("EU:")
    return len(ticked) == 1


def _boxes_and_pen(page: Page, region: tuple[int, int, int, int], count: int,
                   extra: bool) -> tuple[list[Box], set[int] | None]:
    """The ``count`` option boxes in ``region`` (a ✓ may have swallowed one) and the indices
    a pen ticked; None for them when the boxes or the pen's option cannot be told.
    ``extra``: glyphs taken for boxes may follow the last (a ロ in 欧州's country name)."""
    boxes = scan_image.checkboxes(page.ink, *region)
    side = scan_ticks.box_side(boxes, px(7.5))
    marks = scan_ticks.pen_marks(page.ink, *region, side, [b.top for b in boxes])
    boxes = scan_ticks.with_hidden(boxes, marks, side)
    swallowed = any(m.hidden is not None for m in marks)  # then no glyph may pass for a box
    if len(boxes) < count or (len(boxes) > count and (swallowed or not extra)):
        return boxes, None
    boxes = boxes[:count]
    return boxes, scan_ticks.ticked_by_pen(marks, boxes, side)


def read_options(page: Page, f: layout.Field, cell: Cell) -> Read | None:
    """An option cell from its boxes, in printed order; None when no box is ticked."""
    row = cell.row
    boxes, pen = _boxes_and_pen(page, (row.split, row.top, page.ink.shape[1], row.bottom), len(f.options),
                                f.kind == "country")
    if pen is None:
        return UNREAD  # a box missed, a glyph taken for one, or a pen mark between two options
    ticked = [value for i, ((_label, value), box) in enumerate(zip(f.options, boxes)) if box.ticked or i in pen]
    if not ticked:
        return None
    europe = _europe_name(page, cell.words, boxes[-1]) if "EU" in ticked else ""
    raw = layout.option_line(f, set(ticked), europe)
    value = normalise(f, raw)
    conf = min(b.score for b in boxes)
    return Read(value, raw, conf, _options_sure(f, ticked, value) and conf >= 0.5)


def read_pledge(page: Page, pledge: layout.Pledge, lines: list[list[Word]]) -> Read:
    """A pledge line (matched by its text) and the box at its left."""
    scored = [(similarity("".join(w.text for w in line), pledge.text), line) for line in lines]
    score, line = max(scored, key=lambda s: s[0], default=(0.0, []))
    if score < LABEL_MATCH:
        return MISSING
    top, bottom = min(w.top for w in line) - px(4), max(w.bottom for w in line) + px(4)
    boxes, pen = _boxes_and_pen(page, (0, max(0, top), page.ink.shape[1] // 3, bottom), 1, extra=True)
    if pen is None:
        return UNREAD
    box = boxes[0]  # one line: the leftmost box
    return Read(bool(box.ticked) or 0 in pen, line_text(line, page.ink), box.score * score, box.score >= 0.5)


def read_submitted(page: Page, lines: list[list[Word]]) -> Read | None:
    """提出日 from the header line that carries it (the first line with 提出 or 出日)."""
    for line in lines:
        text = compact("".join(w.text for w in line))
        if "提出" in text or "出日" in text:
            dated = [w for w in line if re.search(r"\d", nfkc(w.text))] or line
            return read_value(page, layout.SUBMITTED_ON, _from_first(line, dated[0]))
    return MISSING


def _from_first(line: list[Word], first: Word) -> list[Word]:
    """The words of a line from ``first`` on (the value after its label)."""
    return line[line.index(first):]


# ---------------------------------------------------------------- the page

def read_fields(page: Page, matched: dict[str, Cell], free: list[list[Word]],
                spec: layout.FormSpec = layout.APPLICATION) -> dict[str, Read]:
    """Every field of the form page; a table row not found is unread (uncertain)."""
    reads: dict[str, Read | None] = {f.key: read_submitted(page, free) for f in spec.header}
    reads |= read_rows(page, matched, spec.table_fields())
    for pledge in spec.pledges:
        reads[pledge.key] = read_pledge(page, pledge, free)
    return {key: r for key, r in reads.items() if r is not None}


def read_rows(page: Page, matched: dict[str, Cell], fields: tuple[layout.Field, ...]) -> dict[str, Read | None]:
    """Each table field from its matched row (UNREAD without one; None when blank)."""
    reads: dict[str, Read | None] = {}
    for f in fields:
        cell = matched.get(f.key)
        if cell is None:
            reads[f.key] = MISSING
        else:
            reads[f.key] = read_options(page, f, cell) if f.options else read_value(page, f, cell.words, cell.row)
    return reads


def _reading(spec: layout.FormSpec, reads: dict[str, Read], seal_: object, grey: bool,
             pages: int, form_page: int) -> FormReading:
    """The FormReading: sure values in ``fields``, the rest named in ``uncertain``."""
    sure = {k: r for k, r in reads.items() if r.sure}
    uncertain = [k for k, r in reads.items() if not r.sure]
    if grey and spec.seal:
        uncertain.append("seal")  # red cannot be told from black or from nothing
    return FormReading(
        spec.name, "ocr", pages, form_page,
        fields={k: r.value for k, r in sure.items()},
        originals={k: r.original.strip() for k, r in sure.items()},
        seal=seal_, confidence={k: round(r.conf, 3) for k, r in reads.items()},
        uncertain=tuple(uncertain),
    )


def _doubt_marked(reads: dict[str, Read], matched: dict[str, Cell], marks: list) -> dict[str, Read]:
    """Rows whose text runs close to a stamp are doubted: the stamp may cover some of it.
    Not option rows: their boxes are judged from pixels, and a pen ✓ often crosses a rule."""
    out = dict(reads)
    options = {f.key for spec in SPECS for f in spec.table_fields() if f.options}
    for key, cell in matched.items():
        read = out.get(key)
        if read is not None and read.sure and key not in options and ocr_marks.near_text(cell.words, cell.row.top, cell.row.bottom, marks):
            out[key] = dataclasses.replace(read, sure=False)
    return out


@dataclass(frozen=True)
class Scanned:
    """One page OCR'd: the prepared page, its words, and the lines outside the tables."""

    page: Page
    words: list[Word]
    free: list[list[Word]]


def scan_page(pdf: pdfium.PdfDocument, index: int) -> Scanned:
    """Page ``index`` (0-based) prepared and OCR'd once."""
    page = scan_image.prepare(*scan_image.render(pdf, index))
    words = tesseract(page.ink)
    free = text_lines([w for w in words if not any(r.top < w.cy < r.bottom for r in page.rows)])
    return Scanned(page, words, free)


def _marks(scanned: Scanned, spec: layout.FormSpec, matched: dict[str, Cell]) -> tuple[list, list, object]:
    """(marks, stamps, name row): what is no cell text — stamps, strokes across the rules."""
    row = next((matched.get(f.key) for f in spec.table_fields() if f.seal_mark), None)
    name_row = scan_seal.name_row(row.row if row else None)
    stamps = scan_seal.stamps(scanned.page, name_row) if spec.seal else []
    boxes = scan_image.crossing_marks(scanned.page) + [scan_seal.pixel_box(s) for s in stamps]
    return ocr_marks.merge(boxes, px(5)), stamps, name_row


def read_page(pdf: pdfium.PdfDocument, index: int) -> tuple[FormReading, layout.FormSpec, dict[str, Read]] | None:
    """Page ``index`` (0-based) read as one of the forms, with its form and the reads it
    came from; None when it is neither form."""
    scanned = scan_page(pdf, index)
    page, words, free = scanned.page, scanned.words, scanned.free
    found = identify(cells(page, words), ["".join(w.text for w in line) for line in free])
    if found is None:
        return None
    spec, matched = found
    marks, stamps, name_row = _marks(scanned, spec, matched)
    matched = match_fields(cells(page, ocr_marks.outside(words, marks)), spec)  # a stamp's strokes are no value
    reads = _doubt_marked(read_fields(page, matched, free, spec), matched, marks)
    seal_ = scan_seal.detect(page, index + 1, name_row, stamps) if spec.seal else NO_SEAL
    return _reading(spec, reads, seal_, page.grayscale, len(pdf), index + 1), spec, reads


def _missing(reads: dict[str, Read]) -> frozenset[str]:
    """The keys the form page has no row or line for (unread, not merely unsure)."""
    return frozenset(k for k, r in reads.items() if r is MISSING)


def read_continuation(pdf: pdfium.PdfDocument, index: int, spec: layout.FormSpec,
                      keys: frozenset[str]) -> dict[str, Read]:
    """The fields ``keys`` from page ``index``, where a two-page form continues: rows by
    their labels (the order is no guide to part of the table), pledges by their text."""
    scanned = scan_page(pdf, index)
    page = scanned.page
    marks = ocr_marks.merge(scan_image.crossing_marks(page), px(5))
    matched = match_fields(cells(page, ocr_marks.outside(scanned.words, marks)), spec, keys)
    reads = read_rows(page, matched, tuple(f for f in spec.table_fields() if f.key in keys))
    reads |= {p.key: read_pledge(page, p, scanned.free) for p in spec.pledges if p.key in keys}
    found = {k: r for k, r in reads.items() if r is not MISSING}
    return _doubt_marked({k: r for k, r in found.items() if r is not None}, matched, marks) | {
        k: None for k, r in found.items() if r is None}


def merged(reading: FormReading, spec: layout.FormSpec, reads: dict[str, Read],
           more: dict[str, Read | None]) -> FormReading:
    """The form page's reading with the next page's fields added; the form page wins
    (a blank row found on the next page is blank, not missing)."""
    both = {k: more.get(k, r) if r is MISSING else r for k, r in reads.items()}
    both = {k: r for k, r in both.items() if r is not None}
    return _reading(spec, both, reading.seal, "seal" in reading.uncertain, reading.pages, reading.form_page)


def read_form(pdf: pdfium.PdfDocument, indices: list[int]) -> FormReading | None:
    """The first of ``indices`` that is a form, continued on the next scanned page when
    the form page lacks rows (a two-page form)."""
    for n, index in enumerate(indices):
        found = read_page(pdf, index)
        if found is None:
            continue
        reading, spec, reads = found
        keys = _missing(reads)
        if keys and n + 1 < len(indices) and indices[n + 1] == index + 1:
            return merged(reading, spec, reads, read_continuation(pdf, index + 1, spec, keys))
        return reading
    return None


def _pdf(data: bytes) -> pdfium.PdfDocument:
    """The PDF opened with pypdfium2; PdfError("broken") when it cannot be."""
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise PdfError("broken", "添付のPDFを表示できませんでした。PDFを保存し直して改めてお送りください。") from exc


def read_scanned(data: bytes, page_numbers: list[int] | None = None) -> FormReading | None:
    """Read our form (application or consultation) from scanned pages with OCR; None when no page is one.

    ``page_numbers`` (1-based) are the pages to try, in order; by default every
    page without a text layer. Raises PdfError("ocr_unavailable") when
    tesseract or its Japanese model is missing.
    """
    if not ocr_available():
        raise PdfError("ocr_unavailable", UNAVAILABLE_MESSAGE)
    pdf = _pdf(data)
    try:
        indices = [n - 1 for n in page_numbers] if page_numbers is not None else [
            i for i in range(len(pdf)) if not scan_image.has_text_layer(pdf, i)]
        return read_form(pdf, indices)
    finally:
        pdf.close()
