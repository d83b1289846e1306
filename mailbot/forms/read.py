"""Read an application PDF into a FormReading: refuse what cannot be read, then read the form.

The order of work, cheapest and surest first:
1. preflight: not a PDF, encrypted, broken, too many pages, bombs -> PdfError;
2. a fillable PDF's form fields (acroform.py): the values are not in the page text;
3. the text layer (text.py) as pdfium reads it (pdfium_pages.py): Word/LibreOffice
   exports, our own form, in a few milliseconds a page;
4. the text layer as pdfplumber reads it, when pdfium's found no form or the
   pages are not plain (rotated, shifted): pdfplumber is the reference reader,
   and its verdict on garbled text sends a page to OCR;
5. OCR (ocr.py), only for pages without usable text (scans, fonts without a
   Unicode map), at most MAX_OCR_PAGES of them: seconds per page.
Parsing hostile PDFs in a child process with time and memory caps is the
caller's job (forms/sandbox.py); this module is the in-process part.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from contextlib import contextmanager

import pdfplumber
from pdfminer.psexceptions import PSException
from pdfplumber.utils.exceptions import PdfminerException

import pypdfium2 as pdfium

from mailbot.forms import acroform, active, ocr, pdfium_pages, preflight, text
from mailbot.forms.reading import FormReading


@contextmanager
def _open(data: bytes) -> Iterator[pdfplumber.PDF]:
    """pdfplumber's PDF, with its parse errors turned into PdfError."""
    try:
        pdf = pdfplumber.open(io.BytesIO(data))
    except PdfminerException as exc:
        raise preflight.from_pdfminer(exc) from exc
    try:
        yield pdf
    except PdfminerException as exc:  # pdfplumber's wrapper around page parsing
        raise preflight.from_pdfminer(exc) from exc
    except PSException as exc:  # pdfminer's own, when raised unwrapped
        raise preflight.error("broken") from exc
    finally:
        pdf.close()


#: Scanned pages OCR'd per PDF: each costs seconds, and the form is near the front.
MAX_OCR_PAGES = 4
#: A page with fewer characters than this in its text layer is an image (a scan).
MIN_TEXT_CHARS = 20


def read_form(data: bytes, *, max_pages: int = 50) -> FormReading:
    """Read an application (or consultation) form from a PDF of any kind.

    ``form`` is None when no page is one of our forms. Raises PdfError
    (``not_pdf``, ``encrypted``, ``broken``, ``too_many_pages``,
    ``too_complex``, ``ocr_unavailable``) when the PDF cannot be read.
    """
    reader = preflight.checked_reader(data, max_pages)
    pages = len(reader.pages)
    reading = acroform.read_acroform(data, reader, reader) or _text_by_pdfium(data, reader)
    scans: list[int] = []
    if reading is None:
        with _open(data) as pdf:
            reading = text.find_form(data, pdf)
            scans = [] if reading else pages_for_ocr(pdf)
    if reading is None and scans:
        reading = ocr.read_scanned(data, scans[:MAX_OCR_PAGES])
    if reading is None:
        reading = FormReading(form=None, source="ocr" if scans else "text", pages=pages, form_page=None)
    return dataclasses.replace(reading, pages=pages, active_content=_active_content(reader))


def _text_by_pdfium(data: bytes, reader) -> FormReading | None:
    """The form read from pdfium's text layer; None leaves the PDF to pdfplumber."""
    try:
        with pdfium_pages.Document(data, reader) as pdf:
            return text.find_form(data, pdf)
    except pdfium_pages.NotSimple:
        return None
    except pdfium.PdfiumError:
        return None  # pdfplumber then says what is wrong with the file (PdfError)


def _active_content(reader) -> tuple[str, ...]:
    """forms/active.py's findings; "unchecked" when the document's objects break the look."""
    try:
        return active.find(reader)
    except preflight.PARSE_ERRORS:
        return ("unchecked",)


def pages_for_ocr(pdf: pdfplumber.PDF) -> list[int]:
    """1-based numbers of the pages whose text layer cannot be read: images, garbled fonts."""
    numbers = []
    for number, page in enumerate(pdf.pages, start=1):
        try:
            chars = "".join(c["text"] for c in page.chars)
        finally:
            page.close()
        if len(chars.strip()) < MIN_TEXT_CHARS or not text.clean_text(chars):
            numbers.append(number)
    return numbers
