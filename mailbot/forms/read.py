"""Read an application PDF into a FormReading: refuse what cannot be read, then read the form.

Parsing hostile PDFs in a child process with time and memory caps is the
caller's job (forms/sandbox.py); this module is the in-process part.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import pdfplumber
from pdfminer.psexceptions import PSException
from pdfplumber.utils.exceptions import PdfminerException

from mailbot.forms import preflight, text
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


def read_form(data: bytes, *, max_pages: int = 50) -> FormReading:
    """Read an application PDF (text layer) into a FormReading.

    ``form`` is None when no page is our form. Raises PdfError (``not_pdf``,
    ``encrypted``, ``broken``, ``too_many_pages``) when the PDF cannot be read.
    """
    pages = preflight.check(data, max_pages)
    with _open(data) as pdf:
        reading = text.find_form(data, pdf)
    if reading is None:
        return FormReading(form=None, source="text", pages=pages, form_page=None)
    return FormReading(reading.form, reading.source, pages, reading.form_page,
                       reading.fields, reading.originals, reading.seal)
