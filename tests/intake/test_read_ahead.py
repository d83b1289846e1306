"""The poller reads the PDFs of the next pending messages ahead (real Dovecot, real reader pool).

Reading ahead is only a head start: every PDF is still read once, the queue
is still the arrival order, what a message did not need is dropped, and a
stop leaves nothing read ahead behind.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlmodel import Session, select

from mailbot import PROJECT_ROOT, config, samples
from mailbot.forms.fill import corporate_number, render_application, sample_values
from mailbot.forms.pool import ReaderPool
from mailbot.intake import poller
from mailbot.models import Application, RawMessage
from mailbot.services import build
from tests.dovecot import append


@pytest.fixture
def services(imap_settings, tmp_path):
    today = date.today()
    data = {
        "imap": imap_settings.model_dump(),
        "smtp": {"host": "127.0.0.1", "port": 9, "security": "none", "from_address": "chizai@example.jp"},
        "database": {"url": f"sqlite:///{tmp_path / 'mailbot.db'}"},
        "program": {"opens": today - timedelta(days=1), "closes": today + timedelta(days=30), "cap": 10},
        "service": {"rules_dir": str(PROJECT_ROOT / "rules"), "templates_dir": str(PROJECT_ROOT / "templates"),
                    "pdf_workers": 2},
    }
    built = build(config.validate(data, base_dir=tmp_path, origin="test"))
    yield built
    built.read_form.close(timeout=30)


def company(i: int) -> str:
    return f"株式会社先読み{i:02d}"


def deliver(imap_settings, count: int, *, junk_at: int | None = None) -> None:
    """``count`` applications a minute apart, in reverse UID order of arrival (the clock decides);
    at ``junk_at`` a spam mail carrying a PDF (never read for a decision)."""
    first = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    for i in reversed(range(count)):
        pdf = render_application(sample_values(
            company_name=company(i), contact_email=f"tanto{i}@saki{i}.example.jp",
            corporate_number=corporate_number(f"{700000000000 + i:012d}")))
        subject = "未承諾広告※ 格安のご案内" if i == junk_at else None
        append(imap_settings, samples.application_mail(pdf, sender=f"tanto{i}@saki{i}.example.jp",
                                                       subject=subject), when=first + timedelta(minutes=i))


def queue_names(services) -> list[str]:
    with Session(services.engine) as session:
        return list(session.exec(select(Application.company_name).where(Application.position.is_not(None))
                                 .order_by(Application.position)).all())


def test_every_pdf_is_read_once_and_the_queue_is_the_arrival_order(services, imap_settings):
    deliver(imap_settings, 6)
    assert isinstance(services.read_form, ReaderPool)
    report = poller.poll(services)
    assert report.processed == 6
    assert queue_names(services) == [company(i) for i in range(6)]  # arrival order, not UID order
    assert services.read_form.reads == 6 and services.read_form.waiting == 0


def test_a_pdf_no_decision_needs_is_dropped(services, imap_settings):
    """GIVEN a spam mail with a PDF among applications WHEN polled THEN it is junk, the others queue,
    and nothing read ahead is left waiting."""
    deliver(imap_settings, 5, junk_at=2)
    poller.poll(services)
    with Session(services.engine) as session:
        classes = session.exec(select(RawMessage.mail_class).order_by(RawMessage.arrived_at)).all()
    assert classes == ["application", "application", "junk", "application", "application"]
    assert queue_names(services) == [company(i) for i in (0, 1, 3, 4)]
    assert services.read_form.waiting == 0


def test_a_stop_leaves_the_rest_stored_and_nothing_read_ahead(services, imap_settings):
    deliver(imap_settings, 5)
    def processed() -> int:
        with Session(services.engine) as session:
            return len(session.exec(select(RawMessage.id).where(RawMessage.status == "processed")).all())

    report = poller.poll(services, stop=lambda: processed() >= 2)
    assert report.processed == 2
    assert queue_names(services) == [company(0), company(1)]
    assert services.read_form.waiting == 0
    poller.poll(services)  # the next start answers the rest, in order
    assert queue_names(services) == [company(i) for i in range(5)]


def test_reading_ahead_holds_at_most_its_byte_budget(services, imap_settings, monkeypatch):
    """GIVEN a budget of two application mails' bytes WHEN six are polled THEN never more than two are
    held parsed ahead, and still every PDF is read once and the queue is the arrival order."""
    deliver(imap_settings, 6)
    with Session(services.engine) as session:
        assert not session.exec(select(RawMessage)).all()
    budget = 2 * len(samples.application_mail(render_application(sample_values()), sender="a@b.example.jp")) + 2000
    monkeypatch.setattr(poller, "READ_AHEAD_BYTES", budget)
    held = []
    real_up_to = poller.ReadAhead.up_to

    def up_to(self, index):
        real_up_to(self, index)
        held.append((len(self.held), sum(self.held.values())))

    monkeypatch.setattr(poller.ReadAhead, "up_to", up_to)
    poller.poll(services)
    assert max(count for count, _ in held) == 2 and all(size <= budget for _, size in held)
    assert queue_names(services) == [company(i) for i in range(6)]
    assert services.read_form.reads == 6
