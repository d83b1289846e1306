"""The parser's side of hostile input, without a mailbox: big parts, control characters, zips.

The end-to-end tests (test_hostile_mail.py) show what the applicant and staff
get; these show the exact bytes and text the parser hands on, and what it costs.
"""

from __future__ import annotations

import base64
import io
import os
import zipfile

import pytest

from mailbot.intake import archives, mime
from mailbot.intake.message import Attachment
from tests.hostile import mails
from tests.hostile.conftest import MB, peak_rss_growth


@pytest.mark.slow
def test_a_50_mb_attachment_comes_out_byte_for_byte_at_the_cost_of_its_size():
    """GIVEN a mail with a 50 MB attachment (68 MB of base64)
    WHEN it is parsed
    THEN the attachment's bytes are exactly the ones sent, and parsing needed at most
    twice the mail's size on top of it (the standard parser alone took 590 MB)."""
    data = b"%PDF-1.7\n" + os.urandom(50 * MB) + b"\n%%EOF\n"
    raw = mails.with_pdf(data, filename="申請書_高解像度.pdf")
    msg, growth = peak_rss_growth(lambda: mime.parse(raw))
    assert [(a.filename, a.data == data) for a in msg.attachments] == [("申請書_高解像度.pdf", True)]
    assert growth < 2 * len(raw), f"{growth / MB:.0f} MB to parse a {len(raw) / MB:.0f} MB mail"


def test_a_big_run_of_base64_looking_text_in_a_text_part_is_kept_as_it_was():
    """GIVEN a plain-text part (not base64) holding 2 MB of base64-looking lines, and a small PDF
    WHEN it is parsed
    THEN the text is exactly what was sent and the PDF is unharmed: a cut run is put back as text."""
    lines = "".join(base64.b64encode(os.urandom(57)).decode() + "\r\n" for _ in range(2 * MB // 78))
    raw = (mails._head('Content-Type: multipart/mixed; boundary="b"') + "\r\n\r\n--b\r\n"
           "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + lines + "--b\r\n"
           "Content-Type: application/pdf; name=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + mails._b64(b"%PDF-1.4 small\n%%EOF\n") + "--b--\r\n").encode("ascii")
    msg = mime.parse(raw)
    assert msg.text == lines.replace("\r\n", "\n")
    assert [a.data for a in msg.attachments] == [b"%PDF-1.4 small\n%%EOF\n"]


def test_control_characters_never_reach_the_parsed_header_text():
    """GIVEN CR/LF, NUL, BEL, ESC, DEL, NEL and U+2028 in From's name, Subject, Message-ID and the file name
    WHEN the mail is parsed
    THEN each is one line of text (a run of controls is one space; none in the Message-ID),
    the words around stay, and the bare CR did not make a header of its own out of the subject."""
    msg = mime.parse(mails.control_characters())
    assert msg.sender_name == "山田 Bcc: evil@attacker.example 太郎"
    assert msg.subject == "申請書 Bcc: evil@attacker.example 本文"
    assert msg.message_id == "<ctl.1@hostile-shoji.example.co.jp>"
    assert [a.filename for a in msg.attachments] == ["申請 Bcc: evil@attacker.example 書.pdf"]
    texts = [msg.sender_name, msg.subject, msg.message_id, msg.attachments[0].filename,
             *(v for values in msg.headers.values() for v in values)]
    assert not [t for t in texts if any(c in t for c in "\r\n" + mails.CONTROLS)]


def _zip(members: dict[str, bytes], encrypt: bool = False) -> Attachment:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    data = buffer.getvalue()
    if encrypt:  # the "encrypted" flag bit, as a password-protected zip sets it (local and central header)
        data = data.replace(b"PK\x03\x04\x14\x00\x00\x08", b"PK\x03\x04\x14\x00\x01\x08")
        data = data.replace(b"PK\x01\x02\x14\x03\x14\x00\x00\x08", b"PK\x01\x02\x14\x03\x14\x00\x01\x08")
    return Attachment("申請書類.zip", "application/zip", data)


@pytest.mark.parametrize(("attachment", "code", "words"), [
    (Attachment("申請書類.zip", "application/zip", mails.zip_bomb_archive(64 * MB)), "too_large",
     ["申請書類.zip", "申請書.pdf", "上限（20 MB）", "圧縮せずに"]),
    (_zip({"申請書.pdf": b"%PDF-1.4\n%%EOF\n"}, encrypt=True), "encrypted", ["申請書類.zip", "パスワード"]),
    (_zip({f"{n}.pdf": b"%PDF" for n in range(archives.MAX_MEMBERS + 1)}), "too_complex",
     [f"{archives.MAX_MEMBERS + 1}個", f"上限{archives.MAX_MEMBERS}個"]),
    (Attachment("申請書類.zip", "application/zip", _zip({"a.pdf": b"%PDF" * 100}).data[:60]), "broken",
     ["申請書類.zip", "壊れて"]),
], ids=["bomb", "password", "too-many-files", "broken"])
def test_a_zip_left_closed_says_why(attachment, code, words):
    """GIVEN a zip whose PDF is not taken out (a bomb, a password, too many files, broken)
    WHEN the service asks why
    THEN the reason has a PdfError code and names the zip, the limit and what to do."""
    assert archives.pdfs_in_zip(attachment) == []
    error = archives.refusal(attachment)
    assert error is not None and error.code == code
    assert all(word in str(error) for word in words), str(error)


def test_a_zip_that_gave_its_pdf_or_holds_none_has_no_refusal():
    """GIVEN a zip with a small PDF, and one with only Excel files
    WHEN the service asks why it was left closed
    THEN there is no refusal: the PDF came out, and Excel files are no PDF to explain."""
    assert archives.refusal(_zip({"申請書.pdf": b"%PDF-1.4\n%%EOF\n"})) is None
    assert archives.refusal(_zip({"保有情報リスト.xlsx": b"PK"})) is None
