"""Replies go out while the poll is still working (mailbot/sending.py), with a real Dovecot and SMTP sink.

On opening day the first company's receipt must not wait for the last
company's mail: the cycle drains the outbox alongside its poll.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
from sqlalchemy.exc import OperationalError

from mailbot import daemon, outbox, samples, sending
from mailbot.forms.fill import render_application, sample_values
from mailbot.intake import poller

COMPANIES = 8
READ_SECONDS = 0.4  # each PDF read this much slower: the poll lasts ~3 s


def application(i: int) -> bytes:
    values = sample_values(company_name=f"株式会社サンプル{i:02d}", contact_email=f"c{i}@s{i}.example.jp")
    return samples.application_mail(render_application(values), sender=f"a{i}@s{i}.example.jp")


def slow_reader(services):
    def read(data: bytes):
        time.sleep(READ_SECONDS)
        return services.read_form(data)
    return read


def test_receipts_are_sent_while_the_poll_still_processes_the_burst(services, mailbox, smtp_sink, monkeypatch):
    """GIVEN 8 applications, each read slowly WHEN one cycle runs
    THEN receipts reached the SMTP server before the poll was over, and each company has exactly one."""
    for i in range(COMPANIES):
        mailbox.deliver(application(i))
    received_during_poll = []
    real_poll = daemon.poll

    def poll(*args, **kwargs):
        report = real_poll(*args, **kwargs)
        received_during_poll.append(len(smtp_sink.messages))
        return report

    monkeypatch.setattr(daemon, "poll", poll)
    report = daemon.run_once(dataclasses.replace(services, read_form=slow_reader(services)))
    assert report.poll.processed == COMPANIES and report.sent == COMPANIES
    assert received_during_poll[0] >= COMPANIES // 2, received_during_poll
    senders = sorted(r for m in smtp_sink.messages for r in m.rcpt_tos if r.startswith("a"))
    assert senders == sorted(f"a{i}@s{i}.example.jp" for i in range(COMPANIES))


def test_a_drain_error_in_the_thread_is_raised_by_the_cycle(services, monkeypatch):
    """The database failing under the thread's drain is the cycle's error, as when the cycle drained itself."""
    def broken(*args, **kwargs):
        raise OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(outbox, "send_pending", broken)
    alongside = sending.SendingAlongside(services.engine, services.settings.smtp)
    with pytest.raises(OperationalError):
        with alongside:
            time.sleep(0.2)


def test_a_stopping_service_sends_nothing_more_alongside(services, mailbox, smtp_sink):
    """stop() true: the thread sends nothing, the receipt stays pending; without stop it goes out."""
    mailbox.deliver(application(1))
    poller.poll(services)  # stored and processed, its receipt pending in the outbox
    with sending.SendingAlongside(services.engine, services.settings.smtp, stop=lambda: True) as early:
        time.sleep(0.3)
    assert (early.result.sent, smtp_sink.messages) == (0, [])
    with sending.SendingAlongside(services.engine, services.settings.smtp) as early:
        smtp_sink.wait_for(1, timeout=10)
    assert early.result.sent == 1
