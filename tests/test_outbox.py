"""The outbox against a real SMTP server (SmtpSink): headers, Japanese, retries, failures, no resends."""

from __future__ import annotations

import asyncio
import base64
import re
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import SMTP, default

import pytest
from sqlmodel import select

from mailbot import outbox
from mailbot.config import SmtpSettings
from mailbot.db import make_engine, transaction
from mailbot.models import OutboxMessage
from mailbot.outbox import OutgoingFile, backoff, build_email, drain, enqueue, send_pending
from mailbot.render import one_line
from mailbot.sink import SmtpSink, free_port

FROM = "chizai@jetro.example.jp"
SUBJECT = "【海外における営業秘密漏えい対策支援事業】申請書受付のお知らせ（受付番号：TS-2024-0001）"
BODY = "株式会社サンプル精機\n田中 花子 様\n\n申請書を受け付けました。①㈱髙〜\n"


@pytest.fixture
def engine(tmp_path):
    return make_engine(f"sqlite:///{tmp_path / 'mailbot.db'}")


def settings(port: int, **kw) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, security="none", from_address=FROM,
                        from_name="ジェトロ知的財産課", timeout_seconds=5, **kw)


def queue_mail(engine, to=("tanaka@example.co.jp",), **kw) -> int:
    with transaction(engine) as session:
        row = enqueue(session, kind="receipt", to=list(to), subject=SUBJECT, body=BODY,
                      from_address=FROM, **kw)
        session.flush()
        return row.id


def row(engine, row_id: int) -> OutboxMessage:
    with transaction(engine) as session:
        return session.get(OutboxMessage, row_id)


def test_enqueue_dedups_recipients_and_fixes_the_message_id(engine):
    with transaction(engine) as session:
        queued = enqueue(session, kind="receipt", to=["Tanaka@Example.co.jp", " tanaka@example.co.jp",
                                                     "sato@example.co.jp"],
                         subject="a\r\nBcc: x@y.z", body="x", from_address=FROM,
                         in_reply_to="<their@example.co.jp>", references=["<first@example.co.jp>"])
    assert queued.to_addrs == ["Tanaka@Example.co.jp", "sato@example.co.jp"]
    assert queued.message_id.startswith("<") and queued.message_id.endswith("@jetro.example.jp>")
    assert queued.subject == "a Bcc: x@y.z"
    assert queued.references == ["<first@example.co.jp>", "<their@example.co.jp>"]
    with transaction(engine) as session:
        assert session.exec(select(OutboxMessage)).one().status == "pending"


@pytest.mark.parametrize("to", [[], ["not an address"], ["a@b.jp\r\nBcc: c@d.jp"], ["0:@example.jp"],
                                ["=?utf-8?q?a=0ABcc=3A_x?=@example.jp"]])
def test_enqueue_refuses_bad_recipients(engine, to):
    with transaction(engine) as session, pytest.raises(ValueError):
        enqueue(session, kind="receipt", to=to, subject="s", body="b", from_address=FROM)


def test_delivered_with_headers_and_japanese_intact(engine):
    row_id = queue_mail(engine, to=("tanaka@example.co.jp", "info@example.co.jp"),
                        in_reply_to="<app-1@example.co.jp>", references=("<root@example.co.jp>",),
                        application_id=None)
    with SmtpSink() as sink:
        result = send_pending(engine, settings(sink.port))
        (got,) = sink.wait_for(1)
    assert (result.sent, result.retried, result.failed) == (1, 0, 0)
    msg = got.message
    assert got.mail_from == FROM and got.rcpt_tos == ["tanaka@example.co.jp", "info@example.co.jp"]
    assert msg["Subject"] == SUBJECT
    assert msg.get_content().replace("\r\n", "\n") == BODY  # text parts travel with CRLF
    assert msg["From"].addresses[0].display_name == "ジェトロ知的財産課"
    assert msg["From"].addresses[0].addr_spec == FROM
    assert msg["To"] == "tanaka@example.co.jp, info@example.co.jp"
    assert msg["Message-ID"] == row(engine, row_id).message_id and msg["Date"]
    assert msg["In-Reply-To"] == "<app-1@example.co.jp>"
    assert msg["References"] == "<root@example.co.jp> <app-1@example.co.jp>"
    # Queued without an inbound message: it answers no mail (RFC 3834 auto-generated).
    assert (msg["Auto-Submitted"], msg["X-Auto-Response-Suppress"], msg["X-Loop"]) == (
        "auto-generated", "All", FROM)
    assert msg.get_content_charset() == "utf-8" and got.content.isascii()  # no raw 8-bit
    assert row(engine, row_id).status == "sent" and row(engine, row_id).sent_at


def test_attachments_travel_with_their_japanese_names_types_and_bytes(engine):
    """GIVEN a mail queued with a Japanese-named Excel file and a calendar invitation
    WHEN the outbox sends it
    THEN the server receives both files byte for byte, named and typed as queued, after the text."""
    xlsx = bytes(range(256)) * 40  # any bytes: base64 must carry them unchanged
    ics = b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"
    files = [OutgoingFile("保有情報リスト①.xlsx",
                          "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", xlsx),
             OutgoingFile("invite.ics", "text/calendar; method=REQUEST", ics)]
    queue_mail(engine, attachments=files)
    with SmtpSink() as sink:
        assert send_pending(engine, settings(sink.port)).sent == 1
        (got,) = sink.wait_for(1)
    parts = list(got.message.iter_attachments())
    assert [p.get_filename() for p in parts] == ["保有情報リスト①.xlsx", "invite.ics"]
    assert parts[0].get_content_type().endswith("spreadsheetml.sheet") and parts[0].get_content() == xlsx
    assert parts[1].get_content_type() == "text/calendar" and parts[1].get_param("method") == "REQUEST"
    assert parts[1].get_payload(decode=True) == ics
    assert got.message.get_body(("plain",)).get_content().replace("\r\n", "\n") == BODY
    assert got.content.isascii()


def test_a_reply_to_an_inbound_mail_is_auto_replied_a_staff_notice_auto_generated():
    reply = OutboxMessage(kind="receipt", to_addrs=["a@example.jp"], subject="s", body="b",
                          message_id="<1@x>", raw_message_id=7)
    notice = OutboxMessage(kind="staff_bounce", to_addrs=["a@example.jp"], subject="s", body="b",
                           message_id="<2@x>", raw_message_id=7)
    assert build_email(reply, settings(25))["Auto-Submitted"] == "auto-replied"
    assert build_email(notice, settings(25))["Auto-Submitted"] == "auto-generated"


def test_staff_mail_is_not_marked_automatic(engine):
    with transaction(engine) as session:
        queued = enqueue(session, kind="digest", to=["staff@jetro.example.jp"], subject="digest",
                         body="plain ascii\n", from_address=FROM, automatic=False)
    msg = build_email(queued, settings(25))
    assert msg["Auto-Submitted"] is None and msg["X-Loop"] is None and msg["In-Reply-To"] is None


def test_rows_go_in_id_order_and_nothing_is_sent_twice(engine):
    ids = [queue_mail(engine, to=(f"c{n}@example.co.jp",)) for n in range(3)]
    with SmtpSink() as sink:
        first = send_pending(engine, settings(sink.port), limit=2)
        second = send_pending(engine, settings(sink.port))
        third = send_pending(engine, settings(sink.port))
        got = sink.wait_for(3)
    assert (first.sent, second.sent, third.sent) == (2, 1, 0)
    assert [m.rcpt_tos[0] for m in got] == ["c0@example.co.jp", "c1@example.co.jp", "c2@example.co.jp"]
    assert len(sink.messages) == 3 and all(row(engine, i).status == "sent" for i in ids)


def test_a_stop_asked_for_ends_the_drain_after_the_send_in_flight(engine):
    """GIVEN three mails due WHEN the service is asked to stop during the first send
    THEN that one is sent, the other two stay pending for the next drain, which sends them."""
    ids = [queue_mail(engine, to=(f"c{n}@example.co.jp",)) for n in range(3)]
    with SmtpSink() as sink:
        asked = send_pending(engine, settings(sink.port), stop=lambda: len(sink.messages) >= 1)
        assert (asked.sent, [row(engine, i).status for i in ids]) == (1, ["sent", "pending", "pending"])
        later = send_pending(engine, settings(sink.port))
        sink.wait_for(3)
    assert later.sent == 2 and len(sink.messages) == 3


def test_server_down_then_up_retries_with_backoff(engine):
    row_id = queue_mail(engine)
    port = free_port()  # nothing listens here yet
    t0 = datetime.now(timezone.utc)
    down = send_pending(engine, settings(port), now=t0)
    assert (down.sent, down.retried, down.failed) == (0, 1, 0)
    waiting = row(engine, row_id)
    assert waiting.status == "pending" and waiting.attempts == 1 and "connect" in waiting.last_error
    due = waiting.next_attempt_at.replace(tzinfo=timezone.utc)  # stored as UTC
    assert abs(due - (t0 + timedelta(minutes=1))) < timedelta(seconds=1)
    with SmtpSink(port) as sink:
        early = send_pending(engine, settings(port), now=t0 + timedelta(seconds=30))
        assert (early.sent, early.retried) == (0, 0)  # not due yet: backoff respected
        later = send_pending(engine, settings(port), now=t0 + timedelta(minutes=2))
        sink.wait_for(1)
    assert later.sent == 1 and row(engine, row_id).status == "sent" and len(sink.messages) == 1


def test_backoff_doubles_and_stops_at_an_hour():
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [60, 120, 240, 480]
    assert backoff(30) == timedelta(hours=1)


def test_gives_up_after_max_attempts(engine):
    row_id = queue_mail(engine)
    port, now = free_port(), datetime.now(timezone.utc)
    results = [send_pending(engine, settings(port, max_attempts=3), now=now + timedelta(hours=h))
               for h in range(4)]
    assert [(r.retried, r.failed) for r in results] == [(1, 0), (1, 0), (0, 1), (0, 0)]
    assert row(engine, row_id).status == "failed" and row(engine, row_id).attempts == 3


def test_permanent_refusal_fails_at_once_and_the_rest_still_go(engine):
    bad = queue_mail(engine, to=("nobody@example.co.jp",))
    good = queue_mail(engine)
    with SmtpSink(refuse={"nobody@example.co.jp": "550 5.1.1 No such user"}) as sink:
        result = send_pending(engine, settings(sink.port))
        sink.wait_for(1)
    assert (result.sent, result.retried, result.failed) == (1, 0, 1)
    assert row(engine, bad).status == "failed" and "550" in row(engine, bad).last_error
    assert row(engine, good).status == "sent"


def test_temporary_refusal_is_retried(engine):
    row_id = queue_mail(engine)
    with SmtpSink(data_response="451 4.3.0 Mailbox busy") as sink:
        now = datetime.now(timezone.utc)
        busy = send_pending(engine, settings(sink.port), now=now)
        sink.data_response = None
        fine = send_pending(engine, settings(sink.port), now=now + timedelta(minutes=5))
        sink.wait_for(1)
    assert (busy.retried, fine.sent) == (1, 1)
    assert row(engine, row_id).attempts == 2 and row(engine, row_id).status == "sent"


def test_one_refused_recipient_among_several_still_sends(engine):
    row_id = queue_mail(engine, to=("tanaka@example.co.jp", "gone@example.co.jp"))
    with SmtpSink(refuse={"gone@example.co.jp": "550 5.1.1 No such user"}) as sink:
        result = send_pending(engine, settings(sink.port))
        (got,) = sink.wait_for(1)
    assert result.sent == 1 and got.rcpt_tos == ["tanaka@example.co.jp"]
    assert "gone@example.co.jp" in row(engine, row_id).last_error


def test_login_when_a_username_is_set(engine):
    queue_mail(engine)
    with SmtpSink(auth=("mailbot", "pw")) as sink:
        wrong = send_pending(engine, settings(sink.port, username="mailbot", password="bad"))
        right = send_pending(engine, settings(sink.port, username="mailbot", password="pw"),
                             now=datetime.now(timezone.utc) + timedelta(minutes=2))
        (got,) = sink.wait_for(1)
    assert (wrong.retried, right.sent) == (1, 1) and got.auth_user == "mailbot"




def test_nothing_due_means_no_connection_at_all(engine):
    queue_mail(engine)
    with transaction(engine) as session:
        session.exec(select(OutboxMessage)).one().status = "sent"
    result = asyncio.run(drain(engine, settings(free_port())))  # nothing listens: would be retried
    assert (result.sent, result.retried, result.failed) == (0, 0, 0)


# --- several instances draining at once (PostgreSQL) -----------------------------


def sent_ids(sink: SmtpSink) -> list[str]:
    return [mail.message["Message-ID"] for mail in sink.messages]


@pytest.mark.postgresql_only
def test_two_drains_at_once_send_each_row_once(tmp_path):
    """GIVEN 40 due replies and two instances (two engines) draining at the same moment
    THEN every reply reaches the server once: each row is claimed by one of them only."""
    import threading

    url = f"sqlite:///{tmp_path / 'mailbot.db'}"  # one PostgreSQL database for both engines
    engines = [make_engine(url), make_engine(url)]
    ids = [queue_mail(engines[0], to=(f"tanto{n}@example.co.jp",)) for n in range(40)]
    start, results = threading.Barrier(2), []

    def instance(engine):
        start.wait()
        results.append(send_pending(engine, settings(sink.port)))

    with SmtpSink() as sink:
        threads = [threading.Thread(target=instance, args=(engine,)) for engine in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert sum(result.sent for result in results) == 40 and len(results) == 2
    with transaction(engines[0]) as session:
        rows = session.exec(select(OutboxMessage).where(OutboxMessage.id.in_(ids))).all()
    assert sorted(sent_ids(sink)) == sorted(r.message_id for r in rows)  # each once, none missing
    assert {(r.status, r.attempts) for r in rows} == {("sent", 1)}


@pytest.mark.postgresql_only
def test_a_row_another_instance_is_sending_is_passed_over_and_sent_once_that_instance_dies(engine):
    """GIVEN three due replies, the first claimed by another instance's open transaction
    (it is mid-send) WHEN this instance drains THEN it sends the other two without waiting;
    once that instance dies (its transaction rolled back), the next drain sends the first."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import text

    ids = [queue_mail(engine) for _ in range(3)]
    other = make_engine(str(engine.url.render_as_string(hide_password=False)))
    with SmtpSink() as sink:
        with other.connect() as sending:
            sending.execute(text("SELECT id FROM outbox WHERE id = :id FOR UPDATE"), {"id": ids[0]})
            # In a thread: a drain that waited for the claimed row would hang the test.
            pool = ThreadPoolExecutor(1)
            try:
                result = pool.submit(send_pending, engine, settings(sink.port)).result(timeout=30)
            finally:
                pool.shutdown(wait=False)  # a stuck drain goes on once the claim is rolled back
            assert result.sent == 2 and row(engine, ids[0]).status == "pending"
            sending.rollback()  # the holder is gone: nothing of its claim is left
        assert send_pending(engine, settings(sink.port)).sent == 1
        assert sorted(sent_ids(sink)) == sorted(row(engine, i).message_id for i in ids)
    assert [row(engine, i).status for i in ids] == ["sent"] * 3


@pytest.mark.sqlite_only(reason="SQLite's one writer at a time")
def test_on_sqlite_staff_can_write_while_a_reply_is_being_sent(engine, tmp_path, monkeypatch):
    """A send holds no write transaction on SQLite: a staff command writing meanwhile
    gets the database at once (claiming rows as on PostgreSQL would block it for the send)."""
    import sqlite3

    from mailbot import outbox

    queue_mail(engine)
    real_send, writes = outbox._send, []

    async def send_while_staff_writes(*args):
        staff = sqlite3.connect(tmp_path / "mailbot.db", timeout=0.2, isolation_level=None)
        try:
            staff.execute("BEGIN IMMEDIATE")  # "database is locked" after 0.2 s if the drain held it
            staff.execute("ROLLBACK")
            writes.append("ok")
        finally:
            staff.close()
        return await real_send(*args)

    monkeypatch.setattr(outbox, "_send", send_while_staff_writes)
    with SmtpSink() as sink:
        assert send_pending(engine, settings(sink.port)).sent == 1
    assert writes == ["ok"]


def test_a_drain_longer_than_a_page_sends_every_row_once_in_order(engine, monkeypatch):
    """The SQLite drain loads DRAIN_PAGE due rows at a time (a burst's thousands of replies
    are not all held at once): across pages every row goes once, in id order; limit and
    stop count across pages too."""
    monkeypatch.setattr(outbox, "DRAIN_PAGE", 2)
    ids = [queue_mail(engine, to=(f"c{n}@example.co.jp",)) for n in range(7)]
    with SmtpSink() as sink:
        limited = send_pending(engine, settings(sink.port), limit=3)
        stopped = send_pending(engine, settings(sink.port), stop=lambda: len(sink.messages) >= 5)
        rest = send_pending(engine, settings(sink.port))
        got = sink.wait_for(7)
    assert (limited.sent, stopped.sent, rest.sent) == (3, 2, 2)
    assert [m.rcpt_tos[0] for m in got] == [f"c{n}@example.co.jp" for n in range(7)]
    assert all(row(engine, i).status == "sent" for i in ids)


def test_a_page_of_a_drain_sends_its_files_and_skips_rows_without(engine, monkeypatch):
    monkeypatch.setattr(outbox, "DRAIN_PAGE", 2)
    ics = b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"
    invite = [OutgoingFile("invite.ics", "text/calendar; method=REQUEST", ics)]
    for n, attached in enumerate([(), invite, (), invite]):  # pages: (0, 1), (2, 3)
        queue_mail(engine, to=(f"c{n}@example.co.jp",), attachments=attached)
    with SmtpSink() as sink:
        assert send_pending(engine, settings(sink.port)).sent == 4
        got = sink.wait_for(4)
    assert [[p.get_payload(decode=True) for p in m.message.iter_attachments()] for m in got] == [
        [], [ics], [], [ics]]


@pytest.mark.parametrize("subject", [
    SUBJECT, "Re: 申請書", "a" * 30 + "é" + "b" * 200, "𠮷野家①㈱髙 " * 20 + "終", "x  y　z  申請 ",
])
def test_a_japanese_subject_goes_as_whole_character_encoded_words_within_the_line_limit(subject):
    """Written as base64 encoded words (not folded by the email package, ~1.2 ms a mail): each
    line within 78 characters, each word whole UTF-8 characters, the subject read back unchanged."""
    row = OutboxMessage(id=1, kind="receipt", to_addrs=["a@example.jp"], subject=subject, body=BODY,
                        message_id="<m@example.jp>", automatic=True, created_at=datetime.now(timezone.utc))
    raw = build_email(row, settings(25)).as_bytes()
    head = raw.split(b"\r\n\r\n")[0].decode("ascii")
    assert max(len(line) for line in head.split("\r\n")) <= 78
    words = re.findall(r"=\?utf-8\?b\?([A-Za-z0-9+/=]+)\?=", head.split("Subject: ")[1].split("\r\nDate:")[0])
    assert words and all(base64.b64decode(word).decode("utf-8") for word in words)
    assert BytesParser(policy=default).parsebytes(raw)["Subject"] == one_line(subject)


@pytest.mark.parametrize("subject", ["Re: =?utf-8?b?55Sz6KuL5pu4?= 再送", "申請書\r\nBcc: evil@attacker.example"])
def test_a_subject_reads_as_the_email_package_wrote_it(subject):
    """Encoded here or folded by the package, a recipient reads the same subject."""
    row = OutboxMessage(id=1, kind="receipt", to_addrs=["a@example.jp"], subject=subject,
                        body=BODY, message_id="<m@example.jp>", automatic=True, created_at=datetime.now(timezone.utc))
    by_the_package = EmailMessage(policy=SMTP)
    by_the_package["Subject"] = one_line(subject)
    ours, theirs = (BytesParser(policy=default).parsebytes(m.as_bytes())
                    for m in (build_email(row, settings(25)), by_the_package))
    assert ours["Subject"] == theirs["Subject"] and ours["Bcc"] is None


def test_an_ascii_subject_is_folded_by_the_email_package_as_before():
    row = OutboxMessage(id=1, kind="receipt", to_addrs=["a@example.jp"], subject="Receipt " * 20,
                        body=BODY, message_id="<m@example.jp>", automatic=True, created_at=datetime.now(timezone.utc))
    by_the_package = EmailMessage(policy=SMTP)
    by_the_package["Subject"] = one_line(row.subject)
    assert subject_lines(build_email(row, settings(25)).as_bytes()) == subject_lines(by_the_package.as_bytes())


def subject_lines(raw: bytes) -> bytes:
    """The Subject field as written: its first line and any continuation lines."""
    head = raw.split(b"\r\n\r\n")[0].split(b"\r\n")
    start = next(i for i, line in enumerate(head) if line.startswith(b"Subject:"))
    end = next((i for i in range(start + 1, len(head)) if not head[i].startswith(b" ")), len(head))
    return b"\r\n".join(head[start:end])


def test_a_row_sent_after_a_failed_try_counts_both_attempts_and_clears_the_error(engine):
    row_id = queue_mail(engine)
    with SmtpSink(data_response="451 4.3.0 Try again later") as sink:
        assert send_pending(engine, settings(sink.port)).retried == 1
        sink.data_response = None
        later = datetime.now(timezone.utc) + timedelta(minutes=2)
        assert send_pending(engine, settings(sink.port), now=later).sent == 1
    sent = row(engine, row_id)
    assert (sent.status, sent.attempts, sent.last_error) == ("sent", 2, None) and sent.sent_at
