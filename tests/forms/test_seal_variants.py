"""Every seal variant (tests/forms/seal_variants.py) gets the verdict a person would give."""

import time

import numpy as np
import pytest

from mailbot.forms.read import read_form
from mailbot.forms.seal import SCALE, NameRow, detect_seal, find_stamps, judge, render_page
from tests.forms.seal_variants import VARIANTS, build


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_verdict(name):
    expected = VARIANTS[name][1]
    seal = read_form(build(name)).seal
    assert (seal.present, seal.near_field, seal.color) == expected
    assert 0.0 <= seal.confidence <= 1.0
    if expected[0]:
        assert seal.confidence >= (0.75 if expected[2] == "red" else 0.4)
        assert seal.bbox is not None and seal.page == 1


def test_seal_time_per_page_is_small():
    data = build("png_transparent")
    start = time.perf_counter()
    for _ in range(5):
        detect_seal(data, 1, NameRow(300, 320, 230))
    assert (time.perf_counter() - start) / 5 < 0.25


# ---------------------------------------------------------------- the public pieces on raw pixels

def _page_with_ring(rgb: tuple[int, int, int], centre=(300, 400), radius=35, width=5) -> np.ndarray:
    """A white 600×800 'scan' with one ring of ``rgb`` ink and a bar inside it."""
    yy, xx = np.mgrid[0:800, 0:600]
    dist = np.hypot(xx - centre[0], yy - centre[1])
    ink = (np.abs(dist - radius) <= width / 2) | ((np.abs(xx - centre[0]) <= 3) & (dist < radius * 0.7))
    page = np.full((800, 600, 3), 255, np.uint8)
    page[ink] = rgb
    return page


def test_find_stamps_and_judge_on_pixels():
    px_per_pt = 1.0  # 600×800 pixels for a 600×800 pt page
    stamps = find_stamps(_page_with_ring((220, 40, 30)), px_per_pt)
    assert [s.color for s in stamps] == ["red"]
    row = NameRow(top=390, bottom=410, label_x1=200)
    seal = judge(stamps, row, 1)
    assert (seal.present, seal.near_field, seal.color) == (True, True, "red")
    assert judge(stamps, NameRow(100, 120, 200), 1).near_field is False


def test_dark_ring_counts_only_on_the_row():
    page = _page_with_ring((20, 20, 20))
    assert find_stamps(page, 1.0) == []
    stamps = find_stamps(page, 1.0, NameRow(390, 410, 200))
    assert [s.color for s in stamps] == ["black"]


def test_no_stamp_verdict():
    seal = judge([], NameRow(1, 2, 3), 2)
    assert (seal.present, seal.near_field, seal.color, seal.page) == (False, False, None, 2)


def test_render_page_drops_text():
    page = render_page(build("red_instructions_only"), 1, SCALE)
    assert page.ndim == 3 and page.dtype == np.uint8


@pytest.mark.parametrize("name", ["black_vector", "black_square", "blue_png", "png_faint", "printed_circle_only",
                                  "red_instructions_only", "red_instructions_as_image"])
def test_a_full_render_with_text_and_rules_like_a_scan(name):
    """find_stamps on the page as printed (text and table rules kept), as the OCR reader has it."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(build(name))
    rgb = np.asarray(pdf[0].render(scale=SCALE).to_pil().convert("RGB"))
    pdf.close()
    row = NameRow(top=220.0, bottom=238.5, label_x1=230.0)  # the sample form's 代表者氏名 row
    seal = judge(find_stamps(rgb, SCALE, row), row, 1)
    assert (seal.present, seal.near_field, seal.color) == VARIANTS[name][1]
