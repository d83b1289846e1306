"""Step 03 end to end: adopted -> the applicant replies with the two Excel files -> receipt, or what is missing.

Real Dovecot mailbox, real SMTP sink, real database; the application is
received by the service (step 01) and adopted by staff (step 02) on the way,
and the applicant answers the adoption mail the way a mail client does:
"Re: <subject>", In-Reply-To and References, Japanese file names in RFC 2231.
"""

from __future__ import annotations

import io
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid

import openpyxl
from sqlmodel import Session, select

from mailbot import adoption, daemon
from mailbot.config import StaffSettings
from mailbot.db import transaction
from mailbot.models import Application, Transition
from mailbot.services import build
from tests.e2e.conftest import PROGRAM_ADDRESS
from tests.e2e.test_step01 import CONTACT, SENDER, application, body, subject

XLSX = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")
STAFF = "chizai-staff@example.jp"


def adopted(services, mailbox, smtp_sink):
    """Apply, get the receipt, be adopted by staff: the adoption mail as the applicant received it."""
    mailbox.deliver(application())
    daemon.run_once(services)
    with transaction(services.engine) as session:
        [outcome] = adoption.adopt_next(session, services, actor="kawano")
        assert outcome.app.state == "documents_requested"
    before = len(smtp_sink.messages)
    daemon.run_once(services)
    [mail] = smtp_sink.messages[before:]
    assert "採択" in subject(mail)
    return mail.message


def blanks(adoption_mail) -> dict[str, bytes]:
    return {part.get_filename(): part.get_content() for part in adoption_mail.iter_attachments()}


def filled(blank: bytes, value: str) -> bytes:
    """The blank with the first row filled in, as the company's Excel saves it."""
    book = openpyxl.load_workbook(io.BytesIO(blank))
    book.active["C5"] = value
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def answer(adoption_mail, files: dict[str, bytes]) -> tuple[bytes, str]:
    """The applicant's reply in the thread, with the files; (raw bytes, its Message-ID)."""
    msg = EmailMessage()
    msg["From"], msg["To"] = f"田中 花子 <{SENDER}>", PROGRAM_ADDRESS
    msg["Subject"] = "Re: " + str(adoption_mail["Subject"])
    msg["Message-ID"] = make_msgid(domain="sample-seiki.example.jp")
    msg["In-Reply-To"] = adoption_mail["Message-ID"]
    msg["References"] = f"{adoption_mail['References'] or ''} {adoption_mail['Message-ID']}".strip()
    msg.set_content("ジェトロ知的財産課 御中\n\n記入した書類を提出いたします。\n\n株式会社サンプル精機 田中")
    for name, data in files.items():
        msg.add_attachment(data, *XLSX, filename=name)
    raw = msg.as_bytes()
    assert b"filename*0*=utf-8''" in raw  # Japanese names travel as RFC 2231 (with continuations)
    return raw, msg["Message-ID"]


def state(services) -> str:
    with Session(services.engine) as session:
        return session.exec(select(Application)).one().state


def test_two_excel_files_in_the_thread_get_a_receipt_and_complete_step_03(services, mailbox, smtp_sink):
    """GIVEN an adopted application whose adoption mail carried the two blank documents
    WHEN the applicant replies in the thread with both filled in (Japanese file names)
    THEN one receipt in the thread names both files, and the application is documents_received."""
    adoption_mail = adopted(services, mailbox, smtp_sink)
    number = services_number(services)
    sent = blanks(adoption_mail)
    assert set(sent) == {"保有情報リスト.xlsx", "情報管理体制セルフチェックシート.xlsx"}
    files = {"【サンプル精機】保有情報リスト_記入済.xlsx": filled(sent["保有情報リスト.xlsx"], "技術情報"),
             "情報管理体制セルフチェックシート（サンプル精機）.xlsx":
                 filled(sent["情報管理体制セルフチェックシート.xlsx"], "○")}
    raw, their_id = answer(adoption_mail, files)
    mailbox.deliver(raw)
    before = len(smtp_sink.messages)
    report = daemon.run_once(services)
    assert (report.poll.processed, report.sent) == (1, 1)
    [receipt] = smtp_sink.messages[before:]
    assert sorted(receipt.rcpt_tos) == sorted([SENDER, CONTACT])
    assert number in subject(receipt) and "受領" in subject(receipt)
    assert receipt.message["In-Reply-To"] == their_id
    assert their_id in receipt.message["References"] and adoption_mail["Message-ID"] in receipt.message["References"]
    text = body(receipt)
    assert "保有情報リスト：【サンプル精機】保有情報リスト_記入済.xlsx" in text
    assert "情報管理体制セルフチェックシート：情報管理体制セルフチェックシート（サンプル精機）.xlsx" in text
    assert state(services) == "documents_received"
    with Session(services.engine) as session:
        last = session.exec(select(Transition).order_by(Transition.id.desc())).first()
    assert (last.from_state, last.to_state, last.actor) == ("documents_requested", "documents_received", "service")


def test_one_file_is_answered_with_the_missing_one_named(services, mailbox, smtp_sink):
    """GIVEN an adopted application
    WHEN the applicant replies with only the held-information list
    THEN the reply in the thread names the self-check sheet as still missing; the state stays."""
    adoption_mail = adopted(services, mailbox, smtp_sink)
    number = services_number(services)
    only_list = {"保有情報リスト.xlsx": filled(blanks(adoption_mail)["保有情報リスト.xlsx"], "営業情報")}
    raw, their_id = answer(adoption_mail, only_list)
    mailbox.deliver(raw)
    before = len(smtp_sink.messages)
    daemon.run_once(services)
    [reply] = smtp_sink.messages[before:]
    assert sorted(reply.rcpt_tos) == sorted([SENDER, CONTACT])
    assert number in subject(reply) and reply.message["In-Reply-To"] == their_id
    text = body(reply)
    assert "保有情報リスト：保有情報リスト.xlsx" in text
    assert "・情報管理体制セルフチェックシート" in text and "・保有情報リスト" not in text
    assert state(services) == "documents_requested"


def test_after_the_deadline_one_reminder_goes_out_and_staff_hear(make_settings, mailbox, smtp_sink):
    """GIVEN an application asked for its documents more than [workflow] documents_reminder_days ago
    WHEN cycles run
    THEN the applicant gets one reminder in the adoption thread and staff one note; later cycles send nothing."""
    settings = make_settings()
    services = build(settings.model_copy(update={"staff": StaffSettings(digest_to=[STAFF])}))
    adoption_mail = adopted(services, mailbox, smtp_sink)
    number = services_number(services)
    with transaction(services.engine) as session:
        asked = session.exec(select(Transition).where(Transition.to_state == "documents_requested")).one()
        asked.at -= timedelta(days=settings.workflow.documents_reminder_days, minutes=1)
    before = len(smtp_sink.messages)
    daemon.run_once(services)
    reminder, note = sorted(smtp_sink.messages[before:], key=lambda m: STAFF in m.rcpt_tos)
    assert sorted(reminder.rcpt_tos) == sorted([SENDER, CONTACT]) and note.rcpt_tos == [STAFF]
    assert number in subject(reminder) and reminder.message["In-Reply-To"] == adoption_mail["Message-ID"]
    assert reminder.message["Auto-Submitted"] == "auto-generated"
    assert "・保有情報リスト" in body(reminder) and "・情報管理体制セルフチェックシート" in body(reminder)
    assert number in subject(note) and f"mailbot documents {number}" in body(note)
    before = len(smtp_sink.messages)
    daemon.run_once(services)
    assert smtp_sink.messages[before:] == []


def services_number(services) -> str:
    with Session(services.engine) as session:
        return session.exec(select(Application)).one().reception_number
