"""The SMTP server goes away for a while, then comes back on the same port (issue 7 item 5).

`mailbot run` answers the first applications; the server stops; more applications arrive.
Their replies fail to connect, are put back with the outbox's backoff (one minute after the
first failure) and are not tried again before it, however many cycles pass. The server
comes back; the minute is made to pass at once by moving the rows' next_attempt_at to now
(the only thing not real here: waiting a real minute would make the suite slow). Then every
reply is delivered exactly once.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlmodel import Session, select

from mailbot.db import transaction
from mailbot.models import OutboxMessage
from tests.chaos.conftest import database, one_receipt_each
from tests.e2e.test_daemon_process import burst_mail

BEFORE, DURING = 3, 5  # applications answered before the server goes, and while it is gone
#: Cycles (one a second) that must pass without a retry once the backoff is set.
IDLE_CYCLES = 3


def test_smtp_down_then_back_on_the_same_port_every_reply_delivered_once(
        imap_settings, mailbox, smtp_sink, daemons, tmp_path):
    daemons.configure(imap_settings, smtp_sink.port, cap=BEFORE + DURING)
    engine = database(tmp_path)
    daemon = daemons.start()
    for i in range(BEFORE):
        mailbox.deliver(burst_mail(i)[1])
    smtp_sink.wait_for(BEFORE, timeout=120)

    smtp_sink.stop()
    for i in range(BEFORE, BEFORE + DURING):
        mailbox.deliver(burst_mail(i)[1])
    waiting = wait_for_outbox(engine, lambda rows: len(pending(rows)) == DURING
                              and all(row.attempts == 1 for row in pending(rows)), daemon)
    assert all("connect 127.0.0.1" in row.last_error for row in pending(waiting)), waiting
    cycles = daemon.log.count("cycle: ")
    daemon.wait_for_log_count("cycle: ", cycles + IDLE_CYCLES)
    # The backoff holds: no retry before next_attempt_at, however often the cycle runs.
    assert [row.attempts for row in pending(outbox_rows(engine))] == [1] * DURING
    assert len(smtp_sink.messages) == BEFORE

    smtp_sink.start()  # the same SmtpSink: the same port, the mails received before kept
    bring_retries_forward(engine)
    smtp_sink.wait_for(BEFORE + DURING, timeout=120)
    wait_for_outbox(engine, lambda rows: {row.status for row in rows} == {"sent"}, daemon)
    daemon.wait_for_log_count("cycle: ", daemon.log.count("cycle: ") + 2)  # nothing more goes out
    assert daemon.stop() == 0, daemon.log[-5000:]

    assert one_receipt_each(engine, smtp_sink, BEFORE + DURING) == 0  # and none sent twice
    rows = outbox_rows(engine)
    assert sorted(row.attempts for row in rows) == [1] * BEFORE + [2] * DURING
    assert all(row.last_error is None for row in rows)


def outbox_rows(engine) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)))


def pending(rows: list[OutboxMessage]) -> list[OutboxMessage]:
    return [row for row in rows if row.status == "pending"]


def wait_for_outbox(engine, predicate, daemon, timeout: float = 120) -> list[OutboxMessage]:
    """The outbox rows once ``predicate(rows)`` holds."""
    daemon.wait_for(lambda: predicate(outbox_rows(engine)), timeout, what="the outbox")
    return outbox_rows(engine)


def bring_retries_forward(engine) -> None:
    """The backoff's minute passes now: the pending rows are due."""
    with transaction(engine) as session:
        for row in session.exec(select(OutboxMessage).where(OutboxMessage.status == "pending")):
            assert row.next_attempt_at > datetime.now(timezone.utc), "no backoff was set"
            row.next_attempt_at = datetime.now(timezone.utc)
            session.add(row)
