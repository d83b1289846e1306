"""The seal (押印) on a scanned page: seal.py's find_stamps/judge on the scan's own pixels.

seal.py renders a PDF itself (text objects removed first); a scan has no
objects to remove, but find_stamps copes with a page that still has its text
and rules. The deskewed colour page prepared for OCR is brought down to
seal.DPI (the stamp tests are in millimetres; 120 dpi is plenty and 6× fewer
pixels than the OCR's 300), and the 代表者氏名 row comes from the OCR'd table.
A grey scan has lost the red: nothing on it can be called a red seal, a
black one, or no seal, so the verdict goes to staff.
"""

from __future__ import annotations

import cv2

from mailbot.forms import seal
from mailbot.forms.reading import Seal
from mailbot.forms.scan_image import DPI, Page, Row, pt, px

GRAY_CONFIDENCE = 0.2  # a grey scan: the colour, and so the verdict, is unknown


def name_row(row: Row | None) -> seal.NameRow | None:
    """The 代表者氏名 table row in PDF points, as seal.is_near wants it."""
    return seal.NameRow(pt(row.top), pt(row.bottom), pt(row.split)) if row else None


def stamps(page: Page, row: seal.NameRow | None) -> list[seal.Stamp]:
    """Every stamp-like mark find_stamps sees on the page (none on a grey scan: no red to see)."""
    if page.grayscale:
        return []
    factor = seal.DPI / DPI
    rgb = cv2.resize(page.rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return seal.find_stamps(rgb, seal.SCALE, row)


def detect(page: Page, page_no: int, row: seal.NameRow | None,
           found: list[seal.Stamp] | None = None) -> Seal:
    """The seal verdict of a scanned page (``page_no`` 1-based); low confidence when grey.
    ``found``: the page's stamps() when the caller has them already."""
    if page.grayscale:
        return Seal(False, False, None, GRAY_CONFIDENCE, page_no, None)
    return seal.judge(found if found is not None else stamps(page, row), row, page_no)


def pixel_box(stamp: seal.Stamp) -> tuple[int, int, int, int]:
    """A stamp's bbox (PDF points) in the OCR page's pixels (x0, top, x1, bottom)."""
    x0, top, x1, bottom = stamp.bbox
    return px(x0), px(top), px(x1), px(bottom)
