"""Step 01 end to end: a mail in a real Dovecot mailbox -> one cycle -> the reply in a real SMTP server.

Each scenario is GIVEN / WHEN / THEN; the mailbox, the SMTP server and the
database are real, the mails are built as companies send them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlmodel import Session, select

from mailbot import daemon, samples
from mailbot.forms.fill import render_application, sample_values
from mailbot.intake import poller
from mailbot.models import Application, OutboxMessage, RawMessage, Transition
from mailbot.services import build

SENDER = "tanaka@sample-seiki.example.jp"
CONTACT = "contact@sample-seiki.example.jp"


def application(seal="red", sender=SENDER, **overrides) -> bytes:
    values = sample_values(**{"contact_email": CONTACT, **overrides})
    return samples.application_mail(render_application(values, seal=seal), sender=sender)


def body(message) -> str:
    return message.message.get_body(("plain",)).get_content()


def subject(message) -> str:
    return str(message.message["Subject"])


def applications(services) -> list[Application]:
    with Session(services.engine) as session:
        return list(session.exec(select(Application).order_by(Application.id)).all())


def test_a_valid_application_gets_a_receipt_and_queues_first(services, mailbox, smtp_sink):
    """GIVEN a stamped, complete application in the inbox
    WHEN one cycle runs
    THEN the sender and the form's contact get one receipt with the reception number and
    place 1, the application is queued at position 1, and the mail is in the processed folder."""
    mailbox.deliver(application())
    report = daemon.run_once(services)
    assert (report.poll.stored, report.poll.processed, report.poll.moved, report.sent) == (1, 1, 1, 1)
    [reply] = smtp_sink.messages
    assert sorted(reply.rcpt_tos) == sorted([SENDER, CONTACT])
    [app] = applications(services)
    assert (app.state, app.position) == ("queued", 1)
    assert app.reception_number in subject(reply)
    assert app.reception_number in body(reply)
    assert re.search(r"1\s*番", body(reply)), body(reply)
    assert reply.message["Auto-Submitted"] == "auto-replied"
    assert reply.message["In-Reply-To"] is not None
    assert mailbox.count("INBOX") == 0
    assert mailbox.count(services.settings.imap.processed_folder) == 1


def test_a_missing_seal_is_sent_back_to_fix(services, mailbox, smtp_sink):
    """GIVEN a complete application without a seal
    WHEN one cycle runs
    THEN the reply asks for the seal, and the application holds no place."""
    mailbox.deliver(application(seal="none"))
    daemon.run_once(services)
    [reply] = smtp_sink.messages
    [app] = applications(services)
    assert (app.state, app.position) == ("needs_fix", None)
    assert app.reception_number in subject(reply)
    assert "押印" in body(reply)
    assert [p["code"] for p in app.problems] == ["seal_missing"]


def test_missing_fields_are_listed_one_by_one(services, mailbox, smtp_sink):
    """GIVEN an application without 企業名 and 電話番号, and an unticked pledge
    WHEN one cycle runs
    THEN the reply names each of them, and the application needs fixing."""
    mailbox.deliver(application(company_name=None, contact_phone=None, pledge_publicity=False))
    daemon.run_once(services)
    [reply] = smtp_sink.messages
    text = body(reply)
    assert "企業名" in text and "電話番号" in text and "広報" in text
    [app] = applications(services)
    codes = {p["code"] for p in app.problems}
    assert {"company_name_missing", "contact_phone_missing", "pledge_publicity_unchecked"} <= codes
    assert app.state == "needs_fix"


def test_a_mail_without_a_pdf_is_told_to_send_one(services, mailbox, smtp_sink):
    """GIVEN a mail whose only attachment is a Word file
    WHEN one cycle runs
    THEN the sender is told to send the stamped form as a PDF; no application is made."""
    mailbox.deliver(samples.attachment_mail(b"PK\x03\x04", "申請書.docx", "application", "msword",
                                            sender=SENDER))
    daemon.run_once(services)
    [reply] = smtp_sink.messages
    assert reply.rcpt_tos == [SENDER]
    assert "PDF" in body(reply) and "申請書.docx" in body(reply)
    assert applications(services) == []


def test_an_out_of_office_reply_is_never_answered(services, mailbox, smtp_sink):
    """GIVEN an automatic out-of-office reply in the inbox
    WHEN one cycle runs
    THEN nothing is sent, the mail is recorded as automatic and moved out of the inbox."""
    mailbox.deliver(samples.out_of_office_mail(sender=SENDER))
    report = daemon.run_once(services)
    assert report.sent == 0 and smtp_sink.messages == []
    with Session(services.engine) as session:
        [raw] = session.exec(select(RawMessage)).all()
    assert (raw.status, raw.mail_class, raw.moved) == ("processed", "automatic", True)
    assert mailbox.count(services.settings.imap.processed_folder) == 1


def test_past_the_cap_the_application_is_waitlisted(make_settings, mailbox, smtp_sink):
    """GIVEN a cap of 2 and three complete applications from three companies
    WHEN one cycle runs
    THEN the first two queue at 1 and 2 in arrival order and the third gets the waiting-list notice."""
    services = build(make_settings(cap=2))
    companies = [("株式会社一号", "1010401089234", "a@one.example.jp"),
                 ("株式会社二号", "6011001035920", "b@two.example.jp"),
                 ("株式会社三号", "8010001034955", "c@three.example.jp")]
    for name, number, sender in companies:
        mailbox.deliver(application(company_name=name, corporate_number=number, sender=sender,
                                    contact_email=sender))
    daemon.run_once(services)
    apps = applications(services)
    assert [(a.company_name, a.state, a.position) for a in apps] == [
        ("株式会社一号", "queued", 1), ("株式会社二号", "queued", 2), ("株式会社三号", "waitlisted", 1)]
    by_recipient = {m.rcpt_tos[0]: m for m in smtp_sink.messages}
    assert len(smtp_sink.messages) == 3
    assert "キャンセル待ち" in body(by_recipient["c@three.example.jp"]) or \
        "上限" in body(by_recipient["c@three.example.jp"])
    assert apps[2].reception_number in subject(by_recipient["c@three.example.jp"])


def test_the_queue_follows_the_server_arrival_time_not_the_delivery_order(services, mailbox):
    """GIVEN two applications APPENDed in the reverse order of their INTERNALDATE
    WHEN one cycle runs
    THEN the one the server received first is first in the queue."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    mailbox.deliver(application(company_name="株式会社あと", corporate_number="6011001035920",
                                sender="late@example.jp"), at=now - timedelta(minutes=1))
    mailbox.deliver(application(company_name="株式会社さき", corporate_number="1010401089234",
                                sender="early@example.jp"), at=now - timedelta(minutes=5))
    daemon.run_once(services)
    queue = sorted(applications(services), key=lambda a: a.position)
    assert [a.company_name for a in queue] == ["株式会社さき", "株式会社あと"]


def test_outside_the_application_period_the_sender_is_told(make_settings, mailbox, smtp_sink):
    """GIVEN a program whose application period ended yesterday
    WHEN a complete application arrives
    THEN it is declined with the 'closed' notice giving the dates, and holds no place."""
    yesterday = date.today() - timedelta(days=1)
    services = build(make_settings(opens=yesterday - timedelta(days=30), closes=yesterday))
    mailbox.deliver(application())
    daemon.run_once(services)
    [reply] = smtp_sink.messages
    [app] = applications(services)
    assert (app.state, app.position) == ("declined", None)
    assert yesterday.strftime("%Y") in body(reply)


def test_running_twice_sends_nothing_twice(services, mailbox, smtp_sink):
    """GIVEN an application processed and answered by one cycle
    WHEN a second cycle runs
    THEN nothing new is stored, processed or sent."""
    mailbox.deliver(application())
    daemon.run_once(services)
    second = daemon.run_once(services)
    assert (second.poll.stored, second.poll.processed, second.sent) == (0, 0, 0)
    assert len(smtp_sink.messages) == 1


def test_a_crash_before_the_mailbox_move_does_not_answer_twice(services, mailbox, smtp_sink, monkeypatch):
    """GIVEN a cycle that dies after the database commit but before moving the mail
    WHEN the next cycle runs
    THEN the mail is moved without being processed or answered again."""
    mailbox.deliver(application())

    def crash(*_args):
        raise SystemExit("killed between commit and move")

    monkeypatch.setattr(poller, "move_done", crash)
    try:
        daemon.run_once(services)
    except SystemExit:
        pass
    monkeypatch.undo()
    assert mailbox.count("INBOX") == 1
    report = daemon.run_once(services)
    assert (report.poll.stored, report.poll.processed, report.poll.moved) == (0, 0, 1)
    assert len(smtp_sink.messages) == 1
    assert mailbox.count("INBOX") == 0
    with Session(services.engine) as session:
        assert len(session.exec(select(OutboxMessage)).all()) == 1


def test_a_corrected_form_in_the_same_thread_keeps_its_reception_number(services, mailbox, smtp_sink):
    """GIVEN an application sent back for a missing seal
    WHEN the company replies in the thread with the stamped form
    THEN the same reception number is queued, and the history shows both steps."""
    mailbox.deliver(application(seal="none"))
    daemon.run_once(services)
    [fix_request] = smtp_sink.messages
    corrected = samples.application_mail(
        render_application(sample_values(contact_email=CONTACT)), sender=SENDER,
        subject="Re: " + subject(fix_request), in_reply_to=fix_request.message["Message-ID"])
    mailbox.deliver(corrected)
    daemon.run_once(services)
    [app] = applications(services)
    assert (app.state, app.position) == ("queued", 1)
    assert app.reception_number in subject(smtp_sink.messages[1])
    with Session(services.engine) as session:
        steps = session.exec(select(Transition.to_state).where(
            Transition.application_id == app.id).order_by(Transition.id)).all()
    assert steps == ["received", "needs_fix", "queued"]


def test_the_command_line_runs_one_cycle(make_settings, mailbox, smtp_sink, tmp_path):
    """GIVEN a config file for the test mailbox
    WHEN `mailbot --config FILE run --once` and then `mailbot status --json` run
    THEN the receipt is sent and status lists the application at position 1."""
    settings = make_settings()
    config_file = tmp_path / "config.toml"
    config_file.write_text(_toml(settings), encoding="utf-8")
    mailbox.deliver(application())
    cli = [sys.executable, "-m", "mailbot.cli", "--config", str(config_file)]
    run = subprocess.run([*cli, "run", "--once"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "sent=1" in run.stdout
    status = subprocess.run([*cli, "status", "--json"], capture_output=True, text=True, timeout=60)
    assert '"position": 1' in status.stdout and '"state": "queued"' in status.stdout
    assert len(smtp_sink.messages) == 1


def _toml(settings) -> str:
    lines = []
    for section in ("imap", "smtp", "database", "program", "service"):
        lines.append(f"[{section}]")
        for key, value in getattr(settings, section).model_dump().items():
            if value is not None:  # TOML has no null: an absent key takes the default
                lines.append(f"{key} = {_value(value)}")
    return "\n".join(lines) + "\n"


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) or isinstance(value, date):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def test_a_mail_that_cannot_be_parsed_is_quarantined_not_lost(services, mailbox, smtp_sink):
    """GIVEN a message with headers but no sender at all, next to a valid application
    WHEN one cycle runs
    THEN the broken one is kept raw with its error and moved to the quarantine folder,
    nobody is answered about it, and the application behind it is still processed."""
    broken = b"Subject: =?ISO-2022-JP?B?GyRCJDMbKEI=?=\r\nX-Nothing: here\r\n\r\nbody\r\n"
    mailbox.deliver(broken)
    mailbox.deliver(application())
    daemon.run_once(services)
    with Session(services.engine) as session:
        rows = session.exec(select(RawMessage).order_by(RawMessage.arrived_at)).all()
    assert [r.status for r in rows] == ["quarantined", "processed"]
    assert rows[0].raw == broken and "ParseError" in rows[0].error
    assert mailbox.count(services.settings.imap.quarantine_folder) == 1
    assert mailbox.count(services.settings.imap.processed_folder) == 1
    assert len(smtp_sink.messages) == 1 and smtp_sink.messages[0].rcpt_tos[0] == SENDER


def test_a_bug_in_a_handler_quarantines_the_mail_and_the_rest_go_on(services, mailbox, smtp_sink,
                                                                      monkeypatch):
    """GIVEN a handler that crashes on out-of-office mail (a bug), and an application after it
    WHEN one cycle runs
    THEN the crashing mail is quarantined with the error, nothing it did is kept, and the
    application is still answered."""
    from mailbot import pipeline

    def broken_handler(handling, verdict):
        handling.session.add(OutboxMessage(kind="x", to_addrs=["x@example.jp"], subject="x",
                                           body="x", message_id="<x@example.jp>"))
        raise KeyError("a bug")

    monkeypatch.setitem(pipeline.HANDLERS, "automatic", broken_handler)
    mailbox.deliver(samples.out_of_office_mail(sender="away@example.jp"))
    mailbox.deliver(application())
    daemon.run_once(services)
    with Session(services.engine) as session:
        rows = session.exec(select(RawMessage).order_by(RawMessage.arrived_at)).all()
        kinds = session.exec(select(OutboxMessage.kind)).all()
    assert rows[0].status == "quarantined" and "KeyError" in rows[0].error
    assert kinds == ["receipt"]  # the broken handler's half-work was rolled back
    assert [m.rcpt_tos[0] for m in smtp_sink.messages] == [SENDER]


def test_a_scan_that_this_machine_cannot_ocr_is_kept_for_staff_not_bounced(services, mailbox, smtp_sink):
    """GIVEN a machine without OCR (the reader says ocr_unavailable)
    WHEN an application arrives
    THEN the applicant is not told their PDF is bad: the mail is quarantined for staff."""
    from mailbot.errors import PdfError

    def no_ocr(_data):
        raise PdfError("ocr_unavailable", "OCRが利用できません。")

    services.read_form = no_ocr
    mailbox.deliver(application())
    daemon.run_once(services)
    with Session(services.engine) as session:
        [raw] = session.exec(select(RawMessage)).all()
    assert raw.status == "quarantined" and "ocr_unavailable" in raw.error
    assert smtp_sink.messages == []
    assert mailbox.count(services.settings.imap.quarantine_folder) == 1


def test_fillable_and_scanned_applications_are_received_like_text_ones(services, mailbox, smtp_sink):
    """GIVEN a fillable PDF (stamp annotation) and a printed-stamped-scanned PDF, two companies
    WHEN one cycle runs
    THEN both are read (acroform, OCR), queued in arrival order and sent a receipt."""
    from mailbot.forms.fillable import render_fillable
    from mailbot.forms.scan import simulate_scan

    fillable = sample_values(company_name="株式会社フィラブル", corporate_number="1010401089234",
                             contact_email="a@fillable.example.jp")
    scanned = sample_values(contact_email="b@scan.example.jp")
    mailbox.deliver(samples.application_mail(render_fillable(fillable, seal="stamp_annotation"),
                                             sender="a@fillable.example.jp"))
    mailbox.deliver(samples.application_mail(
        simulate_scan(render_application(scanned), dpi=200, angle=0.8, jpeg_quality=80),
        sender="b@scan.example.jp"))
    daemon.run_once(services)
    apps = applications(services)
    assert [(a.company_name, a.state, a.position) for a in apps] == [
        ("株式会社フィラブル", "queued", 1), (scanned["company_name"], "queued", 2)]
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.messages) == ["a@fillable.example.jp", "b@scan.example.jp"]
    assert all("受付" in subject(m) for m in smtp_sink.messages)


def test_mail_from_before_the_go_live_cut_off_is_recorded_but_not_answered(make_settings, mailbox, smtp_sink):
    """GIVEN a go-live cut-off an hour ago, one application from before it and one after
    WHEN one cycle runs
    THEN only the later one is answered and queued; the earlier is stored and moved, unanswered."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    services = build(make_settings())
    services.settings = services.settings.model_copy(
        update={"service": services.settings.service.model_copy(update={"answer_from": now - timedelta(hours=1)})})
    mailbox.deliver(application(company_name="株式会社むかし", corporate_number="1010401089234",
                                sender="old@example.jp"), at=now - timedelta(days=2))
    mailbox.deliver(application(sender="new@example.jp"), at=now - timedelta(minutes=5))
    daemon.run_once(services)
    assert [m.rcpt_tos[0] for m in smtp_sink.messages] == ["new@example.jp"]
    assert [a.sender for a in applications(services)] == ["new@example.jp"]
    with Session(services.engine) as session:
        old = session.exec(select(RawMessage).where(RawMessage.sender == "old@example.jp")).one()
    assert old.status == "processed" and old.moved and "go-live" in old.reason


def test_no_more_than_the_cap_of_replies_go_to_one_address(make_settings, mailbox, smtp_sink):
    """GIVEN a cap of 3 automatic replies per address, and 5 Word files from one sender (a loop or a flood)
    WHEN one cycle runs
    THEN 3 replies are sent, the other 2 mails are recorded with the reason, nothing is lost."""
    services = build(make_settings())
    services.settings = services.settings.model_copy(
        update={"service": services.settings.service.model_copy(update={"max_replies_per_recipient": 3})})
    for _ in range(5):
        mailbox.deliver(samples.attachment_mail(b"PK\x03\x04", "申請書.docx", "application", "msword",
                                                sender="robot@example.jp"))
    report = daemon.run_once(services)
    assert report.sent == 3 and len(smtp_sink.messages) == 3
    with Session(services.engine) as session:
        rows = session.exec(select(RawMessage).order_by(RawMessage.arrived_at)).all()
    assert [r.status for r in rows] == ["processed"] * 5
    assert ["withheld" in r.reason for r in rows] == [False, False, False, True, True]


def test_a_person_reading_the_mailbox_changes_nothing(services, mailbox, smtp_sink, imap_settings):
    """GIVEN an application that a staff member opened (\\Seen) before the service polled
    WHEN one cycle runs
    THEN it is processed and answered all the same."""
    from imapclient import IMAPClient

    mailbox.deliver(application())
    with IMAPClient(imap_settings.host, imap_settings.port, ssl=False) as client:
        client.login(imap_settings.username, imap_settings.password)
        client.select_folder("INBOX")
        client.add_flags(client.search("ALL"), [b"\\Seen"])
    daemon.run_once(services)
    assert len(smtp_sink.messages) == 1 and applications(services)[0].state == "queued"


def test_a_quarantined_mail_is_processed_again_once_the_cause_is_fixed(services, mailbox, smtp_sink):
    """GIVEN an application quarantined because OCR was missing on this machine
    WHEN OCR is back and staff run `reprocess` on it
    THEN it is received from the stored bytes like any other: queued, receipt sent once."""
    from mailbot import quarantine
    from mailbot.errors import MailbotError, PdfError

    reader = services.read_form

    def no_ocr(_data):
        raise PdfError("ocr_unavailable", "OCRが利用できません。")

    services.read_form = no_ocr
    mailbox.deliver(application())
    daemon.run_once(services)
    [listed] = quarantine.listing(services)
    assert "ocr_unavailable" in listed["error"] and smtp_sink.messages == []
    services.read_form = reader
    assert quarantine.reprocess(services, listed["id"]) == "application"
    assert [(a.state, a.position) for a in applications(services)] == [("queued", 1)]
    assert len(smtp_sink.messages) == 1 and quarantine.listing(services) == []
    with pytest.raises(MailbotError, match="not quarantined"):
        quarantine.reprocess(services, listed["id"])


def test_an_application_zipped_by_the_company_is_received(services, mailbox, smtp_sink):
    """GIVEN the stamped PDF sent inside a zip (as some companies' mail systems do)
    WHEN one cycle runs
    THEN it is read from the zip, queued and answered like any application."""
    from tests.intake.test_archives import mail_with, windows_zip

    raw = mail_with(windows_zip("申請書.pdf", render_application(sample_values(contact_email=CONTACT))))
    mailbox.deliver(raw)
    daemon.run_once(services)
    assert [(a.state, a.position) for a in applications(services)] == [("queued", 1)]
    [reply] = smtp_sink.messages
    assert sorted(reply.rcpt_tos) == sorted(["tanaka@example.co.jp", CONTACT])


def bounce_of(reply, failed: str, status: str = "5.1.1") -> bytes:
    """A delivery-status notification as Postfix sends it (RFC 3464), byte for byte."""
    text = f"""From: MAILER-DAEMON@mx.example.jp (Mail Delivery System)
To: chizai@example.jp
Subject: Undelivered Mail Returned to Sender
Message-ID: <bounce.{status}@mx.example.jp>
Return-Path: <>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"

--B1
Content-Type: text/plain; charset=us-ascii

This is the mail system. Your message could not be delivered.

--B1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.jp

Final-Recipient: rfc822; {failed}
Action: failed
Status: {status}

--B1
Content-Type: text/rfc822-headers

Message-ID: {reply.message["Message-ID"]}
Subject: receipt

--B1--
"""
    return text.replace("\n", "\r\n").encode()


def test_a_bounce_holds_the_address_and_no_more_mail_goes_there(services, mailbox, smtp_sink):
    """GIVEN a receipt sent to the sender and the form's contact, and a hard bounce for the contact
    WHEN the bounce is processed and the company writes again
    THEN the bounce is not answered, the contact is held, and the next reply goes to the sender only."""
    from mailbot.models import HeldAddress

    mailbox.deliver(application())
    daemon.run_once(services)
    [receipt] = smtp_sink.messages
    mailbox.deliver(bounce_of(receipt, CONTACT))
    mailbox.deliver(application())  # the same complete application again
    daemon.run_once(services)
    with Session(services.engine) as session:
        [hold] = session.exec(select(HeldAddress)).all()
        bounce = session.exec(select(RawMessage).where(RawMessage.sender == "MAILER-DAEMON@mx.example.jp")).one()
    assert hold.address == CONTACT and "bounce of outbox" in hold.reason
    assert bounce.mail_class == "automatic" and f"held {CONTACT}" in bounce.reason
    assert len(smtp_sink.messages) == 2 and smtp_sink.messages[1].rcpt_tos == [SENDER]
    from mailbot import bounces
    from mailbot.db import transaction

    with transaction(services.engine) as session:
        assert bounces.release(session, CONTACT.upper()) is True
    with transaction(services.engine) as session:
        assert bounces.listing(session) == [] and bounces.release(session, CONTACT) is False


def test_a_temporary_delivery_failure_holds_nothing(services, mailbox, smtp_sink):
    from mailbot.models import HeldAddress

    mailbox.deliver(application())
    daemon.run_once(services)
    mailbox.deliver(bounce_of(smtp_sink.messages[0], CONTACT, status="4.2.2"))
    daemon.run_once(services)
    with Session(services.engine) as session:
        assert session.exec(select(HeldAddress)).all() == []
