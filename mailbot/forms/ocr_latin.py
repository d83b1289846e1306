"""Latin (ASCII) values read from a scan: which of two readings to keep, and when to doubt it.

Measured on the scan corpus: tesseract's English model reading a value's
cell crop gets Latin text right far more often than the Japanese model on the
whole page, whose errors are systematic — it drops small marks (``cojp`` for
``co.jp``, a lost comma), reads ``%`` as ``96`` and ``I`` as ``1``
(``INDONES1A``). So the English crop is the reading kept, and the Japanese one
only has to see the same glyphs: equal once those known confusions are
folded away, and no mark that the English reading lacks (OCR drops marks, it
rarely invents them).

Neither model can tell ``I`` from ``l`` (or ``1``/``|``) in a sans-serif scan;
where the word around the glyph does not decide it either (``Jl.`` vs
``JI.``), the value is doubted, never guessed.
"""

from __future__ import annotations

import re
from collections import Counter

MARKS = ".,;:'\"()"  # small marks the Japanese model drops
_FOLD = str.maketrans({"i": "l", "1": "l", "|": "l", "0": "o"})  # after lower(): I is i
_WORD = re.compile(r"[A-Za-z0-9|]+(?:-[A-Za-z0-9|]+)*")  # A-1 and sakura-logi are one word
_STROKE = re.compile(r"[Il1|]")


def skeleton(text: str, spaces: bool = True) -> str:
    """``text`` as two models both see it: known confusions folded, small marks dropped.

    ``%`` becomes ``96`` (the Japanese model's reading of it); ``spaces``
    False drops spaces too (an e-mail address has none to compare).
    """
    text = text.replace("%", "96")
    text = "".join(ch for ch in text if ch not in MARKS)
    text = re.sub(r"\s+", " " if spaces else "", text).strip()
    return text.lower().translate(_FOLD)


def _marks(text: str) -> Counter:
    """How many of each small mark ``text`` has."""
    return Counter(ch for ch in text if ch in MARKS)


def agree(page: str, crop: str, spaces: bool = True) -> bool:
    """Whether the English ``crop`` reading may stand for the Japanese ``page`` one:
    the same glyphs, and every mark the page reading saw is in the crop reading."""
    if skeleton(page, spaces) != skeleton(crop, spaces):
        return False
    return not (_marks(page) - _marks(crop))


def _case_of(letters: str) -> str | None:
    """"upper"/"lower" when every letter has that case, else None."""
    if letters and letters.isupper():
        return "upper"
    if letters and letters.islower():
        return "lower"
    return None


def _expected(word: str, i: int, initials: str) -> str | None:
    """What the stroke glyph at ``word[i]`` must be by its neighbours ("I", "l", "1"),
    None when they do not decide. ``initials``: the first letters of the line's other words."""
    prev, nxt = word[i - 1] if i else "", word[i + 1] if i + 1 < len(word) else ""
    if (prev.isdigit() or prev in "-") and (nxt.isdigit() or nxt in "-") and (prev or nxt):
        return "1"  # in a number (A-1, 52)
    prev, nxt = prev.strip("-"), nxt.strip("-")  # a hyphen starts or ends a part (sakura-logi)
    if prev.islower() or (prev.isupper() and nxt.islower()):
        return "l"  # in a lowercase run, or a Title-case word's second letter (Flat)
    if prev.isupper():  # all caps (THAILAND) decides; Jl / JI has too few letters to
        others = re.sub(r"[^A-Za-z]", "", word[:i] + word[i + 1:])
        return "I" if len(others) >= 2 and others.isupper() else None
    if nxt.isupper():
        return "I"  # an all-caps word's first letter (INDIA)
    if nxt.islower():  # Industrial or lot: how the line's other words begin decides
        return {"lower": "l", "upper": "I"}.get(_case_of(initials) or "")
    return None  # a lone I or l


def ambiguous(text: str) -> bool:
    """Whether some I/l/1/| in ``text`` is not the glyph its word requires (or nothing decides it)."""
    words = list(_WORD.finditer(text))
    for m in words:
        initials = "".join(w.group()[0] for w in words if w is not m and w.group()[0].isalpha())
        for stroke in _STROKE.finditer(m.group()):
            if _expected(m.group(), stroke.start(), initials) != stroke.group():
                return True
    return False
