"""The .eml corpus (tests/corpus/): each real-shaped mail parsed and triaged as the service does it.

For every file: the class (and the automatic kind), the decoded subject, a
fragment of the decoded body, and the attachment names. Parsing is the
real ``mime.parse``, PDFs are read by the real sandboxed reader, the rules
are the shipped rules/triage.toml, and the thread is looked up in a real
database holding application TS-2026-0001, the way the pipeline does it.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlmodel import Session

from mailbot import PROJECT_ROOT
from mailbot.db import make_engine
from mailbot.forms.sandbox import Limits, read_form_safely
from mailbot.intake import mime
from mailbot.intake.classify import classify, load_triage
from mailbot.models import Application
from mailbot.pipeline import thread_of

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
SERVICE = "chizai@example.jp"
THREAD = "TS-2026-0001"

# file: (class, kind, subject, body fragment, attachment names)
CASES = {
    "01-outlook-iso2022jp-cp932-application.eml": (
        "application", "", "【申請】①㈱髙橋製作所 申請書の提出", "①㈱髙橋製作所の髙橋です。",
        ["申請書①_㈱髙橋製作所.pdf"]),
    "02-jis-without-charset-label.eml": (
        "question", "", "対象地域についての問い合わせ", "対象地域にマレーシアは含まれますか", []),
    "03-shift-jis-label-cp932.eml": (
        "application", "", "①申請書の送付（㈱髙島屋商事）", "①㈱髙島屋商事の髙島です。", ["申請書.pdf"]),
    "04-split-encoded-words.eml": (
        "question", "", "相談窓口の利用について（①②）", "申請前でも利用できますか", []),
    "05-rfc2231-utf8-continuation.eml": (
        "application", "", "申請書の提出（小林機械株式会社）", "申請書を添付いたします。",
        ["【押印済】海外における営業秘密漏えい対策支援事業_申請書①.pdf"]),
    "06-rfc2231-iso2022jp-name.eml": (
        "application", "", "申請書の提出", "申請書を送ります。", ["申請書㈱森田製作所.pdf"]),
    "07-rfc2047-outlook-name.eml": (
        "application", "", "申請書の送付（株式会社サンプル精機）", "申請書（押印済み）を添付いたします。",
        ["海外営業秘密漏えい対策支援事業_申請書_株式会社サンプル精機.pdf"]),
    "08-half-width-kana.eml": (
        "question", "", "ｾﾐﾅｰについて", "ｶﾌﾞｼｷｶﾞｲｼｬ ｻﾄｳｺｳｷﾞｮｳ", []),
    "09-forwarded-rfc822-application.eml": (
        "application", "", "Fwd: 申請書", "担当者から届いた申請書を転送いたします。", ["申請書.pdf"]),
    "10-pdf-in-zip.eml": (
        "application", "", "申請書（zip）", "zipで圧縮して送付します", ["申請書類.zip", "申請書①.pdf"]),
    "11-html-only.eml": (
        "question", "", "研修時間についての質問",
        "㈱髙田技研の髙田です。\n研修の時間数について<質問>があります。\n\n研修 10時間\nコンサルテーション 13時間", []),
    "12-outlook-out-of-office-ja.eml": (
        "automatic", "out_of_office", "自動応答: 【受付】申請書を受け付けました", "出張のため不在にしております", []),
    "13-postfix-bounce-of-our-reply.eml": (
        "automatic", "bounce", "Undelivered Mail Returned to Sender", "your message could not\nbe delivered", []),
    "14-mailing-list-fml.eml": (
        "automatic", "list", "[trade-news:01234] 12月の海外展開セミナーのご案内", "海外展開セミナーのご案内です", []),
    "15-spam-mishodaku-kokoku.eml": (
        "junk", "", "未承諾広告※海外進出サポートパックのご案内", "海外進出サポートパック 50%OFF", []),
    "16-question-no-attachment.eml": (
        "question", "", "申請資格についての質問", "従業員数が300名を超える場合も申請できますか。", []),
    "17-documents-two-xlsx-in-thread.eml": (
        "documents", "", f"RE: 【{THREAD}】採択のお知らせ", "保有情報リストとセルフチェックシートを提出いたします。",
        ["保有情報リスト.xlsx", "セルフチェックシート.xlsx"]),
    "18-consultation-form.eml": (
        "consultation", "", "個別相談の申込み", "個別相談窓口の申込書を送付します。", ["個別相談申込書.pdf"]),
    "19-excel-from-stranger.eml": (
        "question", "", "会社概要の送付", "弊社の概要をお送りします。", ["会社概要.xlsx"]),
    "20-reply-in-thread-no-documents.eml": (
        "question", "", f"RE: 【{THREAD}】採択のお知らせ", "12月第2週でも可能でしょうか", []),
    "21-html-with-signature-logo.eml": (
        "question", "", "申請の締め切りについて", "申請の締め切りはいつでしょうか。", ["image001.png"]),
}


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    """What the pipeline's thread look-up and classify need: a real database with one application."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('corpus') / 'mailbot.db'}")
    with Session(engine) as session:
        session.add(Application(reception_number=THREAD, state="documents_requested",
                                sender="tanaka@sample-seiki.example.jp"))
        session.commit()
    return SimpleNamespace(engine=engine, settings=SimpleNamespace(program=SimpleNamespace(reception_prefix="TS")),
                           triage=load_triage(PROJECT_ROOT / "rules" / "triage.toml"))


def test_every_file_in_the_corpus_has_a_case():
    assert sorted(p.name for p in CORPUS.glob("*.eml")) == sorted(CASES)


def test_the_corpus_stays_small():
    assert sum(p.stat().st_size for p in CORPUS.glob("*.eml")) < 2 * 1024 * 1024


@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_file(services, name):
    mail_class, kind, subject, fragment, names = CASES[name]
    msg = mime.parse((CORPUS / name).read_bytes())
    verdict = classify(msg, services.triage, SERVICE, lambda data: read_form_safely(data, Limits()),
                       thread=thread_of(services, msg))
    assert (verdict.mail_class, verdict.kind) == (mail_class, kind), verdict.reason
    assert msg.subject == subject
    assert fragment in msg.text, msg.text
    assert [a.filename for a in msg.attachments] == names


def test_the_outlook_file_really_holds_cp932_extensions_in_jis():
    # ① is JIS 0x2D21 and 髙 0x7C62 after ESC $ B: what Outlook sends, which iso2022_jp cannot decode.
    raw = (CORPUS / "01-outlook-iso2022jp-cp932-application.eml").read_bytes()
    body = raw.split(b"Content-Transfer-Encoding: 7bit\r\n\r\n", 1)[1]
    assert b"\x1b$B-!" in body and b"|b" in body
    with pytest.raises(UnicodeDecodeError):
        body.split(b"\r\n")[2].decode("iso2022_jp")


def test_the_shift_jis_file_is_labelled_shift_jis_but_holds_cp932_only_bytes():
    raw = (CORPUS / "03-shift-jis-label-cp932.eml").read_bytes()
    assert b'charset="Shift_JIS"' in raw and "①㈱髙".encode("cp932") in raw
    with pytest.raises(UnicodeDecodeError):
        "①㈱髙".encode("cp932").decode("shift_jis")


def test_the_split_subject_is_cut_inside_a_character():
    import base64
    import re

    raw = (CORPUS / "04-split-encoded-words.eml").read_bytes().decode("ascii")
    words = re.findall(r"=\?ISO-2022-JP\?B\?([^?]+)\?=", raw)
    first = base64.b64decode(words[0])
    assert len(words) == 2 and len(first.split(b"\x1b$B", 1)[1]) % 2 == 1  # an odd byte: half a character


def test_the_signature_logo_is_inline_and_not_a_file(services):
    msg = mime.parse((CORPUS / "21-html-with-signature-logo.eml").read_bytes())
    assert [a.inline for a in msg.attachments] == [True]
    verdict = classify(msg, services.triage, SERVICE, lambda data: read_form_safely(data, Limits()))
    assert verdict.wrong_files == ()  # no "please send a PDF" for a logo


def test_the_stranger_with_an_excel_file_is_told_to_send_a_pdf(services):
    msg = mime.parse((CORPUS / "19-excel-from-stranger.eml").read_bytes())
    verdict = classify(msg, services.triage, SERVICE, lambda data: read_form_safely(data, Limits()),
                       thread=thread_of(services, msg))
    assert [a.filename for a in verdict.wrong_files] == ["会社概要.xlsx"]
