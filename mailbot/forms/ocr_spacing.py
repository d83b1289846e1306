"""Where the spaces are in a line of Japanese, measured from the pixels on a fixed pitch.

tesseract's word boxes cannot place a space next to kana: its boxes for kana
are often wrong by a whole character (one box for 「テク」 23 px wide, or one
for 東京 running over the whole address), and the blank between two words
does not separate the cases either (a kana's side bearing is as wide as a
space). What does: printed Japanese sits on a fixed pitch — every kana and
kanji is 1 em wide, and its ink is centred in that em — so the distance
between the ink centres of two neighbouring characters is the pitch plus
whatever space was typed between them (a half-width space is ~0.25 em, a
full-width 「　」 1 em).

So a line is cut into character cells FROM THE PIXELS (runs of inked columns,
merged into one cell as long as they fit the character's advance), the cells
are matched one to one with the characters OCR read, and each junction is
decided from the centre distance against the line's own pitch. Any doubt —
a cell count that does not match, a distance between the bands — is None:
the caller flags the field rather than guessing.
"""

from __future__ import annotations

import itertools
import unicodedata

import numpy as np

# Measured on the scan corpus and 6 extra scans (150–300 dpi, JPEG 50–85): the excess of
# a centre distance over the pitch is −0.09…+0.09 em with no space (small kana like ィ sit
# off-centre by ~0.09), +0.23…+0.33 em with a half-width space, ~1 em with 「　」.
NO_SPACE = 0.12  # |excess| (em) still read as "no space"
SPACE_BANDS = ((0.17, 0.65), (0.82, 1.18))  # a half-width (0.25–0.5 em) or full-width (1 em) space
# Punctuation's ink sits in a corner of its em (、。) or is a bracket: its centre says nothing.
_NO_CENTRE = set("、。，．・「」『』（）()［］【】：:；;,.")
_WIDE_LATIN = set("MWmw@%&")  # ASCII glyphs close to 1 em in a proportional Latin face


def is_wide(ch: str) -> bool:
    """Whether a character takes a full em (kana, kanji, full-width forms)."""
    return unicodedata.east_asian_width(ch) in ("W", "F")


def advance(ch: str) -> float:
    """The character's advance in em, as far as a font can be assumed: 1 for wide,
    about 0.5 for ASCII (digits are 0.5 in every Japanese face), wide Latin ~0.9."""
    if is_wide(ch):
        return 1.0
    return 0.9 if ch in _WIDE_LATIN else 0.55


def ink_runs(band: np.ndarray) -> list[tuple[int, int]]:
    """(x0, x1) of each run of inked columns in a line's band (True = ink)."""
    cols = np.concatenate(([False], band.any(axis=0), [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(cols))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def char_cells(runs: list[tuple[int, int]], chars: str, em: float) -> list[tuple[int, int]] | None:
    """The ink of each character: consecutive runs merged while they fit its advance.

    None when the runs do not come out as exactly one cell per character (a
    glyph OCR dropped or added, two glyphs touching): then nothing is measured.
    """
    cells, i = [], 0
    for ch in chars:
        if i >= len(runs):
            return None
        x0, x1 = runs[i]
        limit = x0 + advance(ch) * em  # a glyph's ink never spans more than its advance
        i += 1
        while i < len(runs) and runs[i][1] <= limit:
            x1, i = runs[i][1], i + 1
        cells.append((x0, x1))
    return cells if i == len(runs) else None


def line_pitch(cells: list[tuple[int, int]], chars: str, em: float) -> float | None:
    """The line's own pitch: the median centre distance of neighbouring wide characters
    that sit about 1 em apart (most have no space between them); None when none do."""
    centres = [(a + b) / 2 for a, b in cells]
    near = [c2 - c1 for (c1, c2), (a, b) in zip(itertools.pairwise(centres), itertools.pairwise(chars))
            if is_wide(a) and is_wide(b) and a not in _NO_CENTRE and b not in _NO_CENTRE
            and 0.8 * em <= c2 - c1 <= 1.15 * em]
    return float(np.median(near)) if near else None


def cut(runs: list[tuple[int, int]], chars: str, em: float) -> tuple[list[tuple[int, int]], float] | None:
    """(cells, pitch) of a line whose em OCR only estimated (box heights are off by up
    to 25%): the first guess near ``em`` whose cells, cut again at their own
    measured pitch, come out the same — a cut that explains itself."""
    for guess in (em * f for f in (1.0, 1.1, 0.9, 1.2, 0.8, 1.3)):
        cells = char_cells(runs, chars, guess)
        pitch = line_pitch(cells, chars, guess) if cells else None
        if pitch is not None and char_cells(runs, chars, pitch) == cells:
            return cells, pitch
    return None


def measurable(a: str, b: str) -> bool:
    """Whether the pitch can tell the space between ``a`` and ``b``: not next to
    punctuation (its ink sits off-centre), and not between two Latin characters
    (Latin spacing is proportional: tesseract's words decide it)."""
    return a not in _NO_CENTRE and b not in _NO_CENTRE and (is_wide(a) or is_wide(b))


def junction(a: str, b: str, left: tuple[int, int], right: tuple[int, int], pitch: float) -> str | None:
    """The space between characters ``a`` and ``b`` (cells ``left``, ``right``): "" for
    none, " " for a half-width space, 「　」 for a full-width one; None when the
    pixels cannot tell."""
    if not measurable(a, b):
        return None
    distance = ((right[0] + right[1]) - (left[0] + left[1])) / 2
    excess = distance / pitch - (advance(a) + advance(b)) / 2
    if abs(excess) <= NO_SPACE:
        return ""
    half, full = SPACE_BANDS
    if half[0] <= excess <= half[1]:
        return " "
    return "\u3000" if full[0] <= excess <= full[1] else None  # typed as it was: free text keeps 「　」


def spaces(band: np.ndarray, chars: str, em: float) -> list[str | None] | None:
    """For each junction of ``chars`` (no spaces in it), the space the band shows there
    (junction(); None: this one cannot be told); None when the line cannot be cut."""
    found = cut(ink_runs(band), chars, em) if len(chars) >= 2 else None
    if found is None:
        return None
    cells, pitch = found
    return [junction(a, b, left, right, pitch)
            for (a, b), (left, right) in zip(itertools.pairwise(chars), itertools.pairwise(cells))]
