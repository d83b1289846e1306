"""The SMTP sink is a real server: it accepts, records, parses, refuses on request, logs in."""

from __future__ import annotations

import smtplib
import threading
from email.message import EmailMessage

import pytest

from mailbot.sink import SinkProcess, SmtpSink, free_port


def mail(subject: str = "件名テスト") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.jp", "b@example.jp", subject
    msg.set_content("本文です。")
    return msg


def test_records_envelope_bytes_and_parsed_message():
    with SmtpSink() as sink:
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as client:
            client.send_message(mail(), from_addr="a@example.jp", to_addrs=["b@example.jp", "c@example.jp"])
        (got,) = sink.wait_for(1, timeout=5)
    assert got.mail_from == "a@example.jp" and got.rcpt_tos == ["b@example.jp", "c@example.jp"]
    assert b"Subject:" in got.content
    assert got.message["Subject"] == "件名テスト" and got.message.get_content().strip() == "本文です。"


def test_wait_for_times_out():
    with SmtpSink() as sink, pytest.raises(TimeoutError, match="0 of 1"):
        sink.wait_for(1, timeout=0.2)


def test_refusals_at_rcpt_and_data():
    with SmtpSink(refuse={"Nobody@example.jp": "550 5.1.1 No such user"}) as sink:
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.send_message(mail(), to_addrs=["nobody@example.jp"])
            sink.data_response = "451 4.3.0 Try again later"
            with pytest.raises(smtplib.SMTPDataError):
                client.send_message(mail(), to_addrs=["b@example.jp"])
        assert sink.messages == []


def test_login_required_when_auth_is_set():
    with SmtpSink(auth=("mailbot", "s3cret")) as sink:
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("mailbot", "wrong")
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as client:
            client.login("mailbot", "s3cret")
            client.send_message(mail())
        assert sink.wait_for(1)[0].auth_user == "mailbot"


def test_parallel_senders_are_all_recorded():
    with SmtpSink() as sink:
        def send(n):
            with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as client:
                client.send_message(mail(f"#{n}"))
        threads = [threading.Thread(target=send, args=(n,)) for n in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        got = sink.wait_for(10)
    assert sorted(m.message["Subject"] for m in got) == sorted(f"#{n}" for n in range(10))


def test_a_fixed_port_and_stop():
    port = free_port()
    sink = SmtpSink(port).start()
    assert sink.port == port
    sink.stop()
    with pytest.raises(OSError):
        smtplib.SMTP("127.0.0.1", port, timeout=2)


def test_sink_process_counts_mails_and_distinct_recipients_in_a_child():
    with SinkProcess() as sink:
        first = sink.tally()
        assert (first.mails, first.recipients) == (0, 0)
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as client:
            client.send_message(mail(), to_addrs=["b@example.jp"])
            client.send_message(mail(), to_addrs=["b@example.jp"])
            client.send_message(mail(), to_addrs=["c@example.jp", "d@example.jp"])
        got = sink.tally()
        last = sink.stop()
    assert (got.mails, got.recipients) == (3, 2) and (last.mails, last.recipients) == (3, 2)
    # Its own process: the memory of the Python that runs aiosmtpd, not this one's.
    assert 10 < last.peak_rss_mb < 200
    with pytest.raises(OSError):
        smtplib.SMTP("127.0.0.1", sink.port, timeout=2)


def test_sink_process_stops_on_leaving_the_block():
    with SinkProcess() as sink:
        port = sink.port
    with pytest.raises(OSError):
        smtplib.SMTP("127.0.0.1", port, timeout=2)


def test_sink_process_reports_its_own_peak_rss_not_its_parents():
    """Linux keeps ru_maxrss across exec: a child of a big parent must not report the parent's peak."""
    ballast = bytearray(200 * 1024 * 1024)  # this process: 200 MB more, touched (zeroed pages count once written)
    ballast[::4096] = b"\x01" * len(ballast[::4096])
    with SinkProcess() as sink:
        peak = sink.stop().peak_rss_mb
    del ballast
    assert 10 < peak < 120
