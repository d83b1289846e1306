"""PDFs inside zip attachments: taken out with their Japanese names, within limits."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage
from email.policy import SMTP

from mailbot.intake import archives, mime
from mailbot.intake.message import Attachment

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def windows_zip(name: str, data: bytes) -> bytes:
    """A zip as Windows Explorer writes it: the member name in cp932, no UTF-8 flag."""
    encoded = name.encode("cp932")
    placeholder = "X" * (len(encoded) - 4) + ".pdf"
    return make_zip({placeholder: data}).replace(placeholder.encode(), encoded)


def mail_with(zip_bytes: bytes, zip_name: str = "申請書類.zip") -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "tanaka@example.co.jp"
    msg["To"] = "chizai@example.jp"
    msg["Subject"] = "申請書の提出"
    msg.set_content("申請書をzipで送ります。")
    msg.add_attachment(zip_bytes, maintype="application", subtype="zip", filename=zip_name)
    return msg.as_bytes()


def test_a_pdf_in_a_windows_zip_becomes_an_attachment_with_its_japanese_name():
    msg = mime.parse(mail_with(windows_zip("申請書①.pdf", PDF)))
    assert [a.filename for a in msg.attachments] == ["申請書類.zip", "申請書①.pdf"]
    assert [a.filename for a in msg.pdfs] == ["申請書①.pdf"] and msg.pdfs[0].data == PDF


def test_utf8_named_members_and_folders_inside_the_zip():
    pdfs = archives.pdfs_in_zip(Attachment("a.zip", "application/zip",
                                           make_zip({"書類/申請書.pdf": PDF, "説明.txt": b"x"})))
    assert [(a.filename, a.data) for a in pdfs] == [("申請書.pdf", PDF)]


def test_a_zip_bomb_is_left_closed():
    bomb = make_zip({"big.pdf": b"\0" * (archives.MAX_PDF_BYTES + 10)})
    assert len(bomb) < 100_000
    assert archives.pdfs_in_zip(Attachment("a.zip", "application/zip", bomb)) == []


def test_too_many_members_or_a_broken_zip_give_nothing():
    many = make_zip({f"{i}.pdf": PDF for i in range(archives.MAX_MEMBERS + 1)})
    assert archives.pdfs_in_zip(Attachment("a.zip", "application/zip", many)) == []
    broken = make_zip({"a.pdf": PDF})[:40]
    assert archives.pdfs_in_zip(Attachment("a.zip", "application/zip", broken)) == []
    msg = mime.parse(mail_with(broken))
    assert msg.pdfs == ()


def test_a_file_that_only_claims_to_be_a_zip_is_not_opened():
    assert not archives.is_zip(Attachment("a.zip", "application/zip", b"not a zip"))
