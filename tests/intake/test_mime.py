"""mime.parse on messages shaped like those Japanese mailers send.

Messages are written as bytes, CRLF line ends; JIS byte strings by hand.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest

from mailbot.errors import ParseError
from mailbot.intake.mime import parse

PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
# JIS X 0208: 株 3374 式 3C30 会 3271 社 3C52 ① 2D21 ㈱ 2D6A 髙 7C62 申 3F3D 請 405A
JIS_BODY = b"\x1b$B3t<02q<R-!-j|b\x1b(B\r\n"  # 株式会社①㈱髙
JIS_SUBJECT = b"\x1b$B?=@A-!\x1b(B"  # 申請①


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def mail(*lines: str | bytes, body: bytes = b"") -> bytes:
    head = b"".join((line if isinstance(line, bytes) else line.encode()) + b"\r\n" for line in lines)
    return head + b"\r\n" + body


def test_iso2022jp_body_and_subject_with_cp932_extensions():
    msg = parse(mail(
        "From: =?ISO-2022-JP?B?" + b64(b"\x1b$B|b66\x1b(B") + "?= <takahashi@example.co.jp>",
        "To: apply@jetro.example", f"Subject: =?ISO-2022-JP?B?{b64(JIS_SUBJECT)}?=",
        "MIME-Version: 1.0", "Content-Type: text/plain; charset=ISO-2022-JP",
        "Content-Transfer-Encoding: 7bit", body=JIS_BODY))
    assert msg.subject == "申請①"
    assert msg.text == "株式会社①㈱髙\n"
    assert msg.sender_name == "髙橋"
    assert msg.sender == "takahashi@example.co.jp"


def test_iso2022jp_without_charset_label():
    msg = parse(mail("From: a@example.jp", "Subject: test", "MIME-Version: 1.0",
                     "Content-Type: text/plain", body=JIS_BODY))
    assert msg.text == "株式会社①㈱髙\n"


def test_shift_jis_labelled_body_is_cp932():
    sjis = "株式会社①㈱髙橋です".encode("cp932")
    msg = parse(mail("From: a@example.jp", "Subject: =?Shift_JIS?B?" + b64("①申請".encode("cp932")) + "?=",
                     "Content-Type: text/plain; charset=Shift_JIS",
                     "Content-Transfer-Encoding: 8bit", body=sjis))
    assert msg.text == "株式会社①㈱髙橋です"
    assert msg.subject == "①申請"


def test_encoded_words_split_mid_character():
    # 申請① split after the first byte of 請: each word alone is not valid JIS.
    part1, part2 = b"\x1b$B?=@", b"A-!\x1b(B"
    msg = parse(mail("From: a@example.jp",
                     f"Subject: =?ISO-2022-JP?B?{b64(part1)}?=\r\n =?ISO-2022-JP?B?{b64(part2)}?="))
    assert msg.subject == "申請①"


def test_half_width_kana_body():
    # ｶﾀｶﾅ (ESC ( I, 0x36 0x40 0x36 0x45) then テスト in JIS X 0208 (2546 2539 2548).
    msg = parse(mail("From: a@example.jp", "Content-Type: text/plain; charset=iso-2022-jp",
                     body=b"\x1b(I6@6E\x1b$B%F%9%H\x1b(B\r\n"))
    assert msg.text == "ｶﾀｶﾅテスト\n"


def multipart_with(*parts: bytes, outer: tuple[str, ...] = ()) -> bytes:
    body = b"".join(b"--BOUND\r\n" + part + b"\r\n" for part in parts) + b"--BOUND--\r\n"
    return mail("From: a@example.jp", "Subject: files", "MIME-Version: 1.0", *outer,
                'Content-Type: multipart/mixed; boundary="BOUND"', body=body)


def pdf_part(disposition: str) -> bytes:
    return mail("Content-Type: application/pdf", disposition,
                "Content-Transfer-Encoding: base64", body=b64(PDF).encode())


def test_rfc2231_filename_with_continuations():
    # "申請書①.pdf" in UTF-8, percent-encoded and split over two continuations.
    encoded = "申請書①.pdf".encode()
    quoted = "".join(f"%{byte:02X}" for byte in encoded)
    disposition = (f"Content-Disposition: attachment;\r\n filename*0*=UTF-8''{quoted[:21]};"
                   f"\r\n filename*1*={quoted[21:]}")
    msg = parse(multipart_with(mail("Content-Type: text/plain", body=b"see attached"), pdf_part(disposition)))
    assert [a.filename for a in msg.attachments] == ["申請書①.pdf"]
    assert msg.pdfs[0].data == PDF
    assert msg.text == "see attached"


def test_rfc2231_filename_in_shift_jis():
    quoted = "".join(f"%{byte:02X}" for byte in "①申請.pdf".encode("cp932"))
    msg = parse(multipart_with(pdf_part(f"Content-Disposition: attachment; filename*=shift_jis''{quoted}")))
    assert msg.attachments[0].filename == "①申請.pdf"


def test_rfc2047_filename_with_cp932_extension_as_outlook_sends():
    word = "=?ISO-2022-JP?B?" + b64(b"\x1b$B?=@A-!\x1b(B.pdf") + "?="
    msg = parse(multipart_with(pdf_part(f'Content-Disposition: attachment; filename="{word}"')))
    assert msg.attachments[0].filename == "申請①.pdf"
    assert msg.attachments[0].content_type == "application/pdf"


def test_forwarded_message_holding_the_pdf():
    inner = mail("From: b@example.jp", "Subject: original", "MIME-Version: 1.0",
                 'Content-Type: multipart/mixed; boundary="IN"', body=(
                     b"--IN\r\n" + mail("Content-Type: text/plain", body=b"inner text") + b"\r\n"
                     b"--IN\r\n" + pdf_part('Content-Disposition: attachment; filename="form.pdf"')
                     + b"\r\n--IN--\r\n"))
    forwarded = mail("Content-Type: message/rfc822", body=inner)
    msg = parse(multipart_with(mail("Content-Type: text/plain", body=b"FYI, forwarding"), forwarded))
    assert [(a.filename, a.data) for a in msg.attachments] == [("form.pdf", PDF)]
    assert msg.text == "FYI, forwarding"


def test_html_only_mail_is_rendered_to_text():
    html = "<html><head><style>p{color:red}</style></head><body><p>申請します&amp;よろしく</p><div>髙橋<br>株式会社</div></body></html>"
    msg = parse(mail("From: a@example.jp", "Content-Type: text/html; charset=utf-8",
                     "Content-Transfer-Encoding: base64", body=b64(html.encode()).encode()))
    assert msg.text == "申請します&よろしく\n\n髙橋\n株式会社"


def test_bounce_report_with_null_return_path():
    status = mail("Reporting-MTA: dns; mx.example.jp", body=b"Final-Recipient: rfc822; x@example.jp\r\nAction: failed\r\n")
    raw = mail("Return-Path: <>", "From: Mail Delivery System <MAILER-DAEMON@mx.example.jp>",
               "To: apply@jetro.example", "Subject: Undelivered Mail", "MIME-Version: 1.0",
               'Content-Type: multipart/report; report-type=delivery-status; boundary="R"', body=(
                   b"--R\r\n" + mail("Content-Type: text/plain", body=b"could not deliver") + b"\r\n"
                   b"--R\r\nContent-Type: message/delivery-status\r\n\r\n" + status + b"\r\n--R--\r\n"))
    msg = parse(raw)
    assert msg.return_path == ""
    assert msg.content_type == "multipart/report"
    assert msg.sender == "MAILER-DAEMON@mx.example.jp"
    assert msg.text == "could not deliver"
    assert msg.attachments == ()


def test_every_field_is_filled():
    msg = parse(mail(
        "Received: from a by b", "Received: from c by d", "Return-Path: <bounce@example.jp>",
        'From: "Tanaka, Taro" <tanaka@example.co.jp>', "To: apply@jetro.example, other@jetro.example",
        "Cc: =?UTF-8?B?5L2Q6Jek?= <sato@example.co.jp>", "Reply-To: office@example.co.jp",
        "Subject: hello", "Message-ID: <m1@example.co.jp>", "In-Reply-To: <m0@jetro.example>",
        "References: <a@x>\r\n <m0@jetro.example>", "Date: Tue, 01 Apr 2025 09:30:00 +0900",
        body=b"body\r\n"))
    assert (msg.sender, msg.sender_name) == ("tanaka@example.co.jp", "Tanaka, Taro")
    assert msg.to == ("apply@jetro.example", "other@jetro.example")
    assert msg.cc == ("sato@example.co.jp",) and msg.reply_to == ("office@example.co.jp",)
    assert (msg.message_id, msg.in_reply_to) == ("<m1@example.co.jp>", "<m0@jetro.example>")
    assert msg.references == ("<a@x>", "<m0@jetro.example>")
    assert msg.return_path == "bounce@example.jp"
    assert msg.date == datetime(2025, 4, 1, 9, 30, tzinfo=timezone(timedelta(hours=9)))
    assert msg.headers["received"] == ("from a by b", "from c by d")
    assert msg.header("CC") == "佐藤 <sato@example.co.jp>"
    assert (msg.content_type, msg.text) == ("text/plain", "body\n")


def test_absent_return_path_is_none():
    assert parse(mail("From: a@example.jp", body=b"x")).return_path is None


@pytest.mark.parametrize("raw", [b"", b"  \r\n\r\n", b"just some words, no headers at all",
                                 b"\x00\xff\xfe binary junk", b"Subject: no sender\r\n\r\nbody"])
def test_not_a_mail_raises_parse_error(raw):
    with pytest.raises(ParseError):
        parse(raw)


def test_forwarded_message_in_base64_is_still_searched():
    # Forbidden by RFC 2046, sent anyway by some mailers.
    inner = mail("From: b@example.jp", "Content-Type: multipart/mixed; boundary=IN", body=(
        b"--IN\r\n" + pdf_part('Content-Disposition: attachment; filename="form.pdf"') + b"\r\n--IN--\r\n"))
    forwarded = mail("Content-Type: message/rfc822", "Content-Transfer-Encoding: base64",
                     body=base64.encodebytes(inner).replace(b"\n", b"\r\n"))
    msg = parse(multipart_with(mail("Content-Type: text/plain", body=b"fwd"), forwarded))
    assert [(a.filename, a.data) for a in msg.attachments] == [("form.pdf", PDF)]


def test_broken_encoded_word_in_from_does_not_lose_the_mail():
    # mail-parser raises on this header; the message must still parse.
    msg = parse(mail("From: =?utf-8?B?5L2=Q?= <sato@example.jp>", "Subject: x", body=b"body"))
    assert msg.sender == "sato@example.jp"
    assert msg.text == "body"


def test_html_only_in_iso2022jp_with_cp932_extensions():
    # Outlook's HTML part: 7bit JIS, ① ㈱ 髙 and half-width kana, entities, <br/> and table cells.
    from mailbot.intake.japanese import encode_jis

    html = ("<html><head><title>件名</title><style>p{}</style></head><body>"
            "<p>株式会社①㈱ 髙橋&nbsp;ｶﾀｶﾅ&amp;&#x9AD9;&lt;様&gt;</p>"
            "<table><tr><td>氏名</td><td>髙橋　太郎</td></tr></table>一行目<br/>二行目</body></html>")
    msg = parse(mail("From: a@example.jp", 'Content-Type: text/html; charset="ISO-2022-JP"',
                     "Content-Transfer-Encoding: 7bit", body=encode_jis(html)[0]))
    assert msg.text == "株式会社①㈱ 髙橋 ｶﾀｶﾅ&髙<様>\n\n氏名 髙橋　太郎\n一行目\n二行目"


@pytest.mark.parametrize("codec", ["cp932", "euc_jp"])
def test_html_names_its_charset_only_in_meta(codec):
    html = (f'<html><head><meta http-equiv="Content-Type" content="text/html; charset={codec}">'
            "</head><body><div>申請書を\r\n提出します</div></body></html>")
    msg = parse(mail("From: a@example.jp", "Content-Type: text/html",
                     "Content-Transfer-Encoding: 8bit", body=html.encode(codec)))
    assert msg.text == "申請書を提出します"  # the editor's line wrap inside Japanese is no space


def test_signature_logo_in_html_is_not_a_file():
    html = mail("Content-Type: text/html; charset=utf-8", body='<p>ロゴ<img src="cid:logo@x"></p>'.encode())
    logo = mail("Content-Type: image/png", "Content-ID: <logo@x>", 'Content-Disposition: inline; filename="image001.png"',
                "Content-Transfer-Encoding: base64", body=b64(b"\x89PNG\r\n").encode())
    related = mail('Content-Type: multipart/related; boundary="REL"', body=(
        b"--REL\r\n" + html + b"\r\n--REL\r\n" + logo + b"\r\n--REL--\r\n"))
    msg = parse(multipart_with(related))
    assert [(a.filename, a.inline) for a in msg.attachments] == [("image001.png", True)]
    assert msg.text == "ロゴ"
