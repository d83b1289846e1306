"""Several instances on one PostgreSQL database (issue 7 item 2), against a real Dovecot,
a real SMTP sink and the throwaway PostgreSQL of ``--database postgresql``.

The folder lock on its own (two sessions; a holder killed with SIGKILL), then two
instances on one mailbox: in threads of this process, and as two processes running
the daemon's cycle, the one polling killed -9 in the middle of the burst.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from mailbot import PROJECT_ROOT, config, daemon
from mailbot.config import ImapSettings
from mailbot.db import make_engine
from mailbot.instances import FolderLock, folder_key, polling
from mailbot.intake import poller
from mailbot.models import Application, OutboxMessage, RawMessage
from mailbot.services import Services, build
from tests.e2e.conftest import PROGRAM_ADDRESS, MailboxDriver, mailbox, smtp_sink  # noqa: F401  (fixtures)
from tests.e2e.test_daemon_process import burst_mail

ROOT = Path(__file__).resolve().parent.parent
N, CAP = 40, 30
#: Longest a burst of N takes two instances on this project's loaded 2-core machine.
BURST_SECONDS = 300


# --- the folder lock ----------------------------------------------------------------


def imap_for(folder: str = "INBOX", host: str = "imap.example.jp") -> ImapSettings:
    return ImapSettings(host=host, username="chizai@example.jp", folder=folder)


def test_the_key_is_stable_and_names_host_user_and_folder():
    key = folder_key(imap_for())
    assert key == folder_key(imap_for(host="IMAP.example.jp")) and -2**63 <= key < 2**63
    # The same in another process (Python's own hash() is salted per process).
    script = "from tests.test_instances import imap_for; from mailbot.instances import folder_key; " \
             "print(folder_key(imap_for()))"
    other = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert int(other.stdout) == key
    assert len({key, folder_key(imap_for("申請")), folder_key(imap_for(host="other.example.jp"))}) == 3


@pytest.mark.sqlite_only(reason="SQLite takes no lock: one instance per file")
def test_on_sqlite_the_lock_is_always_granted(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'mailbot.db'}")
    first, second = FolderLock(engine, 7), FolderLock(engine, 7)
    assert first.acquire() and second.acquire()


@pytest.fixture
def database_url(tmp_path) -> str:
    """The instances' database (PostgreSQL with --database postgresql), created at the schema head."""
    url = f"sqlite:///{tmp_path / 'mailbot.db'}"
    make_engine(url).dispose()
    return url


@pytest.mark.postgresql_only
def test_a_second_session_is_refused_while_the_first_holds_the_lock(database_url):
    one, two = make_engine(database_url), make_engine(database_url)
    first, second = FolderLock(one, 42), FolderLock(two, 42)
    assert first.acquire()
    assert not second.acquire()
    assert FolderLock(one, 43).acquire()  # another folder's lock is another lock
    first.release()
    assert second.acquire()
    assert not first.acquire()  # the connection it went back to the pool on holds nothing
    second.release()


@pytest.mark.postgresql_only
def test_the_lock_is_released_when_the_block_fails(database_url):
    engine, imap = make_engine(database_url), imap_for()
    with pytest.raises(RuntimeError), polling(engine, imap) as mine:
        assert mine
        raise RuntimeError("a poll that failed half-way")
    with polling(make_engine(database_url), imap) as mine:
        assert mine


@pytest.mark.postgresql_only
def test_a_refused_poll_is_logged_when_it_changes_not_every_cycle(database_url, caplog):
    """GIVEN another instance holding the folder WHEN this one tries three times, then gets it
    THEN one line says another instance polls, one says this one polls again."""
    imap = imap_for("logged")
    other = FolderLock(make_engine(database_url), folder_key(imap))
    engine = make_engine(database_url)
    assert other.acquire()
    with caplog.at_level("INFO", logger="mailbot.instances"):
        for _ in range(3):
            with polling(engine, imap) as mine:
                assert not mine
        other.release()
        for _ in range(2):
            with polling(engine, imap) as mine:
                assert mine
    lines = [record.getMessage() for record in caplog.records if record.name == "mailbot.instances"]
    assert len(lines) == 2 and "another instance" in lines[0] and "again" in lines[1], lines


HOLDER = """\
import sys, time
from mailbot.db import open_engine
from mailbot.instances import FolderLock
assert FolderLock(open_engine(sys.argv[1]), int(sys.argv[2])).acquire()
print("held", flush=True)
time.sleep(600)
"""


@pytest.mark.postgresql_only
def test_a_holder_killed_with_sigkill_frees_the_lock(database_url):
    """GIVEN another process holding the lock WHEN it is killed -9 (no goodbye to PostgreSQL)
    THEN PostgreSQL ends its session and the lock is free within seconds."""
    engine = make_engine(database_url)
    url = engine.url.render_as_string(hide_password=False)  # the real database, not the SQLite stand-in
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url, "99"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not FolderLock(engine, 99).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    lock = FolderLock(engine, 99)
    assert wait_until(lock.acquire, 15), "the lock of a killed holder was never freed"
    lock.release()


def wait_until(condition, seconds: float, step: float = 0.1):
    """The condition's first true value within ``seconds``; None if it never came."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(step)
    return None


# --- two instances on one mailbox ---------------------------------------------------------


def run_both(work, arguments: list) -> None:
    """``work(argument)`` for each argument, all at once in threads; a thread's error is raised here."""
    with ThreadPoolExecutor(len(arguments)) as pool:
        for future in [pool.submit(work, argument) for argument in arguments]:
            future.result(timeout=BURST_SECONDS + 60)


def settings_data(imap: ImapSettings, smtp_port: int, database_url: str) -> dict:
    """One program open today with CAP places; what each instance validates as its settings."""
    today = date.today()
    return {
        "imap": imap.model_dump(mode="json"),
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none",
                 "from_address": PROGRAM_ADDRESS, "from_name": "ジェトロ知的財産課"},
        "database": {"url": database_url},
        "program": {"opens": str(today - timedelta(days=30)), "closes": str(today + timedelta(days=60)),
                    "cap": CAP, "signature": "ジェトロ知的財産課"},
        "service": {"rules_dir": str(PROJECT_ROOT / "rules"), "templates_dir": str(PROJECT_ROOT / "templates"),
                    "pdf_workers": 1},
    }


def instance(data: dict, base_dir: Path) -> Services:
    """One instance: its own engine, reader and settings."""
    return build(config.validate(data, base_dir=base_dir, origin="test"))


def deliver_burst(mailbox: MailboxDriver, n: int = N) -> list[str]:
    """Company i's application arrives i minutes after the first; the senders in arrival order."""
    senders = []
    for i in range(n):
        sender, raw = burst_mail(i)
        mailbox.deliver(raw)
        senders.append(sender)
    return senders


def done(engine, n: int = N) -> bool:
    """Every mail stored, processed and moved; every reply sent."""
    with Session(engine) as session:
        raws = session.exec(select(RawMessage.status, RawMessage.moved)).all()
        outbox = session.exec(select(OutboxMessage.status)).all()
    return (len(raws) == n and all(status == "processed" and moved for status, moved in raws)
            and len(outbox) >= n and set(outbox) == {"sent"})


def check_the_outcome(engine, sink, mailbox: MailboxDriver, senders: list[str], kills: int = 0) -> None:
    """Stored once, one application per company in arrival order, cap and waiting list
    right, every reply received once, nothing pending, the inbox empty.

    ``kills``: an instance killed -9 between the server's "250" and the row marked sent
    leaves that reply to be sent again (same Message-ID): at most one resend per kill."""
    with Session(engine) as session:
        raws = session.exec(select(RawMessage.uid, RawMessage.message_id)).all()
        apps = session.exec(select(Application).order_by(Application.reception_number)).all()
        replies = session.exec(select(OutboxMessage.message_id, OutboxMessage.status)).all()
    assert len(raws) == N and len({uid for uid, _ in raws}) == len({mid for _, mid in raws}) == N
    assert [app.sender for app in apps] == senders  # one each, numbered in arrival order
    assert len({app.reception_number for app in apps}) == N
    assert [(app.state, app.position) for app in apps] == (
        [("queued", p) for p in range(1, CAP + 1)] + [("waitlisted", p) for p in range(1, N - CAP + 1)])
    received = Counter(str(mail.message["Message-ID"]) for mail in sink.messages)
    assert set(received) == {message_id for message_id, _status in replies}
    resends = sum(received.values()) - len(received)
    assert resends <= kills, f"{resends} resends for {kills} kills: {received.most_common(3)}"
    assert {status for _id, status in replies} == {"sent"}
    assert {address for mail in sink.messages for address in mail.rcpt_tos} >= set(senders)
    assert (mailbox.count("INBOX"), mailbox.count("mailbot/processed")) == (0, N)


@pytest.mark.postgresql_only
def test_two_instances_in_threads_share_one_mailbox_without_double_work(
        imap_settings, smtp_sink, mailbox, database_url, tmp_path):
    """GIVEN two instances (their own engines, readers and IMAP connections) cycling at
    once on one mailbox and one database WHEN 40 companies apply THEN each mail is
    handled once: one poller at a time, the other only sends."""
    data = settings_data(imap_settings, smtp_sink.port, database_url)
    both = [instance(data, tmp_path), instance(data, tmp_path)]
    senders = deliver_burst(mailbox)
    reports: list[list[daemon.CycleReport]] = [[], []]
    finished = threading.Event()

    def cycle(index: int) -> None:
        deadline = time.monotonic() + BURST_SECONDS
        while not finished.is_set() and time.monotonic() < deadline:
            reports[index].append(daemon.run_once(both[index]))
            if done(both[index].engine):
                finished.set()

    try:
        run_both(cycle, [0, 1])
    finally:
        for services in both:
            services.read_form.close()
    assert finished.is_set(), "the burst was not done in time"
    polls = [report.poll for own in reports for report in own]
    assert any(p.other_instance for p in polls), "the two never met at the folder"
    assert sum(p.stored for p in polls) == sum(p.processed for p in polls) == sum(p.moved for p in polls) == N
    check_the_outcome(both[0].engine, smtp_sink, mailbox, senders)


@pytest.mark.postgresql_only
def test_two_instances_on_two_folders_take_places_and_numbers_one_at_a_time(
        imap_settings, smtp_sink, mailbox, database_url, tmp_path):
    """GIVEN two instances processing at the same time (each its own folder, one program)
    WHEN 40 companies apply, 20 into each folder THEN admission is serialised: distinct
    reception numbers, CAP places taken once each, the rest on the waiting list."""
    from imapclient import IMAPClient

    with IMAPClient(imap_settings.host, imap_settings.port, ssl=False) as client:
        client.login(imap_settings.username, imap_settings.password)
        client.create_folder("applications")
    folders = ["INBOX", "applications"]
    both = [instance(settings_data(imap_settings.model_copy(update={"folder": folder}), smtp_sink.port,
                                   database_url), tmp_path) for folder in folders]
    for i in range(N):
        _sender, raw = burst_mail(i)
        with IMAPClient(imap_settings.host, imap_settings.port, ssl=False) as client:
            client.login(imap_settings.username, imap_settings.password)
            client.append(folders[i % 2], raw)
    start = threading.Barrier(2)

    def process(services: Services) -> None:
        start.wait()
        poller.poll(services)

    try:
        run_both(process, both)
    finally:
        for services in both:
            services.read_form.close()
    with Session(both[0].engine) as session:
        apps = session.exec(select(Application.state, Application.position, Application.reception_number)).all()
    assert len(apps) == N and len({number for *_rest, number in apps}) == N
    positions = Counter((state, position) for state, position, _number in apps)
    assert positions == Counter([("queued", p) for p in range(1, CAP + 1)]
                                + [("waitlisted", p) for p in range(1, N - CAP + 1)])


# --- two processes, one killed -9 mid-burst ----------------------------------------------


def keep_cycling(settings_file: str) -> None:
    """A `mailbot run` stand-in for the test below: the daemon's cycle in a loop, one JSON
    line per cycle on stdout (run by ``python -c`` in a process of its own)."""
    data = json.loads(Path(settings_file).read_text())
    services = instance(data, Path(settings_file).parent)
    print(json.dumps({"ready": os.getpid()}), flush=True)
    while True:
        report = daemon.run_once(services)
        print(json.dumps({"other_instance": report.poll.other_instance if report.poll else None,
                          "processed": report.poll.processed if report.poll else 0,
                          "sent": report.sent}), flush=True)
        time.sleep(0.2)


class Instance:
    """One ``keep_cycling`` process; its PostgreSQL sessions carry ``name`` (PGAPPNAME)."""

    def __init__(self, name: str, settings_file: Path):
        self.name = name
        self.output = settings_file.parent / f"{name}.log"
        env = {**os.environ, "PGAPPNAME": name,
               "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        script = "import sys; from tests.test_instances import keep_cycling; keep_cycling(sys.argv[1])"
        with open(self.output, "w") as log:
            self.process = subprocess.Popen([sys.executable, "-c", script, str(settings_file)], cwd=ROOT,
                                            stdout=log, stderr=subprocess.STDOUT, env=env)

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.output.read_text().splitlines() if line.startswith("{")]

    def ready(self) -> bool:
        assert self.process.poll() is None, self.output.read_text()[-3000:]
        return any("ready" in line for line in self.lines())

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        self.process.wait(30)


def lock_holder(engine, imap: ImapSettings) -> str | None:
    """The application_name of the session holding the folder's lock, if one does."""
    key = folder_key(imap) & 0xFFFFFFFFFFFFFFFF  # pg_locks shows the bigint as two unsigned halves
    query = text("SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                 "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                 "AND l.classid::bigint = :high AND l.objid::bigint = :low")
    with engine.connect() as connection:
        return connection.execute(query, {"high": key >> 32, "low": key & 0xFFFFFFFF}).scalar()


def holding_mid_burst(engine, imap: ImapSettings, instances: list[Instance]) -> str | None:
    """The instance holding the folder while the 5th to the (N-5)th application are processed,
    once another has been refused the folder (waited its turn); else None."""
    if not 5 <= processed_count(engine) < N - 5:
        return None
    holder = lock_holder(engine, imap)
    waited = any(line.get("other_instance") for one in instances if one.name != holder for line in one.lines())
    return holder if waited else None


def processed_count(engine) -> int:
    with Session(engine) as session:
        return len(session.exec(select(RawMessage.id).where(RawMessage.status == "processed")).all())


@pytest.mark.postgresql_only
def test_two_processes_one_killed_mid_burst_the_other_takes_over_and_nothing_is_done_twice(
        imap_settings, smtp_sink, mailbox, database_url, tmp_path):
    """GIVEN two processes started on one mailbox and database with 40 applications waiting
    WHEN the one holding the folder is killed -9 in the middle of them, the other having been
    refused the folder meanwhile THEN the other takes the folder over: every mail stored and
    answered once (a resend repeats its Message-ID), the queue in arrival order.

    The burst is in the inbox before they start: the first to poll holds the folder for all 40,
    so the holder caught mid-burst is the one at work (with the burst arriving mail by mail, a
    poll finds a few at a time and the lock changes hands between polls: CI caught an idle
    holder, killed while the other did the work)."""
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps(settings_data(imap_settings, smtp_sink.port, database_url)))
    senders = deliver_burst(mailbox)
    instances = [Instance(name, settings_file) for name in ("instance-a", "instance-b")]
    engine = make_engine(database_url)
    try:
        assert wait_until(lambda: all(one.ready() for one in instances), 120), "an instance did not start"
        holder = wait_until(lambda: holding_mid_burst(engine, imap_settings, instances), BURST_SECONDS, step=0.05)
        assert holder in ("instance-a", "instance-b"), f"never caught an instance mid-burst ({holder})"
        killed = next(one for one in instances if one.name == holder)
        killed.stop(signal.SIGKILL)
        print(f"\nkilled {holder} (holding the folder) with {processed_count(engine)} of {N} processed")
        survivor = next(one for one in instances if one is not killed)
        cycles_before_kill = len(survivor.lines())
        assert wait_until(lambda: done(engine), BURST_SECONDS, step=0.5), survivor.output.read_text()[-3000:]
    finally:
        for one in instances:
            one.stop()
    assert processed_count(engine) == N and killed.process.returncode == -signal.SIGKILL
    taken_over = sum(line.get("processed", 0) for line in survivor.lines()[cycles_before_kill:])
    assert taken_over > 0, f"the survivor never took over:\n{survivor.output.read_text()[-3000:]}"
    check_the_outcome(engine, smtp_sink, mailbox, senders, kills=1)
