"""A bounce of one of our replies, end to end: the address is held and staff get one notice.

Real Dovecot mailbox, real SMTP server (aiosmtpd), the shipped rules and
templates. The bounce is built as Postfix sends it: multipart/report with a
human part, a message/delivery-status part (Final-Recipient, Status,
Diagnostic-Code) and the headers of our mail as it left (text/rfc822-headers).
"""

from __future__ import annotations

from sqlmodel import Session, select

from mailbot import daemon
from mailbot.config import StaffSettings
from mailbot.models import HeldAddress, RawMessage
from mailbot.services import build
from tests.e2e.test_step01 import application, applications, body, subject

SENDER = "tanaka@sample-seiki.example.jp"
STAFF = ["chizai-staff@example.jp", "kacho@example.jp"]
_count = iter(range(1, 1000))


def postfix_bounce(mail, failed: str, *, status: str = "5.1.1",
                   diagnostic: str = "550 5.1.1 <{to}>: Recipient address rejected: "
                                     "User unknown in virtual mailbox table") -> bytes:
    """The DSN Postfix at the recipient's side returns for ``mail`` (a message the sink received)."""
    n = next(_count)
    headers = mail.content.split(b"\r\n\r\n", 1)[0].decode("ascii")
    text = f"""Return-Path: <>
Received: by mx.sample-seiki.example.jp (Postfix) id 4Xb{n}QK; Thu, 26 Nov 2026 10:00:0{n % 10} +0900 (JST)
Date: Thu, 26 Nov 2026 10:00:0{n % 10} +0900 (JST)
From: MAILER-DAEMON@mx.sample-seiki.example.jp (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: chizai@example.jp
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
 boundary="4Xb{n}QK.1764118800/mx.sample-seiki.example.jp"
Message-Id: <20261126010000.4Xb{n}QK@mx.sample-seiki.example.jp>

This is a MIME-encapsulated message.

--4Xb{n}QK.1764118800/mx.sample-seiki.example.jp
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.sample-seiki.example.jp.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

                   The mail system

<{failed}>: host mx.sample-seiki.example.jp[192.0.2.25] said: {diagnostic.format(to=failed)}

--4Xb{n}QK.1764118800/mx.sample-seiki.example.jp
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.sample-seiki.example.jp
X-Postfix-Queue-ID: 4Xb{n}QK
X-Postfix-Sender: rfc822; chizai@example.jp
Arrival-Date: Thu, 26 Nov 2026 10:00:00 +0900 (JST)

Final-Recipient: rfc822; {failed}
Original-Recipient: rfc822;{failed}
Action: failed
Status: {status}
Remote-MTA: dns; mx.sample-seiki.example.jp
Diagnostic-Code: smtp; {diagnostic.format(to=failed)}

--4Xb{n}QK.1764118800/mx.sample-seiki.example.jp
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{headers}

--4Xb{n}QK.1764118800/mx.sample-seiki.example.jp--
"""
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def staff_mails(sink) -> list:
    return [m for m in sink.messages if sorted(m.rcpt_tos) == sorted(STAFF)]


def held(services) -> dict[str, HeldAddress]:
    with Session(services.engine) as session:
        return {h.address: h for h in session.exec(select(HeldAddress)).all()}


def test_a_bounced_receipt_holds_the_address_and_tells_staff_once(make_settings, mailbox, smtp_sink):
    """GIVEN an application answered with a receipt, and the receipt bounces (5.1.1)
    WHEN the bounce is polled
    THEN the address is held, staff get exactly one notice with the reception number and the
    release command, and nobody answers the bounce;
    WHEN the company applies again from the held address, and the same address bounces again
    THEN no automatic reply goes to it and staff get no second notice;
    WHEN a staff notice itself bounces
    THEN the staff address is held and no notice is sent about it."""
    settings = make_settings().model_copy(update={"staff": StaffSettings(digest_to=STAFF)})
    services = build(settings)
    mailbox.deliver(application(sender=SENDER, contact_email=SENDER))
    daemon.run_once(services)
    [receipt] = smtp_sink.messages
    [app] = applications(services)

    mailbox.deliver(postfix_bounce(receipt, SENDER))
    report = daemon.run_once(services)
    assert report.poll.processed == 1 and report.sent == 1
    assert list(held(services)) == [SENDER]
    [notice] = staff_mails(smtp_sink)
    assert len(smtp_sink.messages) == 2  # the receipt and the notice: the bounce is not answered
    assert app.reception_number in subject(notice) and app.reception_number in body(notice)
    for text in [SENDER, "5.1.1", "User unknown", app.company_name, f"mailbot held --release {SENDER}",
                 "mailbot held\n", str(receipt.message["Subject"])]:
        assert text in body(notice).replace("\r\n", "\n"), text
    assert notice.message["Auto-Submitted"] == "auto-generated"

    mailbox.deliver(application(sender=SENDER, contact_email=SENDER))  # the company tries again
    mailbox.deliver(postfix_bounce(receipt, SENDER, status="5.2.1",
                                   diagnostic="550 5.2.1 <{to}>: mailbox disabled"))
    daemon.run_once(services)
    assert len(smtp_sink.messages) == 2
    with Session(services.engine) as session:
        again = session.exec(select(RawMessage).where(RawMessage.sender == SENDER)
                             .order_by(RawMessage.id.desc())).first()
        bounces = session.exec(select(RawMessage).where(
            RawMessage.sender == "MAILER-DAEMON@mx.sample-seiki.example.jp")).all()
    assert "withheld" in again.reason
    assert [("staff notified" in b.reason, "already held" in b.reason) for b in bounces] == [
        (True, False), (False, True)]

    mailbox.deliver(postfix_bounce(notice, STAFF[0]))
    daemon.run_once(services)
    assert STAFF[0] in held(services) and len(smtp_sink.messages) == 2
    assert mailbox.count("INBOX") == 0
