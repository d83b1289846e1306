"""Every seal variant (tests/forms/seal_variants.py) gets the verdict a person would give."""

import time

import numpy as np
import pytest
from scipy import ndimage

from mailbot.forms.read import read_form
from mailbot.forms.seal import (
    SCALE,
    NameRow,
    _lines,
    blue_mask,
    detect_seal,
    find_stamps,
    judge,
    red_mask,
    render_page,
)
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


# ---------------------------------------------------------------- the fast paths give the plain answers

def _hsv_parts(rgb: np.ndarray) -> tuple[np.ndarray, ...]:
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    return r, g, b, mx, mx - mn


def test_colour_masks_equal_their_formulas_on_every_pixel():
    """red_mask/blue_mask measure only candidate pixels; the answer is the formula's on all of them."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (300, 500, 3), dtype=np.uint8)
    rgb[:100] = rgb[:100, :, :1]  # greys and whites: no channel stands out
    r, g, b, mx, delta = _hsv_parts(rgb)
    red = (r == mx) & (delta > 0) & (2 * (g - b) <= delta) & (2 * (b - g) <= delta)
    blue = (b == mx) & (delta > 0) & (3 * (r - g) <= delta) & (3 * (g - r) <= 2 * delta)
    assert np.array_equal(red_mask(rgb), red & (delta * 100 >= 18 * mx) & (mx >= 70))
    assert np.array_equal(blue_mask(rgb), blue & (delta * 255 >= 60 * mx) & (mx >= 50))


def test_line_filter_equals_the_plain_opening_also_at_the_edges():
    """_lines skips rows/columns that cannot hold a run; runs cut by the edge still count."""
    rng = np.random.default_rng(5)
    for _ in range(300):
        h, w = rng.integers(1, 90, 2)
        run = int(rng.integers(1, 60))
        ink = rng.random((h, w)) < rng.random() ** 0.3
        plain = np.zeros(ink.shape, bool)
        for axis in (0, 1):
            eroded = ndimage.minimum_filter1d(ink.view(np.uint8), run, axis=axis)
            plain |= ndimage.maximum_filter1d(eroded, run, axis=axis).astype(bool)
        assert np.array_equal(_lines(ink, run), plain), (h, w, run)


def test_stamps_at_the_page_edges_are_found_whole():
    """Stamps are measured on a crop around the ink: one by a page corner measures as in the middle."""
    [middle] = find_stamps(_page_with_ring((220, 40, 30), centre=(300, 400), radius=28), 1.0)
    [corner] = find_stamps(_page_with_ring((220, 40, 30), centre=(31, 31), radius=28), 1.0)
    assert corner.bbox == tuple(v - d for v, d in zip(middle.bbox, (269, 369, 269, 369)))
    assert (corner.circularity, corner.density, corner.ring, corner.score) == \
        (middle.circularity, middle.density, middle.ring, middle.score)
