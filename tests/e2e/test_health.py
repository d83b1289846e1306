"""Health end to end: the mailbox out of reach -> one alert to staff over real SMTP -> one recovery notice.

Each attempt is what the daemon does: a poll of the real Dovecot mailbox,
health.watch with the poll's error, then the outbox drained to the real SMTP
sink. The mailbox is made unreachable by pointing the settings at a port
where nothing listens. [service] health_alert_minutes is at least 1, so
rather than wait half an hour the test moves the last good poll back in time,
as the poller would have left it had the outage begun that long ago.
"""

from __future__ import annotations

from datetime import timedelta

from mailbot import health, outbox
from mailbot.config import StaffSettings
from mailbot.db import transaction
from mailbot.errors import TransportError
from mailbot.intake import poller
from mailbot.models import FolderState, utcnow
from mailbot.services import build
from mailbot.sink import free_port
from tests.e2e.test_step01 import application, applications, body, subject

STAFF = ["chizai-staff@example.jp", "kacho@example.jp"]


def attempt(services, now=None) -> str | None:
    """One daemon cycle's poll attempt, health check and outbox drain; what health signalled."""
    error = None
    try:
        poller.poll(services)
    except TransportError as exc:
        error = str(exc)
    event = health.watch(services, now=now, error=error)
    outbox.send_pending(services.engine, services.settings.smtp)
    return event


def last_good_poll_ago(services, minutes: int) -> None:
    with transaction(services.engine) as session:
        state = session.get(FolderState, services.settings.imap.folder)
        state.last_poll_at = utcnow() - timedelta(minutes=minutes)


def with_imap_port(settings, port: int):
    return settings.model_copy(update={"imap": settings.imap.model_copy(update={"port": port})})


def staff_mails(sink) -> list:
    return [m for m in sink.messages if sorted(m.rcpt_tos) == sorted(STAFF)]


def test_an_outage_gets_one_alert_and_one_recovery_notice(make_settings, mailbox, smtp_sink):
    """GIVEN a mailbox polled fine, then out of reach
    WHEN attempts keep failing, first for less than health_alert_minutes, then for more
    THEN staff get exactly one alert, sent while the mailbox is down, naming the error and what to run;
    WHEN a poll succeeds again
    THEN exactly one recovery notice in the alert's thread, the mail that arrived meanwhile is answered,
    and nothing more is sent to staff after that."""
    settings = make_settings().model_copy(update={"staff": StaffSettings(digest_to=STAFF)})
    services = build(settings)
    minutes = settings.service.health_alert_minutes
    assert attempt(services) is None and smtp_sink.messages == []

    dead_port = free_port()
    services.settings = with_imap_port(settings, dead_port)
    last_good_poll_ago(services, minutes - 5)
    assert [attempt(services) for _ in range(5)] == [None] * 5
    mailbox.deliver(application())  # a company applies during the outage
    last_good_poll_ago(services, minutes + 1)
    events = [attempt(services) for _ in range(10)]
    assert events == ["alert"] + [None] * 9
    [alert] = smtp_sink.messages
    assert sorted(alert.rcpt_tos) == sorted(STAFF) and "【mailbot】" in subject(alert)
    assert str(dead_port) in body(alert) and "mailbot run --once" in body(alert)
    assert alert.message["Auto-Submitted"] == "auto-generated"

    services.settings = settings
    assert attempt(services) == "recovered"
    assert [attempt(services) for _ in range(5)] == [None] * 5
    assert len(staff_mails(smtp_sink)) == 2
    recovery = staff_mails(smtp_sink)[1]
    assert "復旧" in subject(recovery) and recovery.message["In-Reply-To"] == alert.message["Message-ID"]
    [app] = applications(services)
    [receipt] = [m for m in smtp_sink.messages if m not in staff_mails(smtp_sink)]
    assert app.state == "queued" and app.reception_number in subject(receipt)


def test_a_mailbox_that_never_worked_alerts_once(make_settings, smtp_sink):
    """GIVEN a service started against a mailbox it has never reached
    WHEN the attempts have failed for health_alert_minutes (counted from the first attempt)
    THEN one alert says no poll ever succeeded, and later failures add nothing."""
    settings = make_settings().model_copy(update={"staff": StaffSettings(digest_to=STAFF)})
    services = build(with_imap_port(settings, free_port()))
    minutes = settings.service.health_alert_minutes
    dead_port = services.settings.imap.port
    assert attempt(services) is None
    start = utcnow()  # just after the first attempt, which started the clock
    # Time is moved on with now=, as the daemon's later cycles would see it.
    assert attempt(services, now=start + timedelta(minutes=minutes - 1)) is None
    assert attempt(services, now=start + timedelta(minutes=minutes)) == health.ALERT
    assert [attempt(services, now=start + timedelta(minutes=minutes + m)) for m in range(1, 4)] == [None] * 3
    [alert] = smtp_sink.messages
    assert "一度も受信できていません" in body(alert) and str(dead_port) in body(alert)


def test_the_daemon_cycle_alerts_and_recovers(make_settings, smtp_sink):
    """GIVEN the daemon's own cycle (daemon.run_once), a mailbox polled fine, then out of reach for too long
    WHEN cycles keep running
    THEN the cycle itself sends one alert, then one recovery notice once the mailbox answers again."""
    from mailbot import daemon

    settings = make_settings().model_copy(update={"staff": StaffSettings(digest_to=STAFF)})
    services = build(settings)
    assert daemon.run_once(services).poll is not None
    services.settings = with_imap_port(settings, free_port())
    last_good_poll_ago(services, settings.service.health_alert_minutes + 1)
    reports = [daemon.run_once(services) for _ in range(3)]
    assert [r.poll for r in reports] == [None] * 3 and [r.sent for r in reports] == [1, 0, 0]
    services.settings = settings
    assert daemon.run_once(services).sent == 1 and daemon.run_once(services).sent == 0
    alert, recovery = staff_mails(smtp_sink)
    assert "復旧" in subject(recovery) and recovery.message["In-Reply-To"] == alert.message["Message-ID"]
