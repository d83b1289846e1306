"""Push delivery end to end: the daemon (scheduler + IDLE watcher) on a real Dovecot and SMTP sink.

GIVEN / WHEN / THEN; the daemon runs in this process on a BackgroundScheduler,
exactly as `mailbot run` runs it on a BlockingScheduler.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlmodel import Session, select

from mailbot import daemon
from mailbot.intake.imap import Mailbox
from mailbot.models import RawMessage
from tests.dovecot import append, kick
from tests.e2e.test_step01 import application

COMPANIES = [("株式会社一号", "1010401089234", "a@one.example.jp"),
             ("株式会社二号", "6011001035920", "b@two.example.jp"),
             ("株式会社三号", "8010001034955", "c@three.example.jp")]


def company_mail(name: str, number: str, sender: str) -> bytes:
    return application(company_name=name, corporate_number=number, sender=sender, contact_email=sender)


def with_service(services, **service) -> None:
    settings = services.settings
    services.settings = settings.model_copy(update={"service": settings.service.model_copy(update=service)})


def with_imap(services, **imap) -> None:
    settings = services.settings
    services.settings = settings.model_copy(update={"imap": settings.imap.model_copy(update=imap)})


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def running():
    """Start a Daemon on a background scheduler; stopped at the end whatever happens."""
    started: list[daemon.Daemon] = []

    def start(services) -> daemon.Daemon:
        service = daemon.Daemon(services, BackgroundScheduler(timezone="Asia/Tokyo"))
        started.append(service)
        service.start()
        return service

    yield start
    for service in started:
        service.stop()


def test_an_application_is_answered_within_seconds_of_arrival(services, mailbox, smtp_sink, running):
    """GIVEN the daemon idle on the inbox, its scheduled poll an hour away
    WHEN an application is APPENDed
    THEN the receipt is in the SMTP server within 10 s (the bench measures the real figure),
    and the move out of the inbox does not set off more cycles."""
    with_service(services, poll_seconds=3600)
    service = running(services)
    assert wait_until(lambda: service.gate.cycles >= 1 and service.watcher.idles >= 1, 10)
    delivered = time.monotonic()
    mailbox.deliver(application())
    [receipt] = smtp_sink.wait_for(1, timeout=10)
    assert time.monotonic() - delivered < 10
    assert receipt.message["Auto-Submitted"] == "auto-replied"
    assert wait_until(lambda: mailbox.count("INBOX") == 0, 5)
    # The cycle that moved it is counted when it ends (after its sends): wait for that first.
    assert wait_until(lambda: service.gate.busy_seconds() is None, 10)
    settled = service.gate.cycles
    time.sleep(2.5)
    assert service.gate.cycles == settled and len(smtp_sink.messages) == 1


def test_with_idle_off_the_scheduled_poll_alone_answers(services, mailbox, smtp_sink, running):
    with_imap(services, idle=False)
    with_service(services, poll_seconds=1)
    service = running(services)
    mailbox.deliver(application())
    smtp_sink.wait_for(1, timeout=15)
    assert service.watcher is None


def test_a_connection_dropped_mid_fetch_loses_nothing_and_answers_once(
        services, mailbox, smtp_sink, running, dovecot, imap_settings, monkeypatch):
    """GIVEN three applications in the inbox, and the server cutting every connection of the
    mailbox right after the first is fetched
    WHEN the daemon runs on
    THEN each company gets exactly one receipt, nothing stays in the inbox."""
    real_fetch = Mailbox.fetch
    kicked = []

    def fetch_then_kick(self, uids):
        for mail in real_fetch(self, uids):
            yield mail
            if not kicked:
                kicked.append(mail.uid)
                kick(dovecot, imap_settings.username)

    monkeypatch.setattr(Mailbox, "fetch", fetch_then_kick)
    for company in COMPANIES:
        mailbox.deliver(company_mail(*company))
    with_service(services, poll_seconds=1)
    service = running(services)
    smtp_sink.wait_for(3, timeout=30)
    assert wait_until(lambda: mailbox.count("INBOX") == 0, 10)
    time.sleep(2.5)  # more cycles: none may answer again
    assert kicked and sorted(m.rcpt_tos[0] for m in smtp_sink.messages) == sorted(c[2] for c in COMPANIES)
    assert service.watcher.connections >= 2  # the watcher was kicked too, and came back


def test_a_renumbered_folder_is_not_answered_again(services, smtp_sink, imap_settings):
    """GIVEN an application answered from the folder "applications"
    WHEN the server is migrated: the folder gets a new UIDVALIDITY and the same mail comes
    back with a Received header the migration added
    THEN nothing is sent again and the copy is recorded as a duplicate."""
    from tests.intake.test_poller import make_folder, recreate, with_header

    make_folder(imap_settings, "applications")
    with_imap(services, folder="applications")
    mail = application()
    append(services.settings.imap, mail)
    assert daemon.run_once(services).sent == 1
    recreate(imap_settings, "applications")
    append(services.settings.imap, with_header(mail, b"Received: from old.example.jp by new.example.jp"))
    again = daemon.run_once(services)
    assert (again.poll.stored, again.sent, len(smtp_sink.messages)) == (1, 0, 1)
    with Session(services.engine) as session:
        statuses = session.exec(select(RawMessage.status).order_by(RawMessage.id)).all()
    assert statuses == ["processed", "duplicate"]


def test_sigterm_stops_the_watcher_and_the_daemon(imap_settings, smtp_sink, tmp_path):
    """GIVEN `mailbot run` with IDLE on
    WHEN SIGTERM arrives
    THEN the watcher leaves IDLE and logs out, and the process exits 0 within seconds."""
    from tests.test_cli import _daemon_config

    config_file = tmp_path / "config.toml"
    config_file.write_text(_daemon_config(imap_settings, smtp_sink.port, tmp_path), encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "mailbot.cli", "--config", str(config_file), "run"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()
    try:
        # SIGTERM once the watcher is in IDLE (a fixed sleep was too short on a loaded machine:
        # the signal came before the daemon had installed its handlers).
        deadline = time.monotonic() + 60
        while not any("IDLE watcher connected" in line for line in lines) and time.monotonic() < deadline:
            assert process.poll() is None, "".join(lines)
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        reader.join(timeout=5)
        log = "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
    assert "IDLE watcher connected" in log and "IDLE watcher stopped" in log
    assert "mailbot stopped" in log and "attempt" not in log


def test_mail_announced_during_a_cycle_gets_exactly_one_more_cycle(services, running, monkeypatch):
    """GIVEN the daemon's job busy with a slow cycle
    WHEN new mail is announced three times meanwhile (and the schedule fires too)
    THEN exactly one more cycle runs after it, never two at once."""
    with_imap(services, idle=False)
    with_service(services, poll_seconds=3600)
    active, overlaps, release = [0], [0], threading.Event()

    def slow_cycle(services_, connect=None, stop=None):
        active[0] += 1
        overlaps[0] += active[0] > 1
        release.wait(5)
        active[0] -= 1
        return daemon.CycleReport(None, 0, 0, 0)

    monkeypatch.setattr(daemon, "run_once", slow_cycle)
    service = running(services)
    assert wait_until(lambda: active[0] == 1, 5)
    for _ in range(3):
        service.gate.request()
    service.scheduler.modify_job(daemon.JOB_ID, next_run_time=datetime.now(timezone.utc))
    time.sleep(0.5)
    release.set()
    assert wait_until(lambda: service.gate.cycles == 2, 5)
    time.sleep(1)
    assert (service.gate.cycles, overlaps[0]) == (2, 0)
