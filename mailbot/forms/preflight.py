"""Before reading: refuse what is not a readable PDF, with a message the applicant can act on.

pypdf looks first: it is quick and stops decompression bombs at its limits
(shared/notes/pdf.md, hostile PDFs). Every refusal is a PdfError with a
stable code and a polite Japanese message.
"""

from __future__ import annotations

import io

import pypdf
from pdfminer.pdfdocument import PDFEncryptionError
from pdfminer.psexceptions import PSException
from pdfplumber.utils.exceptions import PdfminerException
from pypdf.errors import PyPdfError

from mailbot.errors import PdfError

MESSAGES = {
    "not_pdf": "添付ファイルをPDFとして開けませんでした。押印済みの申請書をPDF形式で保存し、改めてお送りください。",
    "encrypted": "添付のPDFにパスワードが設定されているため開けませんでした。パスワードを外したPDFを改めてお送りください。",
    "broken": "添付のPDFが壊れているか、途中までしか届いていないため読み取れませんでした。PDFを保存し直して改めてお送りください。",
    "too_many_pages": "添付のPDFのページ数が上限（{max_pages}ページ）を超えています。申請書のページのみをPDFにして改めてお送りください。",
}

# Errors the PDF libraries raise for files they cannot parse. Anything else is
# a bug in mailbot and must surface, not be reported as a broken file.
PARSE_ERRORS = (PSException, PyPdfError, ValueError, KeyError, TypeError, IndexError, AttributeError)

def error(code: str, **fmt: object) -> PdfError:
    """A PdfError with the applicant-facing message for ``code``."""
    return PdfError(code, MESSAGES[code].format(**fmt))


def from_pdfminer(exc: PdfminerException) -> PdfError:
    """pdfplumber wraps pdfminer's errors; the real one is in args[0]."""
    inner = exc.args[0] if exc.args else exc
    return error("encrypted" if isinstance(inner, PDFEncryptionError) else "broken")


def check(data: bytes, max_pages: int) -> int:
    """Refuse non-PDFs, truncated, encrypted and over-long PDFs; the page count.

    pypdf is quick and stops decompression bombs at its limits, so it looks
    first (shared/notes/pdf.md: hostile PDFs).
    """
    if b"%PDF-" not in data[:1024]:
        raise error("not_pdf")
    if b"%%EOF" not in data[-2048:]:  # a truncated download or attachment
        raise error("broken")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise error("encrypted")
        pages = len(reader.pages)
    except PARSE_ERRORS as exc:
        raise error("broken") from exc
    if pages > max_pages:
        raise error("too_many_pages", max_pages=max_pages)
    return pages
