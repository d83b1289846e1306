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

from mailbot.intake.message import Attachment

log = logging.getLogger(__name__)

MAX_MEMBERS = 20  # more files than this: not an application, leave the zip closed
MAX_PDF_BYTES = 20 * 1024 * 1024  # per PDF, uncompressed; the same order as [service] max_attachment_mb
_UTF8_NAME = 0x800  # zip flag bit 11: the member name is UTF-8
_ENCRYPTED = 0x1


def is_zip(attachment: Attachment) -> bool:
    """A zip by name, type or signature."""
    return (attachment.filename.lower().endswith(".zip")
            or attachment.content_type in ("application/zip", "application/x-zip-compressed")
            ) and attachment.data[:4] == b"PK\x03\x04"


def pdfs_in_zip(attachment: Attachment) -> list[Attachment]:
    """The PDFs inside a zip attachment, each read with a size cap; [] when none can be taken out."""
    try:
        with zipfile.ZipFile(io.BytesIO(attachment.data)) as archive:
            members = [m for m in archive.infolist() if _is_pdf_member(m)]
            if len(archive.infolist()) > MAX_MEMBERS:
                return []
            return [pdf for pdf in (_extract(archive, m) for m in members) if pdf is not None]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        log.info("zip %r left closed: %s", attachment.filename, exc)
        return []


def _is_pdf_member(member: zipfile.ZipInfo) -> bool:
    return not member.is_dir() and member_name(member).lower().endswith(".pdf") and not member.flag_bits & _ENCRYPTED


def _extract(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> Attachment | None:
    """Read at most MAX_PDF_BYTES + 1: the declared size of a bomb cannot be trusted."""
    with archive.open(member) as handle:
        data = handle.read(MAX_PDF_BYTES + 1)
    if len(data) > MAX_PDF_BYTES:
        log.info("zip member %r over %d bytes: left out", member_name(member), MAX_PDF_BYTES)
        return None
    return Attachment(filename=member_name(member).rsplit("/", 1)[-1], content_type="application/pdf", data=data)


def member_name(member: zipfile.ZipInfo) -> str:
    """The member's name; Windows zips store Japanese names in cp932 without saying so."""
    if member.flag_bits & _UTF8_NAME:
        return member.filename
    try:
        return member.filename.encode("cp437").decode("cp932")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return member.filename
