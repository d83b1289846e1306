"""`mailbot demo`: the whole path on this machine, with nothing outside it.

It starts an IMAP server (pymap, in memory) and an SMTP sink on 127.0.0.1,
drops sample mail into the mailbox (valid applications, a missing seal,
missing fields, one past the cap, an out-of-office reply, a Word file
instead of a PDF), runs one real cycle of the service against them with a
throwaway database, prints every reply and the queue, and stops what it
started. The demo program opens today, so it works on any date.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from email.header import decode_header, make_header
from pathlib import Path
from zoneinfo import ZoneInfo

from imapclient import IMAPClient
from sqlmodel import Session, select

from mailbot import PROJECT_ROOT, config, daemon, samples
from mailbot import status as status_use_case
from mailbot.forms.fill import render_application, sample_values
from mailbot.models import RawMessage
from mailbot.services import build
from mailbot.sink import SmtpSink

TOKYO = ZoneInfo("Asia/Tokyo")
USER, PASSWORD = "chizai@example.jp", "demo-password"
DEMO_CAP = 3


def main() -> int:
    """Run the demo; 0 when every sample got the answer it should."""
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter
    with tempfile.TemporaryDirectory(prefix="mailbot-demo-") as tmp, \
            imap_server() as imap_port, SmtpSink() as sink:
        settings = demo_settings(Path(tmp), imap_port, sink.port)
        services = build(settings)
        expected_replies = drop_samples(imap_port)
        report = daemon.run_once(services)
        sink.wait_for(expected_replies, timeout=30)
        print(f"== one cycle: stored {report.poll.stored}, processed {report.poll.processed}, "
              f"moved {report.poll.moved}, replies sent {report.sent}\n")
        print_arrivals(services)
        print_replies(sink)
        print("== the queue (mailbot status)\n")
        print(status_use_case.as_text(status_use_case.status(services.engine, settings.program)))
        return 0 if len(sink.messages) == expected_replies else 1


def demo_settings(tmp: Path, imap_port: int, smtp_port: int) -> config.Settings:
    """The shipped rules and templates, a fresh database, a program open today."""
    today = date.today()
    data = {
        "imap": {"host": "127.0.0.1", "port": imap_port, "username": USER, "password": PASSWORD,
                 "security": "none"},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none",
                 "from_address": USER, "from_name": "ジェトロ知的財産課（デモ）"},
        "database": {"url": f"sqlite:///{tmp / 'demo.db'}"},
        "program": {"opens": today - timedelta(days=1), "closes": today + timedelta(days=60),
                    "cap": DEMO_CAP, "signature": "ジェトロ知的財産課（デモ）"},
        "staff": {"digest_to": ["staff@example.jp"]},
        "service": {"rules_dir": str(PROJECT_ROOT / "rules"),
                    "templates_dir": str(PROJECT_ROOT / "templates")},
    }
    return config.validate(data, base_dir=tmp, origin="demo")


def drop_samples(port: int) -> int:
    """APPEND the sample mails, a second apart; return how many replies are due."""
    mails = sample_mails()
    with IMAPClient("127.0.0.1", port, ssl=False, timeout=10) as client:
        client.login(USER, PASSWORD)
        for offset, (_, raw) in enumerate(mails):
            client.append("INBOX", raw, msg_time=_arrival(offset))
    return sum(1 for answered, _ in mails if answered)


def sample_mails() -> list[tuple[bool, bytes]]:
    """(is a reply due, raw mail) for each sample, in arrival order."""
    def app(company, country, sender, contact, seal="red", **overrides):
        values = sample_values(company_name=company, country=country, contact_email=sender,
                               contact_name=contact, **overrides)
        return True, samples.application_mail(render_application(values, seal=seal), sender=sender)

    return [
        app("株式会社サンプル精機", "VN", "tanaka@sample-seiki.example.jp", "田中 一郎"),
        app("東洋テック株式会社", "TH", "sato@toyotech.example.jp", "佐藤 花子", seal="none"),
        app("株式会社みらい化成", "CN", "suzuki@mirai-kasei.example.jp", "鈴木 次郎",
            corporate_number=None, pledge_publicity=False),
        app("北星電機株式会社", "IN", "takahashi@hokusei.example.jp", "髙橋 三郎",
            corporate_number="1010401089234"),
        app("株式会社青葉食品", "EU:DE", "ito@aoba-foods.example.jp", "伊藤 由美",
            corporate_number="6011001035920"),
        app("株式会社ひかり工業", "ID", "kato@hikari.example.jp", "加藤 健",
            corporate_number="8010001034955"),
        (False, samples.out_of_office_mail(sender="yamada@example.co.jp")),
        (True, samples.attachment_mail(b"PK\x03\x04 demo", "申請書.docx", "application",
                                       "vnd.openxmlformats-officedocument.wordprocessingml.document",
                                       sender="kobayashi@example.co.jp")),
    ]


def _arrival(offset: int) -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=10 - offset)


def print_arrivals(services) -> None:
    """What arrived, in arrival order, and how each mail was classified."""
    with Session(services.engine) as session:
        rows = session.exec(select(RawMessage).order_by(RawMessage.arrived_at, RawMessage.uid)).all()
    print("== what arrived (the server's arrival order)\n")
    for row in rows:
        print(f"{row.arrived_at.astimezone(TOKYO):%H:%M:%S}  {row.sender:<32} {row.mail_class:<12} {row.reason}")
    print()


def print_replies(sink: SmtpSink) -> None:
    """Each reply: to whom, the subject, the body."""
    for number, message in enumerate(sink.messages, 1):
        parsed = message.message
        subject = str(make_header(decode_header(parsed["Subject"])))
        print(f"== reply {number}: to {', '.join(message.rcpt_tos)}\nSubject: {subject}\n")
        print(parsed.get_body(("plain",)).get_content().rstrip(), "\n")


@contextmanager
def imap_server() -> Iterator[int]:
    """pymap's in-memory IMAP server on a free 127.0.0.1 port, for the demo only."""
    port = _free_port()
    command = [sys.executable, "-c", "from pymap.main import main; main()", "--host", "127.0.0.1",
               "--port", str(port), "--no-tls", "dict", "--demo-user", USER, "--demo-password", PASSWORD]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_port(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the demo IMAP server stopped: {process.stderr.read().decode()[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the demo IMAP server did not start on port {port}")
