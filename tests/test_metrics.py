"""mailbot.metrics: the /metrics endpoint scraped over HTTP, on a database the real pipeline filled.

The mails are stored as the poller stores them and processed by the real
pipeline (PDFs read, rules checked, replies queued); the outbox sends them to a
real SMTP server that refuses one address. Then the endpoint is scraped with
urllib and parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import urllib.request
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy
from prometheus_client.parser import text_string_to_metric_families

from mailbot import PROJECT_ROOT, config, metrics, outbox, pipeline, samples
from mailbot.db import transaction
from mailbot.errors import ConfigError, MailError
from mailbot.forms.fill import corporate_number, render_application, sample_values
from mailbot.intake import poller
from mailbot.models import RawMessage
from mailbot.services import build
from mailbot.sink import SmtpSink

CORPUS = Path(__file__).parent / "corpus"
REFUSED = "gone@sample-kogyo.example.jp"  # the SMTP server answers 550 for it: that reply fails


def make_services(data_dir: Path, smtp_port: int, cap: int = 1, program_id: str = config.DEFAULT_PROGRAM):
    data = {
        "imap": {"host": "127.0.0.1", "port": 1, "username": "chizai", "security": "none"},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none", "from_address": "chizai@example.jp"},
        "database": {"url": f"sqlite:///{data_dir / 'mailbot.db'}"},
        "program": {"opens": date.today() - timedelta(days=30), "closes": date.today() + timedelta(days=60),
                    "cap": cap},
        "service": {"rules_dir": str(PROJECT_ROOT / "rules"), "templates_dir": str(PROJECT_ROOT / "templates")},
    }
    return build(config.validate(data, base_dir=data_dir, origin="test", program_id=program_id))


def application(sender: str, company: str, base12: str, seal: str = "red") -> bytes:
    values = sample_values(company_name=company, corporate_number=corporate_number(base12), contact_email=sender)
    return samples.application_mail(render_application(values, seal=seal), sender=sender)


def store(services, raw: bytes, uid: int) -> int:
    """The message as poller._store leaves it: raw, status new, arrival order by uid."""
    arrived = datetime.now(timezone.utc) - timedelta(minutes=60 - uid)
    with transaction(services.engine) as session:
        row = RawMessage(folder="INBOX", uidvalidity=1, uid=uid, arrived_at=arrived, size=len(raw),
                         sha256=hashlib.sha256(raw).hexdigest(), message_id=poller.header_message_id(raw), raw=raw)
        session.add(row)
        session.flush()
        return row.id


@pytest.fixture
def sink():
    with SmtpSink(refuse={REFUSED: "550 5.1.1 No such user"}) as running:
        yield running


@pytest.fixture
def services(tmp_path, sink):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    return make_services(data_dir, sink.port)


@pytest.fixture
def endpoint(services):
    server = metrics.serve(services, 0)
    yield server
    server.stop()


def scrape(server, program: str = "default") -> dict[tuple[str, tuple], float]:
    """``program``'s samples as {(name, sorted labels but program): value}; every sample names its program."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = dict(sample.labels)
            if labels.pop("program") == program:  # a sample without the label fails here (KeyError)
                values[(sample.name, tuple(sorted(labels.items())))] = sample.value
    return values


def seed(services) -> None:
    """Six mails through the real pipeline, one quarantined, one poll, the outbox sent."""
    mails = [application("tanaka@sample-seiki.example.jp", "株式会社サンプル精機", "010401099887"),  # queued
             application("sato@nihon-kikai.example.jp", "日本機械株式会社", "020401055501"),  # cap 1: waitlisted
             application(REFUSED, "サンプル工業株式会社", "030401077703", seal="none"),  # needs_fix, reply refused
             samples.out_of_office_mail(sender="suzuki@example.co.jp"),
             (CORPUS / "15-spam-mishodaku-kokoku.eml").read_bytes(),
             (CORPUS / "16-question-no-attachment.eml").read_bytes()]
    for uid, raw in enumerate(mails, start=1):
        store(services, raw, uid)
    assert poller.process_pending(services) == 6
    broken = store(services, b"Subject: unreadable\r\n\r\n", 7)
    pipeline.quarantine(services, broken, MailError("the PDF reader is not installed"))
    store(services, (CORPUS / "16-question-no-attachment.eml").read_bytes(), 8)  # stored, not processed yet
    poller.record_poll(services, "INBOX", 1)
    outbox.send_pending(services.engine, services.settings.smtp)


def test_the_numbers_are_those_of_the_database(services, sink, endpoint):
    seed(services)
    values = scrape(endpoint)
    assert values[("mailbot_up", ())] == 1
    messages = {labels[0][1]: value for (name, labels), value in values.items() if name == "mailbot_messages_total"}
    assert messages == {"application": 3, "automatic": 1, "junk": 1, "question": 1, "quarantined": 1}
    assert values[("mailbot_messages_unprocessed", ())] == 1
    sent = {labels[0][1]: value for (name, labels), value in values.items() if name == "mailbot_replies_sent_total"}
    assert sent == {"receipt": 1, "waitlisted": 1}
    assert [m.rcpt_tos for m in sink.messages] and len(sink.messages) == 2
    assert values[("mailbot_failures_total", (("what", "outbox"),))] == 1  # the fix_request, refused with 550
    assert values[("mailbot_failures_total", (("what", "quarantine"),))] == 1
    assert values[("mailbot_queue_length", ())] == 1
    assert (values[("mailbot_cap_used", ())], values[("mailbot_cap", ())]) == (1, 1)
    assert values[("mailbot_waitlist_length", ())] == 1
    assert values[("mailbot_outbox_pending", ())] == 0
    assert 0 <= values[("mailbot_last_poll_age_seconds", ())] < 60


def test_each_scrape_reads_the_database_again(services, endpoint):
    before = scrape(endpoint)
    assert before[("mailbot_up", ())] == 1
    assert before[("mailbot_last_poll_age_seconds", ())] == float("inf")  # never polled: an age alert fires
    assert before[("mailbot_queue_length", ())] == 0
    store(services, application("tanaka@sample-seiki.example.jp", "株式会社サンプル精機", "010401099887"), 1)
    poller.process_pending(services)
    after = scrape(endpoint)
    assert after[("mailbot_queue_length", ())] == 1 and after[("mailbot_outbox_pending", ())] == 1
    assert after[("mailbot_messages_total", (("class", "application"),))] == 1


def test_a_second_instance_on_the_same_database_says_the_same(services, tmp_path, sink, endpoint):
    seed(services)
    other = metrics.serve(make_services(tmp_path / "data", sink.port), 0)
    try:
        mine, theirs = scrape(endpoint), scrape(other)
        age = ("mailbot_last_poll_age_seconds", ())
        assert theirs.pop(age) == pytest.approx(mine.pop(age), abs=5)  # the age moves between the scrapes
        assert theirs == mine
    finally:
        other.stop()


def test_it_listens_on_127_0_0_1_only(endpoint):
    assert endpoint.address[0] == "127.0.0.1"
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=5):
        pass
    # Another loopback address of the same machine: a server bound to 0.0.0.0 would answer here.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", endpoint.port), timeout=5).close()


@pytest.mark.sqlite_only(reason="the database is made gone by deleting its SQLite file")
def test_a_database_that_is_gone_answers_up_0(services, tmp_path, endpoint):
    seed(services)
    services.engine.dispose()
    shutil.rmtree(tmp_path / "data")
    values = scrape(endpoint)
    assert values == {("mailbot_up", ()): 0}


def test_stop_closes_the_port(services):
    server = metrics.serve(services, 0)
    port = server.port
    server.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_a_port_already_taken_is_refused_with_the_setting_named(services, endpoint):
    with pytest.raises(ConfigError, match=rf"metrics_port = {endpoint.port}: cannot listen on 127.0.0.1"):
        metrics.serve(services, endpoint.port)


def test_several_programs_on_one_endpoint_each_from_its_own_database(tmp_path, sink):
    """GIVEN two programs (one endpoint), ts seeded with six mails, design with one application,
    and a third whose database server does not answer
    THEN each program's samples are its own database's numbers, the gone one says up 0 alone."""
    folders = [tmp_path / name for name in ("ts", "design", "gone")]
    for folder in folders:
        folder.mkdir()
    ts, design, gone = (make_services(folder, sink.port, cap=cap, program_id=folder.name)
                        for folder, cap in zip(folders, (1, 5, 3)))
    seed(ts)
    store(design, application("c@gamma.example.jp", "ガンマデザイン株式会社", "010401000033"), 1)
    poller.process_pending(design)
    gone.engine.dispose()
    gone.engine = sqlalchemy.create_engine(f"postgresql+psycopg://mailbot@127.0.0.1:{free_port()}/mailbot")
    server = metrics.serve([ts, design, gone], 0)
    try:
        numbers = {program: scrape(server, program) for program in ("ts", "design", "gone")}
    finally:
        server.stop()
    assert numbers["ts"][("mailbot_messages_total", (("class", "application"),))] == 3
    assert numbers["design"][("mailbot_messages_total", (("class", "application"),))] == 1
    assert (numbers["ts"][("mailbot_cap", ())], numbers["design"][("mailbot_cap", ())]) == (1, 5)
    assert (numbers["ts"][("mailbot_waitlist_length", ())], numbers["design"][("mailbot_queue_length", ())]) == (1, 1)
    assert numbers["design"][("mailbot_failures_total", (("what", "quarantine"),))] == 0
    assert numbers["gone"] == {("mailbot_up", ()): 0}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
