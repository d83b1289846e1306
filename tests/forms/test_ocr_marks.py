"""Hand-drawn ticks on scanned checkboxes: a pen ✓ over or beside a □, a ○ around the option.

The form is printed with the option's box empty, a pen mark is drawn on the
page (scan_pen, through ``simulate_scan(marks=...)``) and the page scanned;
OCR must count the option as ticked, and a mark that cannot be placed on one
option leaves the field uncertain, never wrong.
"""

from __future__ import annotations

import io
import os

import pdfplumber
import pytest

from mailbot.forms import ocr
from mailbot.forms.fill import render_application, sample_values
from mailbot.forms.scan import simulate_scan
from mailbot.forms.scan_pen import BLACK, BLUE, HandMark

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

UNTICKED = {"country": None, "base_status": None, "base_kinds": None, "pledge_experience": False}


@pytest.fixture(scope="module", autouse=True)
def _tesseract_installed():
    if not ocr.ocr_available():
        pytest.fail("tesseract with the Japanese model (jpn) is missing — run `.ci/setup --test`")


def spot(form: bytes, label: str, after: str = "") -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(box, text) bounding boxes (x0, top, x1, bottom in points) of the option 「□label」,
    the first one after the text ``after`` on the page."""
    chars = pdfplumber.open(io.BytesIO(form)).pages[0].chars
    text = "".join(c["text"] for c in chars)
    start = text.index("□" + label, text.index(after) if after else 0)
    box, run = chars[start], chars[start + 1: start + 1 + len(label)]
    bbox = lambda cs: (min(c["x0"] for c in cs), min(c["top"] for c in cs),
                       max(c["x1"] for c in cs), max(c["bottom"] for c in cs))
    return bbox([box]), bbox(run)


def check_over(box: tuple[float, ...], color=BLUE, dx: float = 2.0, dy: float = -2.0) -> HandMark:
    """A ✓ drawn over the box (``dx``, ``dy``: how far off its centre, in points)."""
    return HandMark("check", (box[0] + box[2]) / 2 + dx, (box[1] + box[3]) / 2 + dy, 12, 14, color)


def circle_around(text: tuple[float, ...], color=BLACK) -> HandMark:
    """A ○ around the option's text."""
    return HandMark("circle", (text[0] + text[2]) / 2, (text[1] + text[3]) / 2, text[2] - text[0] + 8, 15, color)


def read_marked(marks_of, dpi: int, angle: float, quality: int | None, **values):
    """The form with UNTICKED options (and ``values``), pen-marked by ``marks_of(form)``, scanned and read."""
    expected = sample_values(**(UNTICKED | values))
    form = render_application(expected)
    scan = simulate_scan(form, dpi=dpi, angle=angle, noise=0.03, jpeg_quality=quality, seed=dpi,
                         marks=marks_of(form))
    return ocr.read_scanned(scan), expected


def never_wrong(reading, expected: dict, marked: dict) -> None:
    """Every field right or uncertain, the pen-ticked ones included."""
    truth = {k: v for k, v in expected.items() if v is not None} | marked
    wrong = {k: v for k, v in reading.fields.items() if truth.get(k) != v}
    assert wrong == {}


CASES = {
    "check-over-box-blue-200": (lambda f: [check_over(spot(f, "ベトナム")[0])], {"country": "VN"}, 200, 1.0, 70),
    "circle-round-text-black-300": (lambda f: [circle_around(spot(f, "タイ")[1])], {"country": "TH"}, 300, -0.8, 80),
    "check-beside-box-150": (lambda f: [check_over(spot(f, "設立予定")[0], BLACK, dx=7, dy=-5)],
                             {"base_status": "planned"}, 150, 0.5, 75),
    "check-and-circle-multi": (lambda f: [check_over(spot(f, "工場")[0]), circle_around(spot(f, "駐在員事務所")[1])],
                               {"base_kinds": ["factory", "rep_office"]}, 200, -1.2, None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_pen_tick_counts(name):
    marks_of, marked, dpi, angle, quality = CASES[name]
    reading, expected = read_marked(marks_of, dpi, angle, quality)
    never_wrong(reading, expected, marked)
    assert {k: reading.fields.get(k) for k in marked} == marked, reading.uncertain


def test_a_pen_tick_on_a_pledge_box():
    def marks_of(form):
        chars = pdfplumber.open(io.BytesIO(form)).pages[0].chars
        text = "".join(c["text"] for c in chars)
        box = chars[text.rindex("□", 0, text.index("日本企業において"))]
        return [check_over((box["x0"], box["top"], box["x1"], box["bottom"]))]

    reading, expected = read_marked(marks_of, 200, 0.6, 70)
    never_wrong(reading, expected, {"pledge_experience": True})
    assert reading.fields.get("pledge_experience") is True


def test_a_mark_between_two_options_is_uncertain():
    def marks_of(form):
        (thai, _t), (vn, _v) = spot(form, "タイ"), spot(form, "ベトナム")
        middle = ((thai[0] + vn[2]) / 2, thai[1], (thai[0] + vn[2]) / 2, thai[3])
        return [HandMark("circle", middle[0], (middle[1] + middle[3]) / 2, vn[2] - thai[0] + 10, 15, BLUE)]

    reading, expected = read_marked(marks_of, 200, 0.4, 75)
    never_wrong(reading, expected, {})
    assert "country" not in reading.fields and "country" in reading.uncertain
