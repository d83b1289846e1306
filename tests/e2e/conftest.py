"""End-to-end fixtures: a real Dovecot mailbox (tests/conftest.py), a real SMTP sink,
a fresh SQLite database, the shipped rules and templates."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from imapclient import IMAPClient

from mailbot import PROJECT_ROOT, config
from mailbot.services import build
from mailbot.sink import SmtpSink

PROGRAM_ADDRESS = "chizai@example.jp"


@pytest.fixture
def smtp_sink():
    """A real aiosmtpd server on 127.0.0.1 recording every message."""
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def make_settings(imap_settings, smtp_sink, tmp_path):
    """Settings for one test's mailbox, sink and database; program overrides as keywords."""

    def make(**program) -> config.Settings:
        today = date.today()
        data = {
            "imap": imap_settings.model_dump(),
            "smtp": {"host": "127.0.0.1", "port": smtp_sink.port, "security": "none",
                     "from_address": PROGRAM_ADDRESS, "from_name": "ジェトロ知的財産課"},
            "database": {"url": f"sqlite:///{tmp_path / 'mailbot.db'}"},
            "program": {"opens": today - timedelta(days=30), "closes": today + timedelta(days=60),
                        "cap": 18, "signature": "ジェトロ知的財産課", **program},
            "service": {"rules_dir": str(PROJECT_ROOT / "rules"),
                        "templates_dir": str(PROJECT_ROOT / "templates")},
        }
        return config.validate(data, base_dir=tmp_path, origin="test")

    return make


@pytest.fixture
def services(make_settings):
    """The services on the default test program (open today, cap 18)."""
    return build(make_settings())


class MailboxDriver:
    """What a company (APPEND) and a staff member (look at folders) do to the mailbox."""

    def __init__(self, settings):
        self.settings = settings
        self._clock = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)

    def _client(self) -> IMAPClient:
        client = IMAPClient(self.settings.host, self.settings.port, ssl=False, timeout=10)
        client.login(self.settings.username, self.settings.password)
        return client

    def deliver(self, raw: bytes, at: datetime | None = None) -> None:
        """APPEND a message; arrivals a minute apart unless ``at`` is given."""
        self._clock += timedelta(minutes=1)
        with self._client() as client:
            client.append("INBOX", raw, msg_time=at or self._clock)

    def count(self, folder: str) -> int:
        with self._client() as client:
            if not client.folder_exists(folder):
                return 0
            return client.select_folder(folder, readonly=True)[b"EXISTS"]


@pytest.fixture
def mailbox(imap_settings) -> MailboxDriver:
    return MailboxDriver(imap_settings)
