"""The consultation desk end to end: a form mail in a real Dovecot mailbox -> one cycle -> the
answer in a real SMTP server; a second request from the same company under another spelling
gets the polite once-per-company answer, and staff a notice."""

from __future__ import annotations

from sqlmodel import Session

from mailbot import daemon, desk, samples
from mailbot.config import StaffSettings
from mailbot.forms.consultation import render_consultation, sample_consultation_values
from mailbot.services import build
from tests.e2e.test_step01 import body, subject

SENDER = "sato@sample-seiki.example.jp"
CONTACT = "hanako.sato@sample-seiki.example.jp"
STAFF = "chizai-staff@example.jp"


def consultation_mail(**overrides) -> bytes:
    pdf = render_consultation(sample_consultation_values(contact_email=CONTACT, **overrides))
    return samples.application_mail(pdf, sender=SENDER, subject="個別相談の申し込み",
                                    filename="個別相談申込書.pdf")


def requests(services):
    with Session(services.engine) as session:
        return desk.listing(session)


def test_one_consultation_per_company_even_under_another_spelling(make_settings, mailbox, smtp_sink):
    """GIVEN a consultation-desk form mail from 株式会社サンプル精機
    WHEN one cycle runs
    THEN the sender and the form's contact get a receipt with the request's own number, in its thread;
    GIVEN a second form from the same company written 株式会社ｻﾝﾌﾟﾙ精機 without a corporate number
    WHEN the next cycle runs
    THEN it gets the polite once-per-company answer and staff a notice naming both requests."""
    settings = make_settings()
    services = build(settings.model_copy(update={"staff": StaffSettings(digest_to=[STAFF])}))
    mailbox.deliver(consultation_mail())
    daemon.run_once(services)
    [receipt] = smtp_sink.messages
    [first] = requests(services)
    assert first.state == "received" and first.number.startswith("TS-C-")
    assert sorted(receipt.rcpt_tos) == sorted([SENDER, CONTACT])
    assert first.number in subject(receipt) and "受付" in subject(receipt)
    assert "佐藤 花子 様" in body(receipt) and "1社1回" in body(receipt)
    assert receipt.message["In-Reply-To"] == first.thread_message_id

    mailbox.deliver(consultation_mail(company_name="株式会社ｻﾝﾌﾟﾙ精機", corporate_number=None))
    daemon.run_once(services)
    answer, notice = sorted(smtp_sink.messages[1:], key=lambda m: STAFF in m.rcpt_tos)
    first, second = requests(services)
    assert (second.state, second.repeat_of) == ("refused", first.id)
    assert sorted(answer.rcpt_tos) == sorted([SENDER, CONTACT]) and second.number in subject(answer)
    assert "1社1回限り" in body(answer) and first.number in body(answer)
    assert answer.message["In-Reply-To"] == second.thread_message_id
    assert notice.rcpt_tos == [STAFF] and second.number in subject(notice)
    assert first.number in body(notice) and second.number in body(notice)
    assert notice.message["Auto-Submitted"] == "auto-generated"
