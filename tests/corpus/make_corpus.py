"""Writes the .eml corpus of tests/corpus/ byte by byte, as Japanese companies' mailers send mail.

    .venv/bin/python tests/corpus/make_corpus.py     # rewrites every *.eml here

The .eml files are committed; this script is how they were made, kept so a
case can be changed or added. Each builder writes the headers and MIME
structure its mailer uses (Outlook: ISO-2022-JP 7bit with CP932 extensions
and RFC 2047 names in quotes; Thunderbird/Gmail: UTF-8 with RFC 2231 names;
old Japanese mailers: Shift_JIS 8bit or unlabelled JIS). The expected class,
subject, body fragment and attachment names of each file are in README.md
and tests/intake/test_corpus.py.
"""

from __future__ import annotations

import base64
import io
import quopri
import zipfile
from pathlib import Path
from urllib.parse import quote

from mailbot.forms.consultation import render_consultation, sample_consultation_values
from mailbot.forms.fill import render_application, sample_values
from mailbot.intake.japanese import encode_jis

HERE = Path(__file__).resolve().parent
TO = "chizai@example.jp"
DATE = "Tue, 24 Nov 2026 10:{:02d}:00 +0900"
THREAD = "TS-2026-0001"  # the application whose thread the documents and the reply belong to


# --- bytes as mailers write them ------------------------------------------


def jis(text: str) -> bytes:
    """Windows ISO-2022-JP (CP50221): JIS X 0208, CP932 extensions, ESC ( I kana."""
    return encode_jis(text)[0]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64_lines(data: bytes) -> bytes:
    text = b64(data)
    return "\r\n".join(text[i:i + 76] for i in range(0, len(text), 76)).encode() + b"\r\n"


def encode(text: str, charset: str) -> bytes:
    """Bytes as Windows writes them: "Shift_JIS" is really cp932, "ISO-2022-JP" is CP50221."""
    label = charset.lower()
    if label == "iso-2022-jp":
        return jis(text)
    return text.encode("cp932" if label == "shift_jis" else charset)


def word(text: str, charset: str = "iso-2022-jp") -> str:
    """One RFC 2047 B encoded-word; ISO-2022-JP words end in ASCII mode, as RFC 1468 asks."""
    return f"=?{charset}?B?{b64(encode(text, charset))}?="


def words(text: str, charset: str = "iso-2022-jp", size: int = 12) -> str:
    """A long header value as Outlook folds it: one self-contained word per ``size`` characters."""
    chunks = [text[i:i + size] for i in range(0, len(text), size)]
    return "\r\n ".join(word(chunk, charset) for chunk in chunks)


def jis_body(text: str) -> bytes:
    """A 7bit ISO-2022-JP body, each line back in ASCII at its end, CRLF line ends."""
    return b"".join(jis(line) + b"\r\n" for line in text.split("\n"))


def head(*lines: str | bytes) -> bytes:
    return b"".join((line if isinstance(line, bytes) else line.encode()) + b"\r\n" for line in lines)


def part(headers: tuple[str | bytes, ...], body: bytes) -> bytes:
    return head(*headers) + b"\r\n" + body


def multipart(boundary: str, *parts: bytes, preamble: bytes = b"") -> bytes:
    out = preamble
    for one in parts:
        out += b"--" + boundary.encode() + b"\r\n" + one + b"\r\n"
    return out + b"--" + boundary.encode() + b"--\r\n"


def message(headers: tuple[str | bytes, ...], body: bytes) -> bytes:
    return part(headers, body)


def pdf_part(pdf: bytes, type_name: str, disposition: str) -> bytes:
    return part((f"Content-Type: application/pdf; {type_name}", "Content-Transfer-Encoding: base64",
                 f"Content-Disposition: attachment; {disposition}"), b64_lines(pdf))


def rfc2231(name: str, charset: str = "UTF-8", size: int = 0) -> str:
    """filename*=charset''%XX..., split into continuations of ``size`` characters when given."""
    quoted = quote(encode(name, charset), safe="")
    if not size:
        return f"filename*={charset}''{quoted}"
    pieces = [quoted[i:i + size] for i in range(0, len(quoted), size)]
    while any(p.endswith("%") or p[-2:-1] == "%" for p in pieces[:-1]):  # never split inside %XX
        size += 1
        pieces = [quoted[i:i + size] for i in range(0, len(quoted), size)]
    first = f"filename*0*={charset}''{pieces[0]}"
    return ";\r\n ".join([first] + [f"filename*{i}*={p}" for i, p in enumerate(pieces[1:], 1)])


def windows_zip(name: str, data: bytes) -> bytes:
    """A zip as Windows Explorer writes it: the member name in cp932, no UTF-8 flag."""
    encoded = name.encode("cp932")
    placeholder = "X" * (len(encoded) - 4) + ".pdf"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(placeholder, date_time=(2026, 11, 24, 9, 30, 0))
        archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue().replace(placeholder.encode(), encoded)


def xlsx(sheet_title: str, rows: list[list[str]]) -> bytes:
    """A small but real .xlsx (Office Open XML) workbook with inline strings."""
    cells = "".join(
        f'<row r="{r}">' + "".join(f'<c r="{chr(65 + c)}{r}" t="inlineStr"><is><t>{v}</t></is></c>'
                                   for c, v in enumerate(row)) + "</row>"
        for r, row in enumerate(rows, 1))
    files = {
        "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        "</Types>",
        "_rels/.rels": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>",
        "xl/workbook.xml": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        f'<sheets><sheet name="{sheet_title}" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
        "</Relationships>",
        "xl/worksheets/sheet1.xml": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"<sheetData>{cells}</sheetData></worksheet>",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2026, 11, 20, 9, 0, 0)), text.encode(),
                             compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def application_pdf() -> bytes:
    return render_application(sample_values(contact_email="contact@takahashi-seisakusho.example.jp"))


# --- Outlook (Windows) --------------------------------------------------------


def outlook_headers(sender: str, name: str, subject: str, minute: int, msgid: str,
                    content_type: str, *extra: str) -> tuple[str, ...]:
    return (f"Return-Path: <{sender}>", f"From: {words(name)} <{sender}>",
            f"To: {word('ジェトロ知的財産課')} <{TO}>", f"Subject: {words(subject)}",
            f"Date: {DATE.format(minute)}", f"Message-ID: <{msgid}>", "MIME-Version: 1.0",
            content_type, "X-Mailer: Microsoft Outlook 16.0", "Thread-Index: AdtCQ8ZzqUe1Hc0bR0KSPm7x2YwJzA==",
            "Content-Language: ja", *extra)


OUTLOOK_PREAMBLE = b"This is a multi-part message in MIME format.\r\n\r\n"


def case_outlook_cp932_application() -> bytes:
    boundary = "----=_NextPart_000_0001_01DB3E75.BF04F3A0"
    body = jis_body("ジェトロ知的財産課 御中\n\n①㈱髙橋製作所の髙橋です。\n"
                    "営業秘密漏えい対策支援事業の申請書を提出いたします。\nよろしくお願いいたします。\n")
    name = word("申請書①_㈱髙橋製作所.pdf")
    return message(outlook_headers(
        "takahashi@takahashi-seisakusho.example.jp", "髙橋 一郎", "【申請】①㈱髙橋製作所 申請書の提出", 1,
        "000001db3e2a$4f1c2a60$ed547f20$@takahashi-seisakusho.example.jp",
        f'Content-Type: multipart/mixed;\r\n\tboundary="{boundary}"'), multipart(
        boundary,
        part(('Content-Type: text/plain;\r\n\tcharset="iso-2022-jp"', "Content-Transfer-Encoding: 7bit"), body),
        pdf_part(application_pdf(), f'\r\n\tname="{name}"', f'\r\n\tfilename="{name}"'),
        preamble=OUTLOOK_PREAMBLE))


def case_rfc2047_outlook_name() -> bytes:
    """Outlook folds a long attachment name into several encoded-words inside the quotes."""
    boundary = "----=_NextPart_000_0023_01DB3E80.12A4C560"
    body = jis_body("お世話になっております。\n申請書（押印済み）を添付いたします。\n")
    name = words("海外営業秘密漏えい対策支援事業_申請書_株式会社サンプル精機.pdf", size=10).replace("\r\n ", " ")
    return message(outlook_headers(
        "tanaka@sample-seiki.example.jp", "田中 太郎", "申請書の送付（株式会社サンプル精機）", 7,
        "000a01db3e2b$11aa22bb$33cc44dd$@sample-seiki.example.jp",
        f'Content-Type: multipart/mixed;\r\n\tboundary="{boundary}"'), multipart(
        boundary,
        part(('Content-Type: text/plain;\r\n\tcharset="iso-2022-jp"', "Content-Transfer-Encoding: 7bit"), body),
        pdf_part(render_application(sample_values()), f'\r\n\tname="{name}"', f'\r\n\tfilename="{name}"'),
        preamble=OUTLOOK_PREAMBLE))


def case_outlook_out_of_office() -> bytes:
    """Exchange's automatic reply (OOF) in Japanese: multipart/alternative, JIS text and HTML."""
    boundary = "_000_TYCPR01MB8353A1B2C3D4E5F6TYCPR01MB8353jpnprd01prod_"
    text = "誠に恐れ入りますが、11月30日（月）まで出張のため不在にしております。\n" \
           "12月1日以降、順次ご返信いたします。\n\n㈱髙橋製作所 髙橋\n"
    html = ('<html><head><meta http-equiv="Content-Type" content="text/html; charset=iso-2022-jp">\n'
            "<style><!-- p.MsoNormal {margin:0mm;} --></style></head>\n<body lang=\"JA\">\n"
            "<div><p class=MsoNormal>誠に恐れ入りますが、11月30日（月）まで出張のため不在にしております。</p>\n"
            "<p class=MsoNormal>12月1日以降、順次ご返信いたします。</p></div></body></html>")
    headers = outlook_headers(
        "takahashi@takahashi-seisakusho.example.jp", "髙橋 一郎", "自動応答: 【受付】申請書を受け付けました", 3,
        "TYCPR01MB8353A1B2C3D4E5F6@TYCPR01MB8353.jpnprd01.prod.outlook.com",
        f'Content-Type: multipart/alternative;\r\n\tboundary="{boundary}"',
        "In-Reply-To: <receipt.0001@example.jp>", "References: <receipt.0001@example.jp>",
        "Auto-Submitted: auto-generated", "X-Auto-Response-Suppress: All",
        "X-MS-Exchange-Organization-AutoResponseSuppress: All",
        "X-MS-Has-Attach:", "X-MS-TNEF-Correlator:")
    return message(tuple(h for h in headers if not h.startswith("X-Mailer")), multipart(  # no X-Mailer on an OOF
        boundary,
        part(('Content-Type: text/plain; charset="iso-2022-jp"', "Content-Transfer-Encoding: 7bit"), jis_body(text)),
        part(('Content-Type: text/html; charset="iso-2022-jp"', "Content-Transfer-Encoding: 7bit"), jis_body(html))))


def case_documents_in_thread() -> bytes:
    """Step 03: the applicant replies to the adoption notice with the two Excel sheets (new Outlook)."""
    boundary = "_004_TYWPR01MB1234ABCDEF9876TYWPR01MB1234jpnp_"
    body = jis_body("ジェトロ知的財産課 御中\n\n採択のご連絡ありがとうございます。\n"
                    "保有情報リストとセルフチェックシートを提出いたします。\n")
    sheets = []
    for name, title in (("保有情報リスト.xlsx", "保有情報リスト"), ("セルフチェックシート.xlsx", "セルフチェック")):
        data = xlsx(title, [["項目", "内容"], ["技術情報", "製造図面"], ["営業情報", "顧客名簿"]])
        encoded = word(name, "utf-8")
        sheets.append(part((f'Content-Type: {XLSX};\r\n\tname="{encoded}"',
                            f'Content-Description: {encoded}',
                            f"Content-Disposition: attachment;\r\n\t{rfc2231(name)};\r\n\tsize={len(data)}",
                            "Content-Transfer-Encoding: base64"), b64_lines(data)))
    return message(outlook_headers(
        "tanaka@sample-seiki.example.jp", "田中 太郎", f"RE: 【{THREAD}】採択のお知らせ", 20,
        "TYWPR01MB1234ABCDEF9876@TYWPR01MB1234.jpnprd01.prod.outlook.com",
        f'Content-Type: multipart/mixed;\r\n\tboundary="{boundary}"',
        "In-Reply-To: <adopted.0001@example.jp>", "References: <adopted.0001@example.jp>"), multipart(
        boundary,
        part(('Content-Type: text/plain; charset="iso-2022-jp"', "Content-Transfer-Encoding: 7bit"), body),
        *sheets))


def case_thread_reply_question() -> bytes:
    """A reply in the thread without documents: a person asks something."""
    body = jis_body("ジェトロ知的財産課 御中\n\n面談の日程ですが、12月第2週でも可能でしょうか。\n\n"
                    f"-----Original Message-----\nSubject: 【{THREAD}】採択のお知らせ\n")
    return message(outlook_headers(
        "tanaka@sample-seiki.example.jp", "田中 太郎", f"RE: 【{THREAD}】採択のお知らせ", 22,
        "000c01db3e2c$aa11bb22$cc33dd44$@sample-seiki.example.jp",
        'Content-Type: text/plain;\r\n\tcharset="iso-2022-jp"', "Content-Transfer-Encoding: 7bit",
        "In-Reply-To: <adopted.0001@example.jp>", "References: <adopted.0001@example.jp>"), body)


# --- old Japanese mailers -------------------------------------------------------


def case_jis_without_charset() -> bytes:
    """An old mailer: JIS straight in the Subject (no encoded-word) and a body with no charset label."""
    body = jis_body("ジェトロ御中\n\n支援事業の対象地域にマレーシアは含まれますか。\n株式会社山田商会 山田\n")
    return message(("From: yamada@yamada-shokai.example.jp", f"To: {TO}",
                    b"Subject: " + jis("対象地域についての問い合わせ"),
                    f"Date: {DATE.format(5)}", "Message-Id: <200611241005.AA00123@yamada-shokai.example.jp>",
                    "MIME-Version: 1.0", "Content-Type: text/plain", "Content-Transfer-Encoding: 7bit",
                    "X-Mailer: Datula Version 1.51.09 for Windows"), body)


def case_shift_jis_cp932() -> bytes:
    """Labelled Shift_JIS, sent 8bit, holding CP932-only characters (①㈱髙)."""
    boundary = "--Boundary_(ID_Zx1uVQ2m0Ab3dE4fG5hI6A)"
    body = "ジェトロ知的財産課 御中\r\n\r\n①㈱髙島屋商事の髙島です。\r\n申請書を送付いたします。\r\n".encode("cp932")
    pdf = render_application(sample_values(company_name="株式会社髙島屋商事"))
    return message((f"From: {word('髙島 花子', 'Shift_JIS')} <takashima@takashimaya-shoji.example.jp>",
                    f"To: {TO}", f"Subject: {word('①申請書の送付（㈱髙島屋商事）', 'Shift_JIS')}",
                    f"Date: {DATE.format(9)}", "Message-ID: <20261124100900.1A2B.TAKASHIMA@takashimaya-shoji.example.jp>",
                    "MIME-Version: 1.0", f'Content-Type: multipart/mixed; boundary="{boundary}"',
                    "X-Mailer: Becky! ver. 2.81.05 [ja]"), multipart(
        boundary,
        part(('Content-Type: text/plain; charset="Shift_JIS"', "Content-Transfer-Encoding: 8bit"), body),
        pdf_part(pdf, f'name="{word("申請書.pdf", "Shift_JIS")}"',
                 f'filename="{word("申請書.pdf", "Shift_JIS")}"')))


def case_split_encoded_words() -> bytes:
    """A subject whose JIS byte stream is cut mid-character between two encoded-words."""
    data = jis("相談窓口の利用について（①②）")
    cut = data.index(b"\x1b$B") + 3 + 5  # after the first byte of the third character
    first, second = data[:cut], data[cut:]
    subject = f"=?ISO-2022-JP?B?{b64(first)}?=\r\n =?ISO-2022-JP?B?{b64(second)}?="
    body = jis_body("個別相談窓口は、申請前でも利用できますか。\n")
    return message(("From: suzuki@suzuki-denki.example.jp", f"To: {TO}", f"Subject: {subject}",
                    f"Date: {DATE.format(11)}", "Message-ID: <5F1A2B3C.4050607@suzuki-denki.example.jp>",
                    "MIME-Version: 1.0", "Content-Type: text/plain; charset=ISO-2022-JP",
                    "Content-Transfer-Encoding: 7bit"), body)


def case_half_width_kana() -> bytes:
    """Half-width kana (ESC ( I) in subject and body, as some Windows mailers still send them."""
    body = jis_body("ｾﾐﾅｰの申込方法を教えてください。\nｶﾌﾞｼｷｶﾞｲｼｬ ｻﾄｳｺｳｷﾞｮｳ ｻﾄｳ\n")
    return message((f"From: {word('ｻﾄｳ')} <sato@sato-kogyo.example.jp>", f"To: {TO}",
                    f"Subject: {word('ｾﾐﾅｰについて')}", f"Date: {DATE.format(13)}",
                    "Message-ID: <20261124101300.0001@sato-kogyo.example.jp>", "MIME-Version: 1.0",
                    "Content-Type: text/plain; charset=iso-2022-jp", "Content-Transfer-Encoding: 7bit"), body)


def case_spam() -> bytes:
    """Unsolicited advertising marked 未承諾広告※ (Shift_JIS HTML, as bulk mailers send it)."""
    html = ('<html><head><meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS"></head>'
            "<body><p>今だけ！海外進出サポートパック 50%OFF</p><p>配信停止は<a href=\"http://x.example/\">こちら</a></p>"
            "</body></html>").encode("cp932")
    return message(("From: =?Shift_JIS?B?" + b64("海外進出ナビ".encode("cp932")) + "?= <info@kaigai-navi.example.com>",
                    f"To: {TO}", f"Subject: {word('未承諾広告※海外進出サポートパックのご案内', 'Shift_JIS')}",
                    f"Date: {DATE.format(15)}", "Message-ID: <ad.20261124.99887766@kaigai-navi.example.com>",
                    "MIME-Version: 1.0", "Content-Type: text/html; charset=Shift_JIS",
                    "Content-Transfer-Encoding: 8bit"), html)


def case_excel_from_stranger() -> bytes:
    """An Excel file from someone with no application (Becky!): not a thread, so told to send the PDF."""
    boundary = "Part_20261124101700_1234"
    data = xlsx("会社概要", [["会社名", "株式会社中村工業"], ["従業員数", "120"]])
    body = jis_body("ジェトロ御中\n\n弊社の概要をお送りします。ご確認ください。\n中村\n")
    return message((f"From: {word('中村 次郎')} <nakamura@nakamura-kogyo.example.jp>", f"To: {TO}",
                    f"Subject: {word('会社概要の送付')}", f"Date: {DATE.format(17)}",
                    "Message-Id: <20261124101700.7F3C.NAKAMURA@nakamura-kogyo.example.jp>", "MIME-Version: 1.0",
                    f'Content-Type: multipart/mixed; boundary="{boundary}"',
                    "X-Mailer: Becky! ver. 2.81.05 [ja]"), multipart(
        boundary,
        part(("Content-Type: text/plain; charset=ISO-2022-JP", "Content-Transfer-Encoding: 7bit"), body),
        part((f'Content-Type: application/vnd.ms-excel; name="{word("会社概要.xlsx")}"',
              "Content-Transfer-Encoding: base64",
              f'Content-Disposition: attachment; filename="{word("会社概要.xlsx")}"'), b64_lines(data))))


# --- Thunderbird / Gmail (UTF-8) -----------------------------------------------


def utf8_headers(sender: str, name: str, subject: str, minute: int, msgid: str, content_type: str,
                 *extra: str) -> tuple[str, ...]:
    return (f"From: {word(name, 'UTF-8')} <{sender}>", f"To: {TO}", f"Subject: {word(subject, 'UTF-8')}",
            f"Date: {DATE.format(minute)}", f"Message-ID: <{msgid}>", "MIME-Version: 1.0", content_type, *extra)


def case_rfc2231_utf8_continuation() -> bytes:
    """Thunderbird: a long Japanese file name as RFC 2231 continuations of percent-encoded UTF-8."""
    boundary = "------------0hN9lRQx7y5uTQ2cVv1o8Wz3"
    name = "【押印済】海外における営業秘密漏えい対策支援事業_申請書①.pdf"
    return message(utf8_headers(
        "kobayashi@kobayashi-kikai.example.jp", "小林 三郎", "申請書の提出（小林機械株式会社）", 19,
        "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d@kobayashi-kikai.example.jp",
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
        "User-Agent: Mozilla Thunderbird", "Content-Language: ja"), multipart(
        boundary,
        part(("Content-Type: text/plain; charset=UTF-8; format=flowed", "Content-Transfer-Encoding: 8bit"),
             "ジェトロ知的財産課 御中\r\n\r\n申請書を添付いたします。\r\n".encode()),
        part(("Content-Type: application/pdf; name*0*=UTF-8''" + quote(name.encode()[:30], safe="")
              + ";\r\n name*1*=" + quote(name.encode()[30:], safe=""),
              "Content-Disposition: attachment;\r\n " + rfc2231(name, "UTF-8", size=40),
              "Content-Transfer-Encoding: base64"), b64_lines(render_application(sample_values())))))


def case_rfc2231_iso2022jp() -> bytes:
    """An RFC 2231 name in ISO-2022-JP (percent-encoded JIS escapes), as some Japanese mailers write it."""
    boundary = "=_Part_2026112410210_AbCdEf"
    name = "申請書㈱森田製作所.pdf"
    return message((f"From: {word('森田')} <morita@morita-ss.example.jp>", f"To: {TO}",
                    f"Subject: {word('申請書の提出')}", f"Date: {DATE.format(21)}",
                    "Message-ID: <2026112410210.morita@morita-ss.example.jp>", "MIME-Version: 1.0",
                    f'Content-Type: multipart/mixed; boundary="{boundary}"', "X-Mailer: AL-Mail32 Version 1.13"),
                   multipart(
        boundary,
        part(("Content-Type: text/plain; charset=iso-2022-jp", "Content-Transfer-Encoding: 7bit"),
             jis_body("申請書を送ります。\n森田\n")),
        part(("Content-Type: application/pdf", "Content-Transfer-Encoding: base64",
              f"Content-Disposition: attachment; {rfc2231(name, 'ISO-2022-JP')}"),
             b64_lines(render_application(sample_values(company_name="株式会社森田製作所"))))))


def case_forwarded_application() -> bytes:
    """A colleague forwards the applicant's mail as an attachment (message/rfc822) holding the PDF."""
    inner_boundary = "------------inner0123456789"
    inner = message(utf8_headers(
        "yoshida@yoshida-seiko.example.jp", "吉田 四郎", "申請書", 0, "inner.0001@yoshida-seiko.example.jp",
        f'Content-Type: multipart/mixed; boundary="{inner_boundary}"'), multipart(
        inner_boundary,
        part(("Content-Type: text/plain; charset=UTF-8", "Content-Transfer-Encoding: 8bit"),
             "総務部 御中\r\n押印した申請書です。ジェトロへの提出をお願いします。\r\n".encode()),
        pdf_part(render_application(sample_values(company_name="吉田精工株式会社")), f'name="{word("申請書.pdf", "UTF-8")}"',
                 rfc2231("申請書.pdf"))))
    boundary = "------------outer9876543210"
    return message(utf8_headers(
        "soumu@yoshida-seiko.example.jp", "吉田精工 総務部", "Fwd: 申請書", 23, "fwd.0002@yoshida-seiko.example.jp",
        f'Content-Type: multipart/mixed; boundary="{boundary}"', "User-Agent: Mozilla Thunderbird"), multipart(
        boundary,
        part(("Content-Type: text/plain; charset=UTF-8", "Content-Transfer-Encoding: 8bit"),
             "ジェトロ知的財産課 御中\r\n担当者から届いた申請書を転送いたします。\r\n".encode()),
        part(("Content-Type: message/rfc822; name=\"=?UTF-8?B?" + b64("申請書.eml".encode()) + "?=\"",
              "Content-Disposition: attachment; " + rfc2231("申請書.eml")), inner)))


def case_pdf_in_zip() -> bytes:
    """The PDF zipped on Windows (member name in cp932), the zip name RFC 2231 UTF-8 (Gmail)."""
    boundary = "000000000000a1b2c3d4e5f60708"
    data = windows_zip("申請書①.pdf", render_application(sample_values(company_name="株式会社井上工業")))
    return message(utf8_headers(
        "inoue.inoue.kogyo@gmail.example.com", "井上 五郎", "申請書（zip）", 25,
        "CAKx9Qz1b2c3d4e5f6g7h8i9j0@mail.gmail.example.com",
        f'Content-Type: multipart/mixed; boundary="{boundary}"'), multipart(
        boundary,
        part(('Content-Type: text/plain; charset="UTF-8"', "Content-Transfer-Encoding: base64"),
             b64_lines("申請書をzipで圧縮して送付します。\r\n".encode())),
        part((f'Content-Type: application/x-zip-compressed; name="{word("申請書類.zip", "UTF-8")}"',
              f"Content-Disposition: attachment; {rfc2231('申請書類.zip')}",
              "Content-Transfer-Encoding: base64", "X-Attachment-Id: f_m3x1y2z30"), b64_lines(data))))


def case_question_no_attachment() -> bytes:
    """Gmail: multipart/alternative, UTF-8 base64 text and quoted-printable HTML, no attachment."""
    boundary = "000000000000f1e2d3c4b5a69788"
    text = "ジェトロ知的財産課 ご担当者様\r\n\r\n従業員数が300名を超える場合も申請できますか。\r\nよろしくお願いします。\r\n"
    html = ('<div dir="ltr">ジェトロ知的財産課 ご担当者様<div><br></div>'
            "<div>従業員数が300名を超える場合も申請できますか。</div><div>よろしくお願いします。</div></div>\r\n")
    return message(utf8_headers(
        "kato.kato@gmail.example.com", "加藤 六郎", "申請資格についての質問", 27,
        "CAJ7aBcDeFgHiJkLmNoPqRsTuVw@mail.gmail.example.com",
        f'Content-Type: multipart/alternative; boundary="{boundary}"'), multipart(
        boundary,
        part(('Content-Type: text/plain; charset="UTF-8"', "Content-Transfer-Encoding: base64"),
             b64_lines(text.encode())),
        part(('Content-Type: text/html; charset="UTF-8"', "Content-Transfer-Encoding: quoted-printable"),
             quopri.encodestring(html.encode()).replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"))))


def case_html_only() -> bytes:
    """HTML-only mail (a web mailer): ISO-2022-JP HTML with entities, <br>, a table and CP932 characters."""
    html = ("<html><head><title>お問い合わせ</title></head><body>\n"
            "<p>ジェトロ知的財産課&nbsp;御中</p>\n"
            "<p>㈱髙田技研の髙田です。<br>\n研修の時間数について&lt;質問&gt;があります。</p>\n"
            "<table><tr><td>研修</td><td>10時間</td></tr><tr><td>コンサルテーション</td><td>13時間</td></tr></table>\n"
            "<p>合計23時間&amp;2か国で申請できますか。</p></body></html>")
    return message((f"From: {word('髙田')} <takada@takada-giken.example.jp>", f"To: {TO}",
                    f"Subject: {word('研修時間についての質問')}", f"Date: {DATE.format(29)}",
                    "Message-ID: <web.20261124102900.abcdef@takada-giken.example.jp>", "MIME-Version: 1.0",
                    'Content-Type: text/html; charset="ISO-2022-JP"', "Content-Transfer-Encoding: 7bit",
                    "X-Mailer: Active! mail"), jis_body(html))


def case_html_with_logo() -> bytes:
    """Outlook HTML with a signature logo (multipart/related, Content-ID): the logo is not a file."""
    alt, rel = "----=_NextPart_001_0002_01DB3E90.AAAA0000", "----=_NextPart_000_0001_01DB3E90.AAAA0000"
    html = ('<html><head><meta http-equiv=Content-Type content="text/html; charset=shift_jis"></head><body>'
            "<p class=MsoNormal>いつもお世話になっております。<o:p></o:p></p>"
            "<p class=MsoNormal>申請の締め切りはいつでしょうか。<o:p></o:p></p>"
            '<p class=MsoNormal><img width=120 height=40 src="cid:image001.png@01DB3E90.AAAA0000"></p>'
            "</body></html>").encode("cp932")
    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
    inner = multipart(
        alt,
        part(('Content-Type: text/plain; charset="shift_jis"', "Content-Transfer-Encoding: base64"),
             b64_lines("いつもお世話になっております。\r\n申請の締め切りはいつでしょうか。\r\n".encode("cp932"))),
        part(('Content-Type: text/html; charset="shift_jis"', "Content-Transfer-Encoding: base64"), b64_lines(html)))
    related = multipart(
        rel,
        part((f'Content-Type: multipart/alternative;\r\n\tboundary="{alt}"',), inner),
        part(('Content-Type: image/png; name="image001.png"', "Content-Transfer-Encoding: base64",
              "Content-ID: <image001.png@01DB3E90.AAAA0000>"), b64_lines(png)))
    return message(outlook_headers(
        "ishikawa@ishikawa-denki.example.jp", "石川 七海", "申請の締め切りについて", 31,
        "000d01db3e2d$12345678$9abcdef0$@ishikawa-denki.example.jp",
        f'Content-Type: multipart/related;\r\n\tboundary="{rel}";\r\n\ttype="multipart/alternative"'),
        OUTLOOK_PREAMBLE + related)


def case_consultation() -> bytes:
    """The consultation-desk form as a PDF (Thunderbird, RFC 2231 UTF-8 name)."""
    boundary = "------------cOnSuLt4t10n0000000001"
    return message(utf8_headers(
        "hanako.sato@sample-seiki.co.jp", "佐藤 花子", "個別相談の申込み", 33,
        "c0ffee00-1234-4abc-9def-000000000001@sample-seiki.co.jp",
        f'Content-Type: multipart/mixed; boundary="{boundary}"', "User-Agent: Mozilla Thunderbird"), multipart(
        boundary,
        part(("Content-Type: text/plain; charset=UTF-8; format=flowed", "Content-Transfer-Encoding: 8bit"),
             "個別相談窓口の申込書を送付します。\r\nよろしくお願いいたします。\r\n".encode()),
        pdf_part(render_consultation(sample_consultation_values()), f'name="{word("個別相談申込書.pdf", "UTF-8")}"',
                 rfc2231("個別相談申込書.pdf"))))


# --- robots ----------------------------------------------------------------


def case_postfix_bounce() -> bytes:
    """Postfix's delivery-status notification (multipart/report) for one of our receipts."""
    boundary = "4Nq8Zx1Fj0z2y3.1732410900/mx.example.jp"
    notice = (b"This is the mail system at host mx.example.jp.\r\n\r\n"
              b"I'm sorry to have to inform you that your message could not\r\n"
              b"be delivered to one or more recipients. It's attached below.\r\n\r\n"
              b"                   The mail system\r\n\r\n"
              b"<tanaka@old-domain.example.jp>: host mail.old-domain.example.jp[203.0.113.25]\r\n"
              b"    said: 550 5.1.1 <tanaka@old-domain.example.jp>: Recipient address rejected:\r\n"
              b"    User unknown in local recipient table (in reply to RCPT TO command)\r\n")
    status = (b"Reporting-MTA: dns; mx.example.jp\r\nX-Postfix-Queue-ID: 4Nq8Zx1Fj0z2y3\r\n"
              b"X-Postfix-Sender: rfc822; chizai@example.jp\r\n"
              b"Arrival-Date: Tue, 24 Nov 2026 10:34:58 +0900 (JST)\r\n\r\n"
              b"Final-Recipient: rfc822; tanaka@old-domain.example.jp\r\n"
              b"Original-Recipient: rfc822;tanaka@old-domain.example.jp\r\nAction: failed\r\nStatus: 5.1.1\r\n"
              b"Remote-MTA: dns; mail.old-domain.example.jp\r\n"
              b"Diagnostic-Code: smtp; 550 5.1.1 <tanaka@old-domain.example.jp>: Recipient\r\n"
              b"    address rejected: User unknown in local recipient table\r\n")
    original = head("Return-Path: <chizai@example.jp>", f"From: {word('ジェトロ知的財産課', 'utf-8')} <chizai@example.jp>",
                    "To: tanaka@old-domain.example.jp",
                    f"Subject: {word('【TS-2026-0007】申請書を受け付けました', 'utf-8')}",
                    "Message-ID: <177241089812.4242.1234567890@example.jp>",
                    "In-Reply-To: <app.0007@old-domain.example.jp>", "Auto-Submitted: auto-replied",
                    "X-Auto-Response-Suppress: All", "X-Loop: chizai@example.jp")
    return message(("Return-Path: <>", "Received: by mx.example.jp (Postfix)\r\n\tid 4Nq8Zx1Fj0z2y3; "
                    "Tue, 24 Nov 2026 10:35:00 +0900 (JST)", f"Date: {DATE.format(35)}",
                    "From: MAILER-DAEMON@mx.example.jp (Mail Delivery System)",
                    "Subject: Undelivered Mail Returned to Sender", f"To: {TO}", "Auto-Submitted: auto-replied",
                    "MIME-Version: 1.0", "Content-Type: multipart/report; report-type=delivery-status;\r\n"
                    f'\tboundary="{boundary}"', "Content-Transfer-Encoding: 8bit",
                    "Message-Id: <20261124013500.5A6B7C8D9E@mx.example.jp>"), multipart(
        boundary,
        part(("Content-Description: Notification", "Content-Type: text/plain; charset=us-ascii"), notice),
        part(("Content-Description: Delivery report", "Content-Type: message/delivery-status"), status),
        part(("Content-Description: Undelivered Message Headers", "Content-Type: text/rfc822-headers",
              "Content-Transfer-Encoding: 8bit"), original),
        preamble=b"This is a MIME-encapsulated message.\r\n\r\n"))


def case_mailing_list() -> bytes:
    """A newsletter from an fml mailing list in Japan (X-ML-Name, List-Id, Precedence: bulk)."""
    body = jis_body("会員各位\n\n12月の海外展開セミナーのご案内です。\n詳細はウェブサイトをご覧ください。\n")
    return message(("Return-Path: <trade-news-admin@jp-trade-news.example.jp>",
                    f"From: {word('貿易ニュース事務局')} <info@jp-trade-news.example.jp>",
                    "To: trade-news@jp-trade-news.example.jp",
                    f"Subject: {word('[trade-news:01234] 12月の海外展開セミナーのご案内')}",
                    f"Date: {DATE.format(37)}", "Message-Id: <202611241037.fml01234@jp-trade-news.example.jp>",
                    "X-ML-Name: trade-news", "X-Mail-Count: 01234", "X-MLServer: fml [fml 4.0.3 release (20011202/4.0.3)]",
                    "X-ML-Info: If you have a question, send e-mail with the body \"help\" to the address\r\n"
                    "\ttrade-news-ctl@jp-trade-news.example.jp", "List-Id: trade-news.jp-trade-news.example.jp",
                    "List-Unsubscribe: <mailto:trade-news-ctl@jp-trade-news.example.jp?body=unsubscribe>",
                    "Precedence: bulk", "Lines: 4", "MIME-Version: 1.0",
                    "Content-Type: text/plain; charset=iso-2022-jp", "Content-Transfer-Encoding: 7bit"), body)


CASES = {
    "01-outlook-iso2022jp-cp932-application.eml": case_outlook_cp932_application,
    "02-jis-without-charset-label.eml": case_jis_without_charset,
    "03-shift-jis-label-cp932.eml": case_shift_jis_cp932,
    "04-split-encoded-words.eml": case_split_encoded_words,
    "05-rfc2231-utf8-continuation.eml": case_rfc2231_utf8_continuation,
    "06-rfc2231-iso2022jp-name.eml": case_rfc2231_iso2022jp,
    "07-rfc2047-outlook-name.eml": case_rfc2047_outlook_name,
    "08-half-width-kana.eml": case_half_width_kana,
    "09-forwarded-rfc822-application.eml": case_forwarded_application,
    "10-pdf-in-zip.eml": case_pdf_in_zip,
    "11-html-only.eml": case_html_only,
    "12-outlook-out-of-office-ja.eml": case_outlook_out_of_office,
    "13-postfix-bounce-of-our-reply.eml": case_postfix_bounce,
    "14-mailing-list-fml.eml": case_mailing_list,
    "15-spam-mishodaku-kokoku.eml": case_spam,
    "16-question-no-attachment.eml": case_question_no_attachment,
    "17-documents-two-xlsx-in-thread.eml": case_documents_in_thread,
    "18-consultation-form.eml": case_consultation,
    "19-excel-from-stranger.eml": case_excel_from_stranger,
    "20-reply-in-thread-no-documents.eml": case_thread_reply_question,
    "21-html-with-signature-logo.eml": case_html_with_logo,
}


def main() -> None:
    for name, build in CASES.items():
        (HERE / name).write_bytes(build())
        print(name)


if __name__ == "__main__":
    main()
