"""classify and the automatic-mail rules of rules/triage.toml (the real file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.errors import PdfError, RulesError
from mailbot.forms.reading import FormReading
from mailbot.intake.classify import automatic_reason, classify, load_triage
from mailbot.intake.message import Attachment, InboundMessage

RULES = Path(__file__).resolve().parents[2] / "rules" / "triage.toml"
SERVICE = "apply@jetro.example"


@pytest.fixture(scope="module")
def triage():
    return load_triage(RULES)


def inbound(sender: str = "tanaka@example.co.jp", headers: dict[str, str] | None = None,
            attachments: tuple[Attachment, ...] = (), **fields) -> InboundMessage:
    values = dict(message_id="<m@example.co.jp>", sender=sender, sender_name="田中", to=(SERVICE,),
                  cc=(), subject="申請", text="よろしくお願いします。", attachments=attachments,
                  in_reply_to=None, references=(), return_path=sender)
    all_headers = {k.lower(): (v,) for k, v in (headers or {}).items()}
    return InboundMessage(**{**values, **fields}, headers=all_headers)


def pdf(name: str, data: bytes) -> Attachment:
    return Attachment(filename=name, content_type="application/pdf", data=data)


@pytest.mark.parametrize(("headers", "reason"), [
    ({"Auto-Submitted": "auto-replied"}, "Auto-Submitted: auto-replied"),
    ({"Auto-Submitted": "auto-generated (vacation)"}, "Auto-Submitted: auto-generated (vacation)"),
    ({"X-Auto-Response-Suppress": "DR, OOF"}, "X-Auto-Response-Suppress: DR, OOF"),
    ({"X-Auto-Response-Suppress": "All"}, "X-Auto-Response-Suppress: All"),
    ({"Precedence": "bulk"}, "Precedence: bulk"),
    ({"Precedence": "auto_reply"}, "Precedence: auto_reply"),
    ({"List-Id": "<news.example.jp>"}, "List-Id: <news.example.jp>"),
    ({"List-Unsubscribe": "<mailto:u@x>"}, "List-Unsubscribe: <mailto:u@x>"),
    ({"X-ML-Name": "members"}, "X-ML-Name: members"),
    ({"X-Autoreply": "yes"}, "X-Autoreply: yes"),
    ({"X-Loop": "apply@jetro.example"}, "X-Loop: apply@jetro.example"),
    ({"X-Spam-Flag": "YES"}, "X-Spam-Flag: YES"),
])
def test_automatic_by_header(triage, headers, reason):
    assert automatic_reason(inbound(headers=headers), triage, SERVICE) == reason


@pytest.mark.parametrize("sender", ["MAILER-DAEMON@mx.example.jp", "postmaster@example.jp",
                                    "no-reply@example.jp", "noreply@example.jp", "bounces@list.jp",
                                    "owner-news@list.jp", "news-request@list.jp", "majordomo@list.jp"])
def test_automatic_robot_senders(triage, sender):
    assert automatic_reason(inbound(sender), triage, SERVICE) == f"robot sender: {sender}"


def test_our_own_address_and_null_sender_and_reports(triage):
    assert "own address" in automatic_reason(inbound("Apply@Jetro.example"), triage, SERVICE)
    assert automatic_reason(inbound(return_path=""), triage, SERVICE) == "Return-Path: <>"
    report = inbound(content_type="multipart/report")
    assert automatic_reason(report, triage, SERVICE) == "Content-Type: multipart/report"


@pytest.mark.parametrize("headers", [
    {}, {"Auto-Submitted": "no"}, {"Precedence": "first-class"}, {"X-Loop": "other@example.jp"},
    {"X-Auto-Response-Suppress": "DR, RN"}, {"X-Spam-Flag": "NO"},
])
def test_person_written_mail_is_not_automatic(triage, headers):
    assert automatic_reason(inbound(headers=headers), triage, SERVICE) is None


def reading(form: str | None) -> FormReading:
    return FormReading(form=form, source="text", pages=1, form_page=1 if form else None)


def fake_reader(results: dict[bytes, FormReading | PdfError]):
    """read_form stand-in: answers by PDF bytes, raises the PdfErrors it was given."""

    def read_form(data: bytes) -> FormReading:
        result = results[data]
        if isinstance(result, PdfError):
            raise result
        return result

    return read_form


def test_automatic_wins_over_an_application_pdf(triage):
    msg = inbound(headers={"Auto-Submitted": "auto-replied"}, attachments=(pdf("a.pdf", b"A"),))
    result = classify(msg, triage, SERVICE, fake_reader({b"A": reading("application")}))
    assert (result.mail_class, result.reason) == ("automatic", "Auto-Submitted: auto-replied")


def test_application_is_the_first_pdf_that_is_the_form(triage):
    broken = PdfError("encrypted", "暗号化されています")
    files = (pdf("other.pdf", b"O"), pdf("bad.pdf", b"B"), pdf("form.pdf", b"F"))
    reader = fake_reader({b"O": reading(None), b"B": broken, b"F": reading("application")})
    result = classify(inbound(attachments=files), triage, SERVICE, reader)
    assert (result.mail_class, result.attachment.filename) == ("application", "form.pdf")
    assert result.reading.form == "application" and result.pdf_error is broken


def test_pdf_that_is_not_the_form(triage):
    files = (pdf("brochure.pdf", b"X"),)
    result = classify(inbound(attachments=files), triage, SERVICE, fake_reader({b"X": reading("consultation")}))
    assert (result.mail_class, result.reason) == ("other", "PDF is not the application form")
    assert result.reading.form == "consultation" and result.attachment.filename == "brochure.pdf"


def test_unreadable_pdf_keeps_the_first_error(triage):
    first, second = PdfError("encrypted", "暗号化"), PdfError("broken", "破損")
    files = (pdf("1.pdf", b"1"), pdf("2.pdf", b"2"))
    result = classify(inbound(attachments=files), triage, SERVICE, fake_reader({b"1": first, b"2": second}))
    assert (result.mail_class, result.reason) == ("other", "PDF unreadable: encrypted")
    assert result.pdf_error is first and result.attachment.filename == "1.pdf"


def test_no_pdf_attachment(triage):
    doc = Attachment(filename="申請書.docx", content_type="application/octet-stream", data=b"PK")
    result = classify(inbound(attachments=(doc,)), triage, SERVICE, fake_reader({}))
    assert (result.mail_class, result.reason, result.attachment) == ("other", "no PDF attachment", None)


@pytest.mark.parametrize(("text", "message"), [
    ("presence_headers = 'List-Id'", "presence_headers: expected a list"),
    ("robot_sender = ['x']", "unknown key 'robot_sender'"),
    ("[[value_rules]]\nheader = 'Precedence'", "value_rules[0] (Precedence): give exactly one of"),
    ("[[value_rules]]\nany_of = ['bulk']", "value_rules[0].header"),
    ("[[value_rules]]\nheader = 'P'\nany_of = ['x']\nextra = 1", "value_rules[0]: unknown key 'extra'"),
    ("presence_headers = [", "not valid TOML"),
])
def test_bad_rules_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "triage.toml"
    path.write_text(text)
    with pytest.raises(RulesError, match="triage.toml") as caught:
        load_triage(path)
    assert message in str(caught.value)


def test_missing_rules_file(tmp_path):
    with pytest.raises(RulesError, match="not found"):
        load_triage(tmp_path / "nope.toml")
