"""The chaos suite's parts (issue 7 item 5): a burst of distinct applications written straight
into Dovecot's Maildir, `mailbot run` as a real process that is killed and started again, and
what the database, the mailbox and the SMTP sink hold once the storm is over.

Sizes: MAILBOT_CHAOS_N mails and MAILBOT_CHAOS_KILLS kills (CI's defaults are small; the
issue's full run is N=500, K=20). MAILBOT_CHAOS_SEED replays the random kill points of an
earlier run (every test prints the seed it used).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from mailbot import PROJECT_ROOT
from mailbot.config import ImapSettings
from mailbot.db import open_engine
from mailbot.intake.imap import Mailbox
from mailbot.models import Application, OutboxMessage, RawMessage
from mailbot.sink import SmtpSink
from tests.e2e.conftest import mailbox, smtp_sink  # noqa: F401  (fixtures)
from tests.e2e.test_daemon_process import MAILBOT, burst_mail
from tests.e2e.test_daemon_process import config_text as daemon_config_text

#: CI's size: a few kills over a burst that takes well under two minutes per database.
DEFAULT_N, DEFAULT_KILLS = 60, 5
#: A start of `mailbot run` (imports, schema check, first login) to its first cycle.
START_SECONDS = 90
#: Reading, answering and sending one application at worst, on a loaded 2-core machine.
SECONDS_PER_MAIL = 2.0


@dataclass(frozen=True)
class Storm:
    """How big this run is, and the seed its random choices came from."""

    n: int
    kills: int
    seed: int


@pytest.fixture
def storm() -> Storm:
    """The run's size and seed, printed so that a failure can be replayed."""
    seed = int(os.environ.get("MAILBOT_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    size = Storm(int(os.environ.get("MAILBOT_CHAOS_N", DEFAULT_N)),
                 int(os.environ.get("MAILBOT_CHAOS_KILLS", DEFAULT_KILLS)), seed)
    print(f"\nchaos: N={size.n} kills={size.kills} MAILBOT_CHAOS_SEED={size.seed}")
    return size


# --- the burst ------------------------------------------------------------------


def company(i: int) -> str:
    """Company i's name, as burst_mail writes it in the form."""
    return f"株式会社バースト{i:05d}"


def sender(i: int) -> str:
    return f"tanto{i}@burst{i}.example.jp"


def preload(maildir: Path, imap: ImapSettings, mails: list[bytes]) -> None:
    """Every mail written into Maildir new/ at once, mail i arriving i seconds after the first.

    As bench/burst.py does: the file's mtime is Dovecot's INTERNALDATE, the clock
    that orders the queue; the first arrives an hour and N seconds ago."""
    with Mailbox(imap) as box:
        box.select()  # Dovecot creates the Maildir on first access
    owner = (maildir / "new").stat()
    first = int(time.time()) - 3600 - len(mails)
    for i, raw in enumerate(mails):
        name = f"{first + i}.M{i}P1.chaos"
        tmp, new = maildir / "tmp" / name, maildir / "new" / name
        tmp.write_bytes(raw)
        os.utime(tmp, (first + i, first + i))
        os.chown(tmp, owner.st_uid, owner.st_gid)
        tmp.rename(new)


def burst(n: int) -> list[bytes]:
    """N applications from N companies, each with its own stamped PDF."""
    return [burst_mail(i)[1] for i in range(n)]


def maildir_of(server, username: str) -> Path:
    """Where tests/dovecot.py's server keeps ``username``'s mail."""
    return server.base / "mail" / username / "Maildir"


# --- the daemon as a process ------------------------------------------------------


def config_text(imap: ImapSettings, smtp_port: int, workdir: Path, cap: int) -> str:
    """A program open today with room for every company (the order is what is checked): the daemon
    tests' config, with the shipped rules (no staff: a health alert has nobody to go to)."""
    return daemon_config_text(imap, smtp_port, workdir, PROJECT_ROOT / "rules", cap,
                              service="max_replies_per_recipient = 10")


class Daemon:
    """One `mailbot run` process on a config file; its output in its own log file."""

    def __init__(self, config_path: Path, password: str, number: int):
        self.config_path, self.password = config_path, password
        self.log_path = config_path.parent / f"daemon-{number:03d}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> Daemon:
        env = {**os.environ, "MAILBOT_IMAP__PASSWORD": self.password}  # secrets in the environment
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            env.pop(name, None)
        with open(self.log_path, "wb") as output:
            self.process = subprocess.Popen([str(MAILBOT), "--config", str(self.config_path), "run"],
                                            stdout=output, stderr=subprocess.STDOUT, env=env,
                                            cwd=self.config_path.parent)
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Until ``condition()`` holds, this daemon running all along."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.alive(), f"daemon exited ({self.process.returncode}):\n{self.log[-5000:]}"
            assert time.monotonic() < deadline, f"{what}: not within {timeout}s:\n{self.log[-5000:]}"
            time.sleep(0.05)

    def wait_for_log(self, text: str, timeout: float = START_SECONDS) -> None:
        self.wait_for(lambda: text in self.log, timeout, what=f"{text!r} in the log")

    def wait_for_log_count(self, text: str, count: int, timeout: float = 60) -> None:
        """Until ``text`` has been logged ``count`` times (a cycle line: that many cycles)."""
        self.wait_for(lambda: self.log.count(text) >= count, timeout, what=f"{count} x {text!r} in the log")

    def kill9(self) -> set[tuple[int, int]]:
        """SIGKILL, as the kernel's OOM killer or a pulled plug would; the processes it had
        forked (the PDF readers), as (pid, start time), to look for afterwards."""
        children = descendants(self.pid)
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        return children

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill_if_running(self) -> None:
        if self.alive():
            self.process.kill()
            self.process.wait(10)


class Daemons:
    """The `mailbot run` processes of one test, all on one config file."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.config_path = workdir / "config.toml"
        self.password = ""
        self.started: list[Daemon] = []

    def configure(self, imap: ImapSettings, smtp_port: int, cap: int) -> None:
        """Write the config and create the schema (the progress is read from the first moment)."""
        self.config_path.write_text(config_text(imap, smtp_port, self.workdir, cap), encoding="utf-8")
        self.password = imap.password
        subprocess.run([str(MAILBOT), "--config", str(self.config_path), "db", "upgrade"], check=True,
                       capture_output=True, timeout=120, cwd=self.workdir)

    def start(self) -> Daemon:
        """One more `mailbot run` on the config."""
        self.started.append(Daemon(self.config_path, self.password, len(self.started)).start())
        return self.started[-1]

    def kill_all(self) -> None:
        for daemon in self.started:
            daemon.kill_if_running()


@pytest.fixture
def daemons(tmp_path):
    """``configure(imap, smtp_port, cap)`` once, then ``start()`` as often as wanted; whatever
    still runs at the end is killed."""
    started = Daemons(tmp_path)
    yield started
    started.kill_all()


# --- processes -------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (state is [0], ppid [1], start time [19])."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rpartition(")")[2].split()


def descendants(pid: int) -> set[tuple[int, int]]:
    """Every process below ``pid`` (children, their children...), as (pid, start time)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if (fields := _stat(child)) is not None:
                found.add((child, int(fields[19])))
                todo.append(child)
    return found


def still_running(processes: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Those of ``processes`` that still run: same pid, same start time, not a zombie
    (a reaped-by-nobody zombie holds no memory and does no work)."""
    running = set()
    for pid, started in processes:
        fields = _stat(pid)
        if fields is not None and int(fields[19]) == started and fields[0] != "Z":
            running.add((pid, started))
    return running


def wait_until_gone(processes: set[tuple[int, int]], timeout: float) -> set[tuple[int, int]]:
    """Waits up to ``timeout`` seconds; those still running then."""
    deadline = time.monotonic() + timeout
    while (left := still_running(processes)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


# --- what the storm left behind --------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """How far the burst has gone: mails stored, processed, moved out of the inbox, replies sent."""

    stored: int
    processed: int
    moved: int
    sent: int

    @property
    def steps(self) -> int:
        return self.stored + self.processed + self.moved + self.sent


def progress(engine) -> Progress:
    def count(table, *where) -> int:
        return session.exec(select(func.count()).select_from(table).where(*where)).one()

    with Session(engine) as session:
        return Progress(count(RawMessage), count(RawMessage, RawMessage.status != "new"),
                        count(RawMessage, RawMessage.moved == True),  # noqa: E712  (SQL, not Python)
                        count(OutboxMessage, OutboxMessage.status == "sent"))


def next_target(rng: random.Random, before: int, steps: int, kills_left: int) -> int:
    """The next kill point: at random in the work left, each kill's share of it on average.

    Drawn from what is left, not fixed up front: moves go in chunks and (on PostgreSQL)
    replies go out while mail is processed, so progress jumps, and points fixed up front
    fell past the end (at N=500 three of twenty kills found the burst over). At least one
    step after ``before``: every killed daemon has done something."""
    share = (steps - before) / kills_left
    return max(before + 1, min(before + round(rng.uniform(0, 2) * share), steps - 1))


def patience(n: int) -> float:
    """How long one daemon may take to go a step, at worst."""
    return START_SECONDS + SECONDS_PER_MAIL * n


def wait_for_progress(engine, steps: int, daemon: Daemon, timeout: float) -> Progress:
    """Until the burst has gone ``steps`` steps (Progress.steps) with ``daemon`` running."""
    reached: list[Progress] = []

    def there() -> bool:
        reached[:] = [progress(engine)]
        return reached[0].steps >= steps

    daemon.wait_for(there, timeout, what=f"{steps} steps of the burst")
    return reached[0]


def database(tmp_path: Path):
    """The daemons' database (a PostgreSQL one with --database postgresql: tests/conftest.py)."""
    return open_engine(f"sqlite:///{tmp_path / 'mailbot.db'}")


def receipts_by_sender(sink: SmtpSink) -> dict[str, Counter]:
    """recipient -> Counter of the Message-IDs they received (a resend repeats its Message-ID)."""
    got: dict[str, Counter] = {}
    for mail in sink.messages:
        for address in mail.rcpt_tos:
            got.setdefault(address, Counter())[str(mail.message["Message-ID"])] += 1
    return got


def stored_once(engine, n: int) -> None:
    """N raw rows, no (folder, uidvalidity, uid) twice, every one processed and moved."""
    with Session(engine) as session:
        rows = session.exec(select(RawMessage.folder, RawMessage.uidvalidity, RawMessage.uid,
                                   RawMessage.status, RawMessage.moved)).all()
    assert len(rows) == n, f"{len(rows)} raw_message rows for {n} mails"
    keys = Counter((folder, validity, uid) for folder, validity, uid, _status, _moved in rows)
    assert keys.most_common(1)[0][1] == 1, [key for key, times in keys.items() if times > 1]
    assert Counter(status for *_key, status, _moved in rows) == {"processed": n}
    assert all(moved for *_rest, moved in rows)


def queue_in_arrival_order(engine, n: int) -> None:
    """One application per company; positions and reception numbers both follow arrival order."""
    with Session(engine) as session:
        queue = session.exec(select(Application.company_name, Application.reception_number)
                             .order_by(Application.position)).all()
    names = [name for name, _number in queue]
    assert Counter(names).most_common(1)[0][1] == 1, "a company has two applications"
    assert names == [company(i) for i in range(n)], "the queue is not in arrival order"
    numbers = [number for _name, number in queue]
    assert numbers == sorted(numbers), "reception numbers are not given in arrival order"


def one_receipt_each(engine, smtp_sink, n: int) -> int:
    """Each company got exactly one distinct reply, its receipt, the one its outbox row holds;
    how many times a receipt was sent again (the same Message-ID a second time)."""
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage.to_addrs, OutboxMessage.message_id,
                                   OutboxMessage.kind, OutboxMessage.status)).all()
    assert len(rows) == n and {(kind, status) for _to, _id, kind, status in rows} == {("receipt", "sent")}, \
        Counter((kind, status) for _to, _id, kind, status in rows)
    queued = {to[0]: message_id for to, message_id, _kind, _status in rows}
    received = receipts_by_sender(smtp_sink)
    assert received.keys() == {sender(i) for i in range(n)}
    twice = {address: ids for address, ids in received.items() if len(ids) != 1}
    assert not twice, f"companies with more than one distinct reply: {twice}"
    assert {address: next(iter(ids)) for address, ids in received.items()} == queued
    return sum(times - 1 for ids in received.values() for times in ids.values())
