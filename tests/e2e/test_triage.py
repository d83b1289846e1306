"""Triage end to end: corpus mails in a real Dovecot mailbox -> one cycle -> the replies in a real SMTP server.

Each scenario is GIVEN / WHEN / THEN. The mails are the .eml files of
tests/corpus/ delivered byte for byte, and out-of-office replies as the
mailers of real applicants write them.
"""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session, select

from mailbot import daemon, samples
from mailbot.forms.fill import render_application, sample_values
from mailbot.intake.japanese import encode_jis
from mailbot.models import Application, Counter, HeldAddress, OutboxMessage, RawMessage

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
THREAD = "TS-2026-0001"  # the application the corpus's documents mail replies to

#: One mail of each class (and two more questions that differ in the reply they get).
ONE_OF_EACH = {
    "01-outlook-iso2022jp-cp932-application.eml": "application",
    "18-consultation-form.eml": "consultation",
    "17-documents-two-xlsx-in-thread.eml": "documents",
    "16-question-no-attachment.eml": "question",
    "19-excel-from-stranger.eml": "question",
    "21-html-with-signature-logo.eml": "question",
    "12-outlook-out-of-office-ja.eml": "automatic",
    "13-postfix-bounce-of-our-reply.eml": "automatic",
    "14-mailing-list-fml.eml": "automatic",
    "15-spam-mishodaku-kokoku.eml": "junk",
}


def raw_messages(services) -> list[RawMessage]:
    with Session(services.engine) as session:
        return list(session.exec(select(RawMessage).order_by(RawMessage.uid)).all())


def an_application_waiting_for_its_documents(services) -> None:
    """TS-2026-0001, adopted earlier this program year: the thread the documents mail replies in."""
    with Session(services.engine) as session:
        session.add(Application(reception_number=THREAD, state="documents_requested",
                                sender="tanaka@sample-seiki.example.jp", company_name="株式会社サンプル精機"))
        session.add(Counter(name="reception:TS:2026", value=1))  # the year's next number is 0002
        session.commit()


def test_one_mail_of_each_class_lands_in_its_class_and_only_the_expected_replies_go_out(
        services, mailbox, smtp_sink):
    """GIVEN an application, a consultation form, step-03 documents in an application's thread,
    three questions (no attachment, a stranger's Excel file, an HTML mail with a logo), an
    out-of-office reply, a bounce, a mailing-list mail and a spam, in the inbox
    WHEN one cycle runs
    THEN each message is stored with its class; the application gets its receipt, the stranger is
    asked for a PDF, the consultation form gets its desk receipt and the documents theirs, nobody
    else hears anything; every message left the inbox for the processed folder."""
    an_application_waiting_for_its_documents(services)
    for name in ONE_OF_EACH:
        mailbox.deliver((CORPUS / name).read_bytes())
    report = daemon.run_once(services)
    assert (report.poll.stored, report.poll.processed, report.poll.moved) == (10, 10, 10)
    rows = raw_messages(services)
    assert [(r.status, r.mail_class) for r in rows] == [("processed", c) for c in ONE_OF_EACH.values()]
    assert "documents in the thread of TS-2026-0001" in rows[2].reason
    assert [r.reason.split(":")[0] for r in rows[6:9]] == ["out_of_office", "bounce", "list"]
    replies = {tuple(sorted(m.rcpt_tos)): str(m.message["Subject"]) for m in smtp_sink.messages}
    receipt_to = ("contact@takahashi-seisakusho.example.jp", "takahashi@takahashi-seisakusho.example.jp")
    assert set(replies) == {receipt_to, ("nakamura@nakamura-kogyo.example.jp",),
                            ("hanako.sato@sample-seiki.co.jp",), ("tanaka@sample-seiki.example.jp",)}
    assert report.sent == 4
    with Session(services.engine) as session:
        kinds = sorted(o.kind for o in session.exec(select(OutboxMessage)).all())
        new_app = session.exec(select(Application).where(Application.reception_number != THREAD)).one()
    assert kinds == ["desk_received", "documents_received", "pdf_unreadable", "receipt"]
    assert new_app.state == "queued" and new_app.reception_number in replies[receipt_to]
    assert mailbox.count("INBOX") == 0
    assert mailbox.count(services.settings.imap.processed_folder) == 10


# --- twenty out-of-office replies --------------------------------------------------

SENDER = "tanaka@sample-seiki.example.jp"


def jis_word(text: str) -> str:
    import base64

    return f"=?ISO-2022-JP?B?{base64.b64encode(encode_jis(text)[0]).decode()}?="


def reply_mail(n: int, receipt_id: str, headers: list[str], subject: str, body: str = "",
               sender: str = SENDER) -> bytes:
    """An automatic reply to our receipt: the mailer's own headers, a JIS or UTF-8 text body."""
    lines = [f"From: {sender}", "To: chizai@example.jp", f"Subject: {subject}",
             "Date: Tue, 24 Nov 2026 11:00:00 +0900", f"Message-ID: <oof.{n}@sample-seiki.example.jp>",
             f"In-Reply-To: {receipt_id}", f"References: {receipt_id}", "MIME-Version: 1.0", *headers]
    if not any(h.lower().startswith("content-type") for h in headers):
        lines += ["Content-Type: text/plain; charset=ISO-2022-JP", "Content-Transfer-Encoding: 7bit"]
        body = encode_jis(body or "ただいま不在にしております。12月1日に戻ります。")[0].decode("ascii")
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


def with_the_application_quoted(receipt_id: str) -> bytes:
    """An out-of-office reply that attaches the mail it answers, application PDF and all."""
    quoted = samples.application_mail(render_application(sample_values()), sender=SENDER)
    body = (b"--OOF\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"
            b"I am out of the office until 1 December.\r\n"
            b"--OOF\r\nContent-Type: message/rfc822\r\n\r\n") + quoted + b"\r\n--OOF--\r\n"
    head = reply_mail(20, receipt_id, ["Auto-Submitted: auto-replied", 'Content-Type: multipart/mixed; boundary="OOF"'],
                      "Out of Office: application form")
    return head.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n" + body


def twenty_out_of_office_replies(receipt_id: str) -> list[bytes]:
    """The forms real mailers use (headers, subject prefixes, null sender), one mail each."""
    subject = jis_word("Re: 申請書を受け付けました")
    forms = [
        (["Auto-Submitted: auto-generated", "X-Auto-Response-Suppress: All"], jis_word("自動応答: 申請書を受け付けました")),  # Exchange
        (["X-Auto-Response-Suppress: DR, OOF, AutoReply"], jis_word("自動応答: 受付")),  # Outlook client rule
        (["Auto-Submitted: auto-replied"], jis_word("不在: Re: 受付")),  # Gmail vacation responder
        (["Return-Path: <>", "Auto-Submitted: auto-replied (vacation)"], "Re: receipt"),  # Sieve vacation
        (["Auto-Submitted: auto-replied (zimbra; vacation)"], "Re: receipt"),  # Zimbra
        ([], "Out of Office AutoReply: receipt"),  # Exchange 2003: the subject only
        ([], jis_word("【自動返信】お問い合わせありがとうございます")),  # Cybozu-style, no headers
        ([], jis_word("不在通知: 申請書を受け付けました")),  # Notes-style subject
        (["X-Autoreply: yes", "Auto-Submitted: auto-replied"], subject),  # cPanel / Plesk
        (["X-Autorespond: yes", "Precedence: junk"], subject),  # qmail autorespond
        (["X-Mail-Autoreply: yes"], subject),  # Japanese hosting mail
        (["X-AutoReply-From: tanaka@sample-seiki.example.jp"], subject),
        (["Precedence: auto_reply"], subject),
        (["Precedence: bulk"], jis_word("自動返信: 申請書")),  # Unix vacation(1)
        (["X-Autogenerated: Reply"], subject),
        (["X-FC-MachineGenerated: true"], subject),  # FirstClass
        ([], "Automatic reply: receipt"),  # Microsoft 365, English, the subject only
        (["Return-Path: <>"], jis_word("自動返信: 申請書")),  # a null sender and the subject
        ([], "=?UTF-8?B?44CQ6Ieq5YuV6L+U5L+h44CR?= " + subject),  # 【自動返信】 in UTF-8, then JIS
    ]
    mails = [reply_mail(n, receipt_id, headers, subj) for n, (headers, subj) in enumerate(forms)]
    return mails + [with_the_application_quoted(receipt_id)]


def test_twenty_out_of_office_replies_get_no_answer_and_hold_no_address(services, mailbox, smtp_sink):
    """GIVEN a receipt sent to an applicant, and twenty out-of-office replies to it in the forms
    real mailers use (one even attaching the application PDF it answers)
    WHEN one cycle runs
    THEN all twenty are recorded as automatic (out-of-office or robot), nothing more is sent,
    no application is made from the quoted PDF, and the applicant's address is not held."""
    mailbox.deliver(samples.application_mail(render_application(sample_values()), sender=SENDER))
    daemon.run_once(services)
    [receipt] = smtp_sink.messages
    replies = twenty_out_of_office_replies(receipt.message["Message-ID"])
    assert len(replies) == 20
    for raw in replies:
        mailbox.deliver(raw)
    report = daemon.run_once(services)
    assert (report.poll.processed, report.sent) == (20, 0) and len(smtp_sink.messages) == 1
    rows = raw_messages(services)[1:]
    assert [r.mail_class for r in rows] == ["automatic"] * 20
    kinds = {r.reason.split(":")[0] for r in rows}
    assert kinds == {"out_of_office", "robot"}, [r.reason for r in rows]
    with Session(services.engine) as session:
        assert session.exec(select(HeldAddress)).all() == []
        assert len(session.exec(select(Application)).all()) == 1
    assert mailbox.count("INBOX") == 0
