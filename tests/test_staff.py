"""Staff notices: the templates, who gets them, threading, and the bounce notice with its loop guard.

The database is a real SQLite file and the templates are the shipped ones;
sending is the outbox's business (tests/test_outbox.py, tests/e2e/).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timezone

import pytest
from sqlmodel import select

from mailbot import PROJECT_ROOT, bounces, config, outbox, staff
from mailbot.db import transaction
from mailbot.errors import ConfigError
from mailbot.models import Application, HeldAddress, OutboxMessage, RawMessage
from mailbot.services import build

FROM = "chizai@example.jp"
STAFF = ["staff1@example.jp", "staff2@example.jp"]
APPLICANT = "tanaka@sample-seiki.example.jp"
NUMBER = "TS-2026-0007"


def make_services(tmp_path, digest_to=STAFF, **service):
    """Services on a throwaway database; the IMAP server is never contacted here."""
    data = {
        "imap": {"host": "127.0.0.1", "port": 1, "username": "chizai", "security": "none"},
        "smtp": {"host": "127.0.0.1", "port": 1, "security": "none", "from_address": FROM},
        "database": {"url": f"sqlite:///{tmp_path / 'mailbot.db'}"},
        "program": {"opens": date(2026, 5, 27), "closes": date(2027, 1, 31)},
        "staff": {"digest_to": list(digest_to)},
        "service": {"rules_dir": str(PROJECT_ROOT / "rules"),
                    "templates_dir": str(PROJECT_ROOT / "templates"), **service},
    }
    return build(config.validate(data, base_dir=tmp_path, origin="test"))


@pytest.fixture
def services(tmp_path):
    return make_services(tmp_path)


def rows(services, kind_prefix: str = "") -> list[OutboxMessage]:
    with transaction(services.engine) as session:
        found = session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    return [r for r in found if r.kind.startswith(kind_prefix)]


# --- the templates -------------------------------------------------------------------

FAILURE = bounces.Failure(APPLICANT, "5.1.1", "smtp; 550 5.1.1 <tanaka@sample-seiki.example.jp>: User unknown")
REPLY = OutboxMessage(kind="receipt", to_addrs=[APPLICANT], subject="【事業】申請書受付のお知らせ",
                      body="", message_id="<r1@example.jp>")
CONTEXTS = {
    staff.BOUNCE: {
        "failures": [FAILURE], "reply": REPLY, "reply_sent_at": "2026年6月1日（月）10:00",
        "reception_number": NUMBER, "company_name": "株式会社サンプル精機",
        "bounce_sender": "MAILER-DAEMON@mx.example.jp", "bounce_arrived_at": None, "raw_id": 12},
    staff.HEALTH_ALERT: {
        "folder": "INBOX", "server": "imap.example.jp:993", "username": "chizai", "minutes": 30,
        "last_ok": "2026年6月1日（月）10:00", "first_failure": None,
        "error": "connect imap.example.jp:993: [Errno 111] Connection refused"},
    staff.HEALTH_RECOVERED: {
        "folder": "INBOX", "server": "imap.example.jp:993", "alerted_at": "2026年6月1日（月）10:31",
        "down_from": "2026年6月1日（月）10:00", "down_to": "2026年6月1日（月）11:05", "down_for": "1時間5分"},
}
#: What staff must find in each notice: the facts and the exact command to run next.
MUST_SAY = {
    staff.BOUNCE: [APPLICANT, "5.1.1", "User unknown", NUMBER, "株式会社サンプル精機", "申請書受付のお知らせ",
                   "mailbot held\n", f"mailbot held --release {APPLICANT}"],
    staff.HEALTH_ALERT: ["30分", "imap.example.jp:993", "Connection refused", "2026年6月1日（月）10:00",
                         "mailbot run --once", "mailbot status"],
    staff.HEALTH_RECOVERED: ["10:00", "11:05", "1時間5分", "mailbot status", "mailbot quarantined"],
}


@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_every_staff_template_renders_what_staff_need(services, name):
    mail = services.renderer.render(name, program=services.settings.program, **CONTEXTS[name])
    assert mail.subject.startswith("【mailbot】") and "\n" not in mail.subject
    for text in MUST_SAY[name]:
        assert text in mail.body, text
    assert "{{" not in mail.body and "None" not in mail.body


def test_the_bounce_notice_without_an_application_leaves_the_application_out(services):
    context = {**CONTEXTS[staff.BOUNCE], "reception_number": None, "company_name": None,
               "failures": [bounces.Failure(APPLICANT)]}
    mail = services.renderer.render(staff.BOUNCE, program=services.settings.program, **context)
    assert "受付番号" not in mail.subject and "■ 申請" not in mail.body
    assert "ステータス：（記載なし）" in mail.body and "None" not in mail.body


def test_the_alert_for_a_mailbox_never_reached_says_so(services):
    context = {**CONTEXTS[staff.HEALTH_ALERT], "last_ok": None, "error": None,
               "first_failure": "2026年6月1日（月）09:00"}
    mail = services.renderer.render(staff.HEALTH_ALERT, program=services.settings.program, **context)
    assert "一度も受信できていません" in mail.body and "09:00" in mail.body and "記録なし" in mail.body


# --- notify: who, threading, headers ---------------------------------------------------


def test_a_notice_goes_to_every_staff_address_threaded_by_topic(services):
    with transaction(services.engine) as session:
        first = staff.notify(session, services, staff.HEALTH_ALERT, topic="health:INBOX",
                             **CONTEXTS[staff.HEALTH_ALERT])
        second = staff.notify(session, services, staff.HEALTH_RECOVERED, topic="health:INBOX",
                              **CONTEXTS[staff.HEALTH_RECOVERED])
        other = staff.notify(session, services, staff.BOUNCE, topic=f"bounce:{APPLICANT}",
                             **CONTEXTS[staff.BOUNCE])
    root = staff.thread_root("health:INBOX", FROM)
    assert first.to_addrs == STAFF and first.kind == staff.HEALTH_ALERT
    assert first.in_reply_to == root and first.references == [root] and second.references == [root]
    assert other.references != [root] and root.endswith("@example.jp>")
    assert root not in {first.message_id, second.message_id, other.message_id}
    message = outbox.build_email(first, services.settings.smtp)
    assert message["Auto-Submitted"] == "auto-generated" and message["X-Auto-Response-Suppress"] == "All"
    assert all(staff.is_notice(r) for r in (first, second, other))


def test_a_held_staff_address_is_left_out_and_none_left_means_no_mail(services, caplog):
    with transaction(services.engine) as session:
        bounces.hold(session, STAFF[0].upper(), "bounce of outbox 1", None, None)
    with transaction(services.engine) as session:
        row = staff.notify(session, services, staff.HEALTH_ALERT, topic="t", **CONTEXTS[staff.HEALTH_ALERT])
    assert row.to_addrs == [STAFF[1]]
    with transaction(services.engine) as session:
        bounces.hold(session, STAFF[1], "bounce of outbox 2", None, None)
    with caplog.at_level(logging.WARNING, logger="mailbot.staff"), transaction(services.engine) as session:
        assert staff.notify(session, services, staff.HEALTH_ALERT, topic="t",
                            **CONTEXTS[staff.HEALTH_ALERT]) is None
    assert "not mailed" in caplog.text and len(rows(services)) == 1


def test_no_staff_configured_means_no_mail_and_a_warning(tmp_path, caplog):
    services = make_services(tmp_path, digest_to=[])
    with caplog.at_level(logging.WARNING, logger="mailbot.staff"), transaction(services.engine) as session:
        assert staff.notify(session, services, staff.HEALTH_ALERT, topic="t",
                            **CONTEXTS[staff.HEALTH_ALERT]) is None
    assert "digest_to" in caplog.text and rows(services) == []


def test_only_staff_templates_are_staff_notices(services):
    with transaction(services.engine) as session, pytest.raises(ValueError, match="not a staff template"):
        staff.notify(session, services, "receipt", topic="t")


@pytest.mark.parametrize("seconds, text", [(59, "1分未満"), (65 * 60, "1時間5分"), (3600, "1時間"),
                                           (26 * 3600 + 60, "1日2時間1分")])
def test_durations_read_as_japanese(seconds, text):
    assert staff.duration(seconds) == text


def test_times_are_shown_in_tokyo():
    assert staff.when(datetime(2026, 6, 1, 15, 30, tzinfo=timezone.utc)) == "2026年6月2日（火） 00:30"
    assert staff.when(None) is None


# --- the bounce notice -----------------------------------------------------------------


def dsn(message_id: str, *recipients: tuple[str, str, str | None], references: str = "") -> bytes:
    """A Postfix-style delivery-status notification quoting our message's headers."""
    blocks = "".join(
        f"Final-Recipient: rfc822; {address}\nAction: {'failed' if status[0] == '5' else 'delayed'}\n"
        f"Status: {status}\n" + (f"Diagnostic-Code: smtp; {diag}\n" if diag else "") + "\n"
        for address, status, diag in recipients)
    text = f"""From: MAILER-DAEMON@mx.example.jp (Mail Delivery System)
To: {FROM}
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn.{abs(hash((message_id, recipients)))}@mx.example.jp>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.jp. Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.jp

{blocks}--B
Content-Type: text/rfc822-headers

From: {FROM}
Message-ID: {message_id}
{references}Subject: receipt

--B--
"""
    return text.replace("\n", "\r\n").encode()


_uid = iter(range(1, 10_000))


def store(session, data: bytes) -> RawMessage:
    raw = RawMessage(folder="INBOX", uidvalidity=1, uid=next(_uid), size=len(data), sha256="x", raw=data,
                     arrived_at=datetime(2026, 6, 1, 1, 0, tzinfo=timezone.utc),
                     sender="MAILER-DAEMON@mx.example.jp")
    session.add(raw)
    session.flush()
    return raw


def sent_receipt(services, to=(APPLICANT,)) -> OutboxMessage:
    """An application with its receipt in the outbox, as reception leaves them."""
    with transaction(services.engine) as session:
        app = Application(reception_number=NUMBER, state="queued", company_name="株式会社サンプル精機",
                          sender=APPLICANT, contact_email=APPLICANT)
        session.add(app)
        session.flush()
        return outbox.enqueue(session, kind="receipt", to=list(to), subject="【事業】申請書受付のお知らせ",
                              body="x", from_address=FROM, application_id=app.id)


def bounce(services, data: bytes, with_services: bool = True) -> str | None:
    with transaction(services.engine) as session:
        return bounces.handle(session, store(session, data), services if with_services else None)


def held_addresses(services) -> list[str]:
    with transaction(services.engine) as session:
        return sorted(session.exec(select(HeldAddress.address)).all())


def test_a_hard_bounce_holds_the_address_and_tells_staff_once(services):
    receipt = sent_receipt(services)
    note = bounce(services, dsn(receipt.message_id, (APPLICANT, "5.1.1", "550 5.1.1 User unknown")))
    assert held_addresses(services) == [APPLICANT]
    assert note.endswith("staff notified") and f"held {APPLICANT}" in note
    [notice] = rows(services, staff.PREFIX)
    assert notice.kind == staff.BOUNCE and notice.to_addrs == STAFF
    assert notice.application_id is None  # not part of the applicant's thread
    for text in [APPLICANT, "5.1.1", "550 5.1.1 User unknown", NUMBER, "株式会社サンプル精機",
                 "申請書受付のお知らせ", f"mailbot held --release {APPLICANT}"]:
        assert text in notice.body, text
    assert NUMBER in notice.subject and APPLICANT in notice.subject
    assert notice.references == [staff.thread_root(f"bounce:{APPLICANT}", FROM)]


def test_a_second_bounce_for_a_held_address_sends_no_second_notice(services):
    receipt = sent_receipt(services)
    bounce(services, dsn(receipt.message_id, (APPLICANT, "5.1.1", None)))
    note = bounce(services, dsn(receipt.message_id, (APPLICANT, "5.2.1", "mailbox disabled")))
    assert note.endswith("already held: no new staff notice")
    assert len(rows(services, staff.PREFIX)) == 1


def test_a_bounce_of_a_staff_notice_is_recorded_never_noticed(services):
    receipt = sent_receipt(services)
    bounce(services, dsn(receipt.message_id, (APPLICANT, "5.1.1", None)))
    [notice] = rows(services, staff.PREFIX)
    # The staff notice refers to its thread root; the report quotes it along with the notice's own id.
    note = bounce(services, dsn(notice.message_id, (STAFF[0], "5.1.1", None),
                                references=f"References: {' '.join(notice.references)}\n"))
    assert "loop guard" in note and STAFF[0] in held_addresses(services)
    assert len(rows(services, staff.PREFIX)) == 1


def test_only_the_permanently_failed_recipients_are_held_and_reported(services):
    contact = "contact@sample-seiki.example.jp"
    receipt = sent_receipt(services, to=(APPLICANT, contact))
    bounce(services, dsn(receipt.message_id, (APPLICANT, "4.2.2", "mailbox full"),
                         (contact, "5.1.1", "User unknown")))
    assert held_addresses(services) == [contact]
    [notice] = rows(services, staff.PREFIX)
    assert f"mailbot held --release {contact}" in notice.body and "--release " + APPLICANT not in notice.body


def test_a_temporary_failure_holds_nothing_and_tells_nobody(services):
    receipt = sent_receipt(services)
    note = bounce(services, dsn(receipt.message_id, (APPLICANT, "4.2.2", "mailbox full")))
    assert note.startswith("temporary") and held_addresses(services) == []
    assert rows(services, staff.PREFIX) == []


def test_a_bounce_of_someone_elses_mail_is_left_alone(services):
    sent_receipt(services)
    assert bounce(services, dsn("<not-ours@elsewhere.example>", (APPLICANT, "5.1.1", None))) is None
    assert held_addresses(services) == [] and rows(services, staff.PREFIX) == []


def test_no_staff_address_still_holds_and_says_nobody_was_told(tmp_path):
    services = make_services(tmp_path, digest_to=[])
    receipt = sent_receipt(services)
    note = bounce(services, dsn(receipt.message_id, (APPLICANT, "5.1.1", None)))
    assert note.endswith("no staff address: not notified") and held_addresses(services) == [APPLICANT]
    assert rows(services, staff.PREFIX) == []


def test_the_reply_quoted_as_message_id_is_the_one_that_bounced(services):
    first = sent_receipt(services)
    with transaction(services.engine) as session:
        second = outbox.enqueue(session, kind="fix_request", to=[APPLICANT], subject="修正のお願い",
                                body="x", from_address=FROM, references=[first.message_id])
    # The second reply's References name the first: the quoted Message-ID decides.
    bounce(services, dsn(second.message_id, (APPLICANT, "5.1.1", None),
                         references=f"References: {first.message_id}\n"))
    with transaction(services.engine) as session:
        assert session.get(HeldAddress, APPLICANT).outbox_id == second.id
    assert "fix_request" in rows(services, staff.PREFIX)[0].body


def test_a_plain_text_mailer_daemon_notice_holds_the_recipients_of_the_reply(services):
    receipt = sent_receipt(services)
    text = (f"From: MAILER-DAEMON@mx.example.jp\r\nTo: {FROM}\r\nSubject: failure notice\r\n\r\n"
            f"Sorry, I couldn't deliver your message.\r\nStatus: 5.1.1\r\n"
            f"Diagnostic-Code: smtp; 550 no such\r\n user here\r\n\r\n"
            f"--- Below this line is a copy of the message.\r\nMessage-ID: {receipt.message_id}\r\n")
    assert bounces.failures(text.encode(), receipt.to_addrs) == [
        bounces.Failure(APPLICANT, "5.1.1", "550 no such user here")]
    bounce(services, text.encode())
    assert held_addresses(services) == [APPLICANT] and len(rows(services, staff.PREFIX)) == 1


def test_without_services_the_hold_is_recorded_and_nothing_mailed(services):
    receipt = sent_receipt(services)
    note = bounce(services, dsn(receipt.message_id, (APPLICANT, "5.1.1", None)), with_services=False)
    assert held_addresses(services) == [APPLICANT] and "not notified" in note
    assert rows(services, staff.PREFIX) == []


def test_a_malformed_staff_address_is_a_config_error_naming_the_key(tmp_path):
    services = make_services(tmp_path, digest_to=["知財課 <staff@example.jp>"])
    with transaction(services.engine) as session, pytest.raises(ConfigError, match=r"\[staff\] digest_to"):
        staff.notify(session, services, staff.HEALTH_ALERT, topic="t", **CONTEXTS[staff.HEALTH_ALERT])
