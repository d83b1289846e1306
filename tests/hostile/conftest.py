"""The hostile corpus's fixtures: one real cycle of the service, measured, and what it left behind.

The e2e fixtures (a real Dovecot mailbox, the real SMTP sink, a fresh
database) come from tests/e2e/conftest.py. Here: ``hostile_cycle`` delivers
one hostile mail and, right after it, an ordinary application from another
company; runs ``mailbot.daemon.run_once`` as the daemon does, with the
service process's peak memory measured around it; and hands back what a
test asserts on: the stored row of each mail, the replies the sink
received, the outbox, and the mailbox folders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlmodel import Session, select

from mailbot import daemon
from mailbot.checks.corporate import check_digit
from mailbot.forms.fill import render_application, sample_values
from mailbot.models import OutboxMessage, RawMessage
from mailbot.samples import application_mail
from mailbot.sink import ReceivedMail
from tests.e2e.conftest import mailbox, make_settings, services, smtp_sink  # noqa: F401  (fixtures)

#: The company whose ordinary application arrives right after the hostile mail.
NEXT_SENDER = "sato@tsugi-kogyo.example.co.jp"
MB = 1024 * 1024
_STATUS = Path("/proc/self/status")


def pytest_configure(config):
    # pyproject registers no markers; slow ones still run by default (each < 20 s).
    config.addinivalue_line("markers", "slow: a hostile input that takes seconds to make or to read")


def _kib(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.M).group(1))


def peak_rss_growth(run) -> tuple[object, int]:
    """``run()``'s result and how far this process's resident memory rose above where it began (bytes).

    Linux keeps the peak (VmHWM); writing 5 to clear_refs resets it to the
    current size, so the peak read afterwards is this run's own. The PDF
    reader's children are separate processes under their own RLIMIT_AS.
    """
    Path("/proc/self/clear_refs").write_text("5")
    before = _kib("VmRSS")
    result = run()
    return result, (_kib("VmHWM") - before) * 1024


@dataclass
class CycleResult:
    """What one cycle with a hostile mail in the inbox left behind."""

    report: daemon.CycleReport
    rss_growth: int  # bytes above the process's size before the cycle, at its peak
    hostile: RawMessage
    follow_up: RawMessage
    outbox: list[OutboxMessage]
    replies: list[ReceivedMail]
    folders: dict[str, int]  # messages in "inbox", "processed" and "quarantine"

    def outbox_for(self, raw: RawMessage) -> list[OutboxMessage]:
        return [o for o in self.outbox if o.raw_message_id == raw.id]

    def replies_to(self, address: str) -> list[ReceivedMail]:
        return [m for m in self.replies if address in m.rcpt_tos]


@pytest.fixture(scope="session")
def follow_up_mail() -> bytes:
    """An ordinary, complete application from another company."""
    base = "401099887123"
    values = sample_values(company_name="株式会社次工業", corporate_number=f"{check_digit(base)}{base}",
                           contact_email=NEXT_SENDER)
    return application_mail(render_application(values), sender=NEXT_SENDER, sender_name="佐藤 花子")


@pytest.fixture
def hostile_cycle(services, mailbox, smtp_sink, follow_up_mail):
    """``hostile_cycle(raw)``: deliver ``raw`` then the follow-up application, run one cycle."""

    def cycle(raw: bytes) -> CycleResult:
        mailbox.deliver(raw)
        mailbox.deliver(follow_up_mail)
        report, growth = peak_rss_growth(lambda: daemon.run_once(services))
        with Session(services.engine) as session:
            rows = session.exec(select(RawMessage).order_by(RawMessage.uid)).all()
            outbox = list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all())
            session.expunge_all()
        assert len(rows) == 2, f"both mails stored, got {len(rows)}"
        imap = services.settings.imap
        folders = {"inbox": mailbox.count("INBOX"), "processed": mailbox.count(imap.processed_folder),
                   "quarantine": mailbox.count(imap.quarantine_folder)}
        return CycleResult(report, growth, rows[0], rows[1], outbox, list(smtp_sink.messages), folders)

    return cycle
