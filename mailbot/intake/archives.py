"""PDFs that arrive inside a zip file: taken out, within limits, as attachments of their own.

Some companies' mail systems (or habits) zip every attachment. A zip may also
be hostile (a zip bomb), encrypted, or broken: those are left as they are,
and the mail is judged on its other attachments — nothing is ever unpacked
beyond the limits below.
"""

from __future__ import annotations

import io
import logging
import zipfile
import zlib

from mailbot.errors import PdfError
from mailbot.intake.message import Attachment

log = logging.getLogger(__name__)

MAX_MEMBERS = 20  # more files than this: not an application, leave the zip closed
MAX_PDF_BYTES = 20 * 1024 * 1024  # per PDF, uncompressed; the same order as [service] max_attachment_mb
_UNZIPPED = "申請書のPDFは、ZIPに圧縮せずにそのままメールに添付して改めてお送りください。"
TOO_LARGE = ("ZIPファイル（{zip}）の中のPDF（{pdf}）は、展開すると上限（{mb} MB）を超えるため、"
             "安全のため取り出しませんでした。" + _UNZIPPED)
ENCRYPTED = "ZIPファイル（{zip}）にパスワードが設定されているため、中のPDFを開けませんでした。" + _UNZIPPED
TOO_MANY = ("ZIPファイル（{zip}）には{count}個のファイルが入っており（上限{max}個）、"
            "安全のため開きませんでした。" + _UNZIPPED)
BROKEN = "ZIPファイル（{zip}）が壊れているため開けませんでした。" + _UNZIPPED
_UTF8_NAME = 0x800  # zip flag bit 11: the member name is UTF-8
_ENCRYPTED = 0x1


def is_zip(attachment: Attachment) -> bool:
    """A zip by name, type or signature."""
    return (attachment.filename.lower().endswith(".zip")
            or attachment.content_type in ("application/zip", "application/x-zip-compressed")
            ) and attachment.data[:4] == b"PK\x03\x04"


def pdfs_in_zip(attachment: Attachment) -> list[Attachment]:
    """The PDFs inside a zip attachment, each read with a size cap; [] when none can be taken out."""
    return _open(attachment)[0]


def refusal(attachment: Attachment) -> PdfError | None:
    """Why a zip holding PDFs gave none of them, for the applicant; None when it gave them or holds none.

    The mail is then answered with this reason instead of "not a PDF": the
    applicant did send a PDF, only zipped in a way that is not opened here.
    """
    pdfs, error = _open(attachment)
    return None if pdfs else error


def _open(attachment: Attachment) -> tuple[list[Attachment], PdfError | None]:
    """The PDFs taken out, and the reason the first PDF that was not taken out stayed inside."""
    name = attachment.filename or "ZIP"
    try:
        with zipfile.ZipFile(io.BytesIO(attachment.data)) as archive:
            members = [m for m in archive.infolist() if _is_pdf_name(m)]
            if len(archive.infolist()) > MAX_MEMBERS:
                count = len(archive.infolist())
                return [], PdfError("too_complex", TOO_MANY.format(zip=name, count=count, max=MAX_MEMBERS))
            return _extract_all(archive, members, name)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, zlib.error) as exc:
        log.info("zip %r left closed: %s", attachment.filename, exc)
        return [], PdfError("broken", BROKEN.format(zip=name))


def _extract_all(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo],
                 name: str) -> tuple[list[Attachment], PdfError | None]:
    pdfs, error = [], None
    for member in members:
        if member.flag_bits & _ENCRYPTED:
            error = error or PdfError("encrypted", ENCRYPTED.format(zip=name))
            continue
        pdf = _extract(archive, member)
        if pdf is None:
            mb = MAX_PDF_BYTES // (1024 * 1024)
            error = error or PdfError("too_large", TOO_LARGE.format(zip=name, pdf=_base(member), mb=mb))
        else:
            pdfs.append(pdf)
    return pdfs, error


def _is_pdf_name(member: zipfile.ZipInfo) -> bool:
    return not member.is_dir() and member_name(member).lower().endswith(".pdf")


def _base(member: zipfile.ZipInfo) -> str:
    return member_name(member).rsplit("/", 1)[-1]


def _extract(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> Attachment | None:
    """Read at most MAX_PDF_BYTES + 1: the declared size of a bomb cannot be trusted."""
    with archive.open(member) as handle:
        data = handle.read(MAX_PDF_BYTES + 1)
    if len(data) > MAX_PDF_BYTES:
        log.info("zip member %r over %d bytes: left out", member_name(member), MAX_PDF_BYTES)
        return None
    return Attachment(filename=_base(member), content_type="application/pdf", data=data)


def member_name(member: zipfile.ZipInfo) -> str:
    """The member's name; Windows zips store Japanese names in cp932 without saying so."""
    if member.flag_bits & _UTF8_NAME:
        return member.filename
    try:
        return member.filename.encode("cp437").decode("cp932")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return member.filename
