"""text.is_red: which PDF colours count as seal red, whatever shape pdfplumber or pdfium give them in."""

from __future__ import annotations

import pytest

from mailbot.forms.text import is_red


@pytest.mark.parametrize("color, red", [
    ((0.85, 0.1, 0.1), True),          # RGB seal red
    ([0.85, 0.1, 0.1], True),          # the same as a list
    ((1, 0, 0), True),                 # integers
    ((0, 0.9, 0.9, 0), True),          # CMYK: no cyan, magenta and yellow full
    ((0, 0, 0), False),                # black text
    ((0.1, 0.2, 0.8), False),          # blue ink
    ((0.95, 0.85, 0.85), False),       # pale pink: not saturated enough
    ((0.2,), False),                   # grey
    (None, False),                     # no colour set
    (("P0",), False),                  # a pattern by name
    ((0.85, "P1", 0.1), False),        # a pattern with components
    ([[0.85], 0.1, 0.1], False),       # nonsense nested in a list
])
def test_seal_red_and_everything_else(color, red):
    assert is_red(color) is red
    assert is_red(color) is red  # the cached answer is the same
