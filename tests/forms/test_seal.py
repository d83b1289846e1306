"""Seal verdicts on PDFs made by fill.py, for every seal variant and kind."""

from functools import lru_cache

import pytest

from mailbot.forms.fill import render_application, sample_values
from mailbot.forms.read import read_form


@lru_cache
def seal_of(seal: str, seal_kind: str):
    """The Seal read from the sample application stamped this way."""
    return read_form(render_application(sample_values(), seal=seal, seal_kind=seal_kind)).seal


KINDS = pytest.mark.parametrize("seal_kind", ["vector", "image"])


@KINDS
def test_red_on_the_row_is_present_and_near(seal_kind):
    seal = seal_of("red", seal_kind)
    assert (seal.present, seal.near_field, seal.color, seal.page) == (True, True, "red", 1)
    assert seal.confidence >= 0.8
    x0, top, x1, bottom = seal.bbox
    assert 40 <= x1 - x0 <= 60 and 40 <= bottom - top <= 60  # a 50 pt stamp


@KINDS
def test_no_seal_the_printed_mark_alone_does_not_count(seal_kind):
    seal = seal_of("none", seal_kind)
    assert (seal.present, seal.near_field, seal.color) == (False, False, None)


@KINDS
def test_misplaced_red_is_present_but_not_near(seal_kind):
    seal = seal_of("misplaced", seal_kind)
    assert (seal.present, seal.near_field, seal.color) == (True, False, "red")
    assert seal.bbox[1] > 700  # found where it was put: the bottom margin


@KINDS
def test_black_stamp_on_the_row(seal_kind):
    seal = seal_of("black", seal_kind)
    assert (seal.present, seal.near_field, seal.color) == (True, True, "black")


def test_seal_as_json():
    out = seal_of("red", "vector").as_json()
    assert out["present"] and out["near_field"] and len(out["bbox"]) == 4
