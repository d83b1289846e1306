"""Before reading: refuse what is not a readable PDF, with a message the applicant can act on.

pypdf looks first: it is quick and stops decompression bombs at its limits
(shared/notes/pdf.md, hostile PDFs). It decodes every page's content stream
and Form XObject, recursively, under caps on depth, decoded bytes, drawing
operations and text, because pdfplumber and pdfium have no such caps: a
Flate bomb, a stream whose /Length refers to itself, or Form XObjects
nested to 10^9 draws would hang or exhaust the reader (the sandbox would
kill it after its time limit; this answers in well under a second).
Every refusal is a PdfError with a stable code and a polite Japanese
message; the codes are listed in MESSAGES.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

import pypdf
from pdfminer.pdfdocument import PDFEncryptionError
from pdfminer.psexceptions import PSException
from pdfplumber.utils.exceptions import PdfminerException
from pypdf.errors import LimitReachedError, PyPdfError
from pypdf.generic import IndirectObject, StreamObject

from mailbot.errors import PdfError

MESSAGES = {
    "not_pdf": "添付ファイルをPDFとして開けませんでした。押印済みの申請書をPDF形式で保存し、改めてお送りください。",
    "encrypted": "添付のPDFにパスワードが設定されているため開けませんでした。パスワードを外したPDFを改めてお送りください。",
    "broken": "添付のPDFが壊れているか、途中までしか届いていないため読み取れませんでした。PDFを保存し直して改めてお送りください。",
    "too_many_pages": "添付のPDFのページ数が上限（{max_pages}ページ）を超えています。申請書のページのみをPDFにして改めてお送りください。",
    "too_complex": "添付のPDFは内部の構造が複雑すぎる（または圧縮されたデータが極端に大きい）ため、安全のため読み取りを中止しました。"
                   "お手数ですが、申請書のページのみを「印刷」から「PDFとして保存」するなどして保存し直し、改めてお送りください。",
}

# Caps for one document. A real application form decodes to ~50 KB of content,
# a page of a brochure to a few MB; these are far above that and far below harm.
MAX_DECODED_BYTES = 150 * 1024 * 1024  # all content streams and Form XObjects together
MAX_DEPTH = 12  # Form XObjects inside Form XObjects
MAX_DRAWS = 200_000  # XObject draws per page, counting repeats through nesting
MAX_TEXT_BYTES = 80_000  # bytes of shown strings per page: ~40k CJK characters (pdfplumber: ~4 s)
MAX_IMAGE_PIXELS = 60_000_000  # a 600 dpi A4 colour scan is ~35 Mpx; beyond, OCR would crawl

_DO = re.compile(rb"/([^\s/\[\]()<>{}%]+)\s*Do\b")
_LITERAL = re.compile(rb"\((?:\\.|[^\\)])*\)")
_HEX = re.compile(rb"<([0-9A-Fa-f\s]*)>")

# Errors the PDF libraries raise for files they cannot parse. Anything else is
# a bug in mailbot and must surface, not be reported as a broken file.
PARSE_ERRORS = (PSException, PyPdfError, ValueError, KeyError, TypeError, IndexError, AttributeError)

def error(code: str, **fmt: object) -> PdfError:
    """A PdfError with the applicant-facing message for ``code``."""
    return PdfError(code, MESSAGES[code].format(**fmt))


def from_pdfminer(exc: PdfminerException) -> PdfError:
    """pdfplumber wraps pdfminer's errors; the real one is in args[0]."""
    inner = exc.args[0] if exc.args else exc
    if isinstance(inner, MemoryError):  # the sandbox's memory limit, hit inside pdfminer
        return error("too_complex")
    return error("encrypted" if isinstance(inner, PDFEncryptionError) else "broken")


def check(data: bytes, max_pages: int) -> int:
    """Refuse non-PDFs, truncated, encrypted and over-long PDFs; the page count.

    pypdf is quick and stops decompression bombs at its limits, so it looks
    first (shared/notes/pdf.md: hostile PDFs).
    """
    return len(checked_reader(data, max_pages).pages)


def checked_reader(data: bytes, max_pages: int) -> pypdf.PdfReader:
    """``check``, returning pypdf's reader: the fillable-form reader reuses it (one parse, not two)."""
    if b"%PDF-" not in data[:1024]:
        raise error("not_pdf")
    if b"%%EOF" not in data[-2048:]:  # a truncated download or attachment
        raise error("broken")
    try:
        reader = _open(data)
        pages = len(reader.pages)
        if pages > max_pages:
            raise error("too_many_pages", max_pages=max_pages)
        check_complexity(reader)
    except LimitReachedError as exc:  # pypdf's decompression and recursion limits
        raise error("too_complex") from exc
    except PARSE_ERRORS as exc:
        raise error("broken") from exc
    return reader


def _open(data: bytes) -> pypdf.PdfReader:
    """pypdf's reader, decrypted when only an owner password is set (opens with "")."""
    reader = pypdf.PdfReader(io.BytesIO(data))
    if reader.is_encrypted and not reader.decrypt(""):
        raise error("encrypted")
    return reader


# ---------------------------------------------------------------- complexity

@dataclass
class _Walk:
    """What one document has cost so far, and the Form XObjects already measured."""

    decoded: int = 0
    draws: dict[int, int] = field(default_factory=dict)  # object number → draws inside it
    open_forms: set[int] = field(default_factory=set)  # the path being walked: a repeat is a cycle


def check_complexity(reader: pypdf.PdfReader) -> None:
    """Refuse (too_complex) a document whose pages cost more to draw than any form could.

    Each page's content is decoded under pypdf's limits, its text counted,
    and its XObjects walked to count how many draws nesting multiplies into.
    """
    walk = _Walk()
    for page in reader.pages:
        contents = page.get_contents()
        content = _decode(contents, walk) if contents is not None else b""
        if _text_bytes(content) > MAX_TEXT_BYTES:
            raise error("too_complex")
        draws = _draws(content, page.get("/Resources"), walk, depth=0)
        if draws + sum(_form_draws(ap, walk, 0) for ap in _appearances(page)) > MAX_DRAWS:
            raise error("too_complex")


def _appearances(page) -> list:
    """References to the annotations' normal appearances: the seal render draws them too."""
    found = []
    for annot in page.get("/Annots") or []:
        normal = (annot.get_object().get("/AP") or {}).get("/N")
        if normal is not None and not isinstance(normal.get_object(), StreamObject):
            found += [normal.get_object().raw_get(k) for k in normal.get_object()]  # one per state (on/off)
        elif normal is not None:
            found.append(annot.get_object()["/AP"].raw_get("/N"))
    return found


def _decode(stream: StreamObject, walk: _Walk) -> bytes:
    """The stream's decoded bytes, counted against the document's budget."""
    data = stream.get_data()
    walk.decoded += len(data)
    if walk.decoded > MAX_DECODED_BYTES:
        raise error("too_complex")
    return data


def _text_bytes(content: bytes) -> int:
    """Bytes of strings a content stream could show (literal and hex strings)."""
    literal = sum(len(m) for m in _LITERAL.findall(content))
    return literal + sum(len(m) // 2 for m in _HEX.findall(content))


def _draws(content: bytes, resources: object, walk: _Walk, depth: int) -> int:
    """XObject draws of ``content``, each Form XObject counted with everything it draws."""
    if depth > MAX_DEPTH:
        raise error("too_complex")
    xobjects = _xobjects(resources)
    total = 0
    for name in _DO.findall(content):
        ref = xobjects.get("/" + name.decode("latin-1"))
        total += 1 + (_form_draws(ref, walk, depth) if ref is not None else 0)
        if total > MAX_DRAWS:
            raise error("too_complex")
    return total


def _xobjects(resources: object) -> dict:
    """The /XObject dictionary of a resources dictionary (unresolved references kept)."""
    resources = resources.get_object() if resources is not None else None
    xobjects = resources.get("/XObject") if hasattr(resources, "get") else None
    xobjects = xobjects.get_object() if xobjects is not None else None
    return {key: xobjects.raw_get(key) for key in xobjects} if hasattr(xobjects, "raw_get") else {}


def _form_draws(ref: object, walk: _Walk, depth: int) -> int:
    """Draws inside one XObject: 0 for an image (its size checked), measured once for a form."""
    key = ref.idnum if isinstance(ref, IndirectObject) else id(ref)
    if key in walk.open_forms:  # a form that draws itself never ends
        raise error("too_complex")
    if key in walk.draws:
        return walk.draws[key]
    xobject = ref.get_object()
    if not isinstance(xobject, StreamObject) or xobject.get("/Subtype") != "/Form":
        _check_image(xobject)
        return 0
    walk.open_forms.add(key)
    walk.draws[key] = _draws(_decode(xobject, walk), xobject.get("/Resources"), walk, depth + 1)
    walk.open_forms.discard(key)
    return walk.draws[key]


def _check_image(xobject: object) -> None:
    """An image whose declared size alone would exhaust the renderer."""
    if not hasattr(xobject, "get"):
        return
    width, height = xobject.get("/Width", 0), xobject.get("/Height", 0)
    if isinstance(width, int) and isinstance(height, int) and width * height > MAX_IMAGE_PIXELS:
        raise error("too_complex")
