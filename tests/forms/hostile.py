"""Hostile and odd PDFs, built on the fly (no binaries in the repository).

Each builder returns the file's bytes. The nasty ones are written by hand
(``raw_pdf``) because a well-behaved library refuses to make them: a
stream whose /Length refers to itself, a Flate bomb, Form XObjects nested
to 10^9 draws. See shared/notes/pdf.md (hostile PDFs) for what each one
does to pdfplumber, pypdfium2 and pypdf.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from functools import lru_cache

from PIL import Image
from pypdf import PdfReader, PdfWriter
from pypdf.generic import DictionaryObject, NameObject, TextStringObject
from reportlab.pdfgen.canvas import Canvas

from mailbot.forms.fill import render_application, sample_values

GB = 1024**3


def raw_pdf(objects: list[bytes], root: int = 1) -> bytes:
    """A PDF from object bodies (object n is objects[n-1]) with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, root, xref)
    return bytes(out)


def _page_objects(contents: bytes, resources: bytes = b"<< >>") -> list[bytes]:
    """Catalog (1), Pages (2), one A4 Page (3) with content stream object 4 and ``resources``."""
    return [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources " + resources + b" >>",
        contents,
    ]


def stream(data: bytes, extra: bytes = b"") -> bytes:
    """A stream object body with the right /Length."""
    return b"<< /Length %d %s >>\nstream\n" % (len(data), extra) + data + b"\nendstream"


# ---------------------------------------------------------------- bombs and loops

@lru_cache
def zeros_deflated(size: int = GB) -> bytes:
    """zlib data that inflates to ``size`` zero bytes (~1 MB per GB), made in well under a second.

    Full flushes make every 1 MiB segment identical, so one segment is
    compressed once and repeated; the Adler-32 at the end is the real one.
    """
    chunk, count = bytes(1 << 20), size >> 20
    z = zlib.compressobj(9)
    head = z.compress(chunk) + z.flush(zlib.Z_FULL_FLUSH)
    segment = z.compress(chunk) + z.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(count):
        adler = zlib.adler32(chunk, adler)
    return head + segment * (count - 1) + b"\x03\x00" + adler.to_bytes(4, "big")


def flate_bomb() -> bytes:
    """A page whose content stream inflates to 1 GB (the file is ~1 MB)."""
    return raw_pdf(_page_objects(stream(zeros_deflated(), b"/Filter /FlateDecode")))


def image_bomb() -> bytes:
    """A page drawing one image XObject that inflates to 1 GB."""
    image = stream(zeros_deflated(), b"/Type /XObject /Subtype /Image /Width 32768 /Height 32768 "
                                     b"/ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode")
    objects = _page_objects(stream(b"q 500 0 0 700 40 60 cm /Im0 Do Q"), b"<< /XObject << /Im0 5 0 R >> >>")
    return raw_pdf(objects + [image])


def self_length() -> bytes:
    """The page's content stream has ``/Length 4 0 R``: its own object (pdfplumber hangs)."""
    body = b"<< /Length 4 0 R >>\nstream\nBT /F1 12 Tf 72 720 Td (hello) Tj ET\nendstream"
    return raw_pdf(_page_objects(body))


def nested_xobjects(depth: int = 9, fan: int = 10) -> bytes:
    """Form XObjects each drawing the next ``fan`` times, ``depth`` deep: fan**depth draws in ~2 KB."""
    first = 5  # object number of X0
    forms = []
    for level in range(depth + 1):
        if level == depth:
            body, res = b"0 0 m 1 1 l S", b"<< >>"
        else:
            body = b"/X Do " * fan
            res = b"<< /XObject << /X %d 0 R >> >>" % (first + level + 1)
        forms.append(stream(body, b"/Type /XObject /Subtype /Form /BBox [0 0 10 10] /Resources " + res))
    page = _page_objects(stream(b"/X Do"), b"<< /XObject << /X %d 0 R >> >>" % first)
    return raw_pdf(page + forms)


def xobject_cycle() -> bytes:
    """A Form XObject that draws itself."""
    form = stream(b"/X Do", b"/Type /XObject /Subtype /Form /BBox [0 0 10 10] /Resources << /XObject << /X 5 0 R >> >>")
    return raw_pdf(_page_objects(stream(b"/X Do"), b"<< /XObject << /X 5 0 R >> >>") + [form])


# ---------------------------------------------------------------- ordinary files, made odd

@lru_cache
def form() -> bytes:
    """The sample application, stamped: the file the odd ones are made from."""
    return render_application(sample_values())


def _written(writer: PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def encrypted(algorithm: str, user_password: str = "secret") -> bytes:
    """The form encrypted (``AES-256``, ``RC4-128``…); user_password "" = owner password only."""
    writer = PdfWriter(clone_from=io.BytesIO(form()))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm=algorithm)
    return _written(writer)


def truncated() -> bytes:
    """The first half of the form: an interrupted download."""
    return form()[: len(form()) // 2]


def png_renamed() -> bytes:
    """A PNG saved as 申請書.pdf."""
    buf = io.BytesIO()
    Image.new("RGB", (200, 100), "white").save(buf, "PNG")
    return buf.getvalue()


def docx_renamed() -> bytes:
    """A Word file (a zip) saved as .pdf."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
    return buf.getvalue()


def garbage() -> bytes:
    """A PDF header and then noise."""
    return b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


def many_pages(count: int = 5000) -> bytes:
    """``count`` blank pages."""
    writer = PdfWriter()
    for _ in range(count):
        writer.add_blank_page(595, 842)
    return _written(writer)


def javascript_open_action() -> bytes:
    """The form with a JavaScript /OpenAction: reads fine, the script is never run."""
    writer = PdfWriter(clone_from=io.BytesIO(form()))
    action = DictionaryObject({NameObject("/S"): NameObject("/JavaScript"),
                               NameObject("/JS"): TextStringObject("app.alert('hi'); while(true){}")})
    writer._root_object[NameObject("/OpenAction")] = writer._add_object(action)
    return _written(writer)


def many_characters(count: int = 200_000) -> bytes:
    """One page with ``count`` characters of text (2 pt type, 400 lines)."""
    buf = io.BytesIO()
    c = Canvas(buf, pageCompression=1)
    c.setFont("Helvetica", 2)
    per_line = count // 400
    for i in range(400):
        c.drawString(10, 830 - i * 2, "x" * per_line)
    c.showPage()
    c.save()
    return buf.getvalue()


def owner_password_only() -> bytes:
    """Encrypted with an owner password only: opens with "" and must read."""
    return encrypted("AES-256", user_password="")


def page_count(data: bytes) -> int:
    """Pages as pypdf sees them (a helper for the tests)."""
    return len(PdfReader(io.BytesIO(data)).pages)


def heavy_image(side: int = 12000) -> bytes:
    """A page with one side×side RGB image (432 MB when decoded) in a ~1 MB file.

    Over preflight's pixel cap (a 1200 dpi A4 page): refused before anything
    decodes it. An image page under the cap is a scan, and goes to OCR.
    """
    image = stream(zeros_deflated(side * side * 3), b"/Type /XObject /Subtype /Image /Width %d /Height %d "
                   b"/ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode" % (side, side))
    objects = _page_objects(stream(b"q 500 0 0 700 40 60 cm /Im0 Do Q"), b"<< /XObject << /Im0 5 0 R >> >>")
    return raw_pdf(objects + [image])

