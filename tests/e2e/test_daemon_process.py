"""`mailbot --config FILE run` as systemd runs it: a real process, a real Dovecot, a real SMTP
sink, $NOTIFY_SOCKET read by the test. It says READY and pings the watchdog, answers mail,
stops on SIGTERM mid-burst with nothing lost or half-sent, reloads on SIGHUP (a broken rule
file refused, the old rules kept), and `mailbot health` follows Dovecot going away and back."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session, select

from mailbot import PROJECT_ROOT, samples
from mailbot.config import ImapSettings
from mailbot.db import open_engine
from mailbot.forms.fill import corporate_number, render_application, sample_values
from mailbot.models import Application, OutboxMessage, RawMessage
from mailbot.sink import SmtpSink
from tests import dovecot as dovecot_server
from tests.e2e.conftest import PROGRAM_ADDRESS
from tests.e2e.test_step01 import application, body
from tests.test_systemd import NotifyListener

MAILBOT = Path(sys.executable).parent / "mailbot"  # the entry point the unit's ExecStart runs
EXIT_SECONDS = 60  # SIGTERM to exit, the message in hand included (the unit allows 90)
WATCHDOG_USEC = 2_000_000  # pings expected every second


class Notifications:
    """Every datagram the daemon sends to $NOTIFY_SOCKET, collected by a thread."""

    def __init__(self) -> None:
        self.listener = NotifyListener(f"@mailbot-e2e-{uuid.uuid4().hex}")
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        self.listener.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                self.messages.append(self.listener.receive())
            except TimeoutError:
                continue

    def wait_for(self, predicate, timeout: float = 30) -> str:
        """The first message (after those already seen) that ``predicate`` accepts."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for message in self.messages[seen:]:
                if predicate(message):
                    return message
            seen = len(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"no such notification within {timeout}s; got {self.messages[-10:]}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()


class DaemonProcess:
    """One `mailbot run` process; its output goes to a file (a full pipe would block it)."""

    def __init__(self, config_path: Path, notifications: Notifications, password: str):
        self.config_path = config_path
        self.notifications = notifications
        self.password = password
        self.log_path = config_path.parent / f"daemon-{uuid.uuid4().hex[:8]}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> DaemonProcess:
        # As the unit does: secrets in the environment (EnvironmentFile), never in the file.
        env = {**os.environ, "NOTIFY_SOCKET": self.notifications.listener.address,
               "WATCHDOG_USEC": str(WATCHDOG_USEC), "MAILBOT_IMAP__PASSWORD": self.password}
        env.pop("WATCHDOG_PID", None)
        with open(self.log_path, "wb") as output:
            self.process = subprocess.Popen([str(MAILBOT), "--config", str(self.config_path), "run"],
                                            stdout=output, stderr=subprocess.STDOUT, env=env,
                                            cwd=self.config_path.parent)
        self.notifications.wait_for(lambda m: m.startswith("READY=1"), timeout=60)
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log:
            assert self.process.poll() is None, f"daemon exited ({self.process.returncode}):\n{self.log}"
            assert time.monotonic() < deadline, f"{text!r} not logged within {timeout}s:\n{self.log}"
            time.sleep(0.1)

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = EXIT_SECONDS, signals=(signal.SIGTERM,)) -> tuple[int, float]:
        """SIGTERM (or these signals in a row); the exit code and how long the exit took."""
        began = time.monotonic()
        if len(signals) == 1:
            self.send(signals[0])
        else:
            self.send_back_to_back(signals)
        code = self.process.wait(timeout)
        return code, time.monotonic() - began

    def send_back_to_back(self, signals) -> None:
        """The signals arrive together: the daemon is held (SIGSTOP) while they are sent, then let go
        (SIGCONT) with all of them pending, so the second cannot come after an idle daemon's quick
        stop has already ended the process (twice seen in CI, even with both sent from one shell).
        Pending together, the kernel hands them over lowest number first (SIGINT before SIGTERM);
        the daemon treats the two alike."""
        pid = self.process.pid
        kills = [f"kill -s {signal.Signals(s).name.removeprefix('SIG')} {pid}" for s in signals]
        script = "; ".join([f"kill -s STOP {pid}", *kills, f"kill -s CONT {pid}"])
        subprocess.run(["sh", "-c", script], check=True, timeout=10)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def config_text(imap: ImapSettings, smtp_port: int, workdir: Path, rules_dir: Path, cap: int = 100,
                service: str = "") -> str:
    today = date.today()
    return f"""\
[imap]
host = "127.0.0.1"
port = {imap.port}
username = "{imap.username}"
security = "none"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from_address = "{PROGRAM_ADDRESS}"

[database]
url = "sqlite:///{workdir / 'mailbot.db'}"

[program]
opens = {today - timedelta(days=30)}
closes = {today + timedelta(days=60)}
cap = {cap}
signature = "ジェトロ知的財産課"

[service]
poll_seconds = 1
health_alert_minutes = 1
rules_dir = "{rules_dir}"
templates_dir = "{PROJECT_ROOT / 'templates'}"
{service}
"""


@pytest.fixture
def run_daemon(tmp_path):
    """Start `mailbot run` on a config for (imap settings, sink port); every process killed at the end."""
    notifications = Notifications()
    started: list[DaemonProcess] = []

    def start(imap: ImapSettings, smtp_port: int, rules_dir: Path = PROJECT_ROOT / "rules",
              service: str = "") -> DaemonProcess:
        """``service``: more [service] lines (log_format, metrics_port)."""
        config_path = tmp_path / "config.toml"
        config_path.write_text(config_text(imap, smtp_port, tmp_path, rules_dir, service=service),
                               encoding="utf-8")
        started.append(DaemonProcess(config_path, notifications, imap.password))
        return started[-1].start()

    start.notifications = notifications
    yield start
    for process in started:
        process.kill()
    notifications.close()


def database(tmp_path: Path):
    return open_engine(f"sqlite:///{tmp_path / 'mailbot.db'}")


def receipts_by_sender(sink: SmtpSink) -> Counter:
    return Counter(address for mail in sink.messages for address in mail.rcpt_tos)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape(port: int) -> dict[str, float]:
    """The endpoint's samples, "name{labels}" -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {sample.name + str(dict(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_ready_then_watchdog_pings_then_a_delivered_application_is_answered(
        run_daemon, imap_settings, smtp_sink, mailbox):
    port = free_port()
    daemon = run_daemon(imap_settings, smtp_sink.port,
                        service=f'log_format = "json"\nmetrics_port = {port}')
    notifications = run_daemon.notifications
    assert notifications.messages[0].startswith("READY=1\nSTATUS=running: a poll every 1 s")
    notifications.wait_for(lambda m: m == "WATCHDOG=1", timeout=10)

    mailbox.deliver(application())
    [reply] = smtp_sink.wait_for(1, timeout=30)
    assert "TS-" in str(reply.message["Subject"])
    notifications.wait_for(lambda m: m.startswith("STATUS=last cycle") and "1 sent" in m, timeout=10)

    numbers = scrape(port)
    assert numbers["mailbot_messages_total{'class': 'application', 'program': 'default'}"] == 1
    assert numbers["mailbot_replies_sent_total{'kind': 'receipt', 'program': 'default'}"] == 1
    assert numbers["mailbot_queue_length{'program': 'default'}"] == 1
    assert numbers["mailbot_up{'program': 'default'}"] == 1

    code, seconds = daemon.stop()
    assert (code, seconds < EXIT_SECONDS) == (0, True), daemon.log
    notifications.wait_for(lambda m: m.startswith("STOPPING=1"), timeout=5)
    lines = [json.loads(line) for line in daemon.log.splitlines()]  # every line is one JSON record
    [processed] = [line for line in lines if line["msg"] == "processed"]
    assert processed["class"] == "application" and processed["reception_number"].startswith("TS-")
    assert processed["program"] == "default"
    assert any(line["msg"].startswith("cycle:") and line.get("sent") == 1 for line in lines)
    assert any(line["msg"].startswith("stopped after") for line in lines)
    assert imap_settings.password not in daemon.log
    with pytest.raises(OSError):  # the endpoint stopped with the daemon
        scrape(port)


def burst_mail(i: int) -> tuple[str, bytes]:
    """Company i's application, mailed from its own address (its contact address too)."""
    sender = f"tanto{i}@burst{i}.example.jp"
    values = sample_values(company_name=f"株式会社バースト{i:05d}", contact_email=sender,
                           corporate_number=corporate_number(f"{800000000000 + i:012d}"))
    return sender, samples.application_mail(render_application(values), sender=sender)


def nothing_half_done(tmp_path: Path) -> tuple[int, int]:
    """Every stored mail processed and every reply sent (none pending); (stored, sent)."""
    with Session(database(tmp_path)) as session:
        raws = session.exec(select(RawMessage.status)).all()
        outbox = session.exec(select(OutboxMessage.status)).all()
    assert "new" not in raws, raws
    assert set(outbox) <= {"sent"}, Counter(outbox)
    return len(raws), len(outbox)


def stopped_between_two(tmp_path: Path) -> tuple[Counter, Counter]:
    """After a stop mid-burst: each stored mail untouched ("new") or processed with its reply
    queued (one transaction), each reply sent or still pending, none given up on."""
    with Session(database(tmp_path)) as session:
        raws = Counter(session.exec(select(RawMessage.status)).all())
        outbox = Counter(session.exec(select(OutboxMessage.status)).all())
        applications = len(session.exec(select(Application.id)).all())
    assert set(raws) <= {"new", "processed"} and set(outbox) <= {"sent", "pending"}, (raws, outbox)
    assert applications == raws["processed"] == outbox.total(), (applications, raws, outbox)
    return raws, outbox


def test_sigterm_during_a_burst_exits_0_and_the_next_start_answers_the_rest_exactly_once(
        run_daemon, imap_settings, smtp_sink, mailbox, tmp_path):
    mails = [burst_mail(i) for i in range(25)]
    daemon = run_daemon(imap_settings, smtp_sink.port)

    def deliver_all() -> None:
        for _sender, raw in mails:
            mailbox.deliver(raw)
            time.sleep(0.25)  # a burst over a few seconds: some arrive after the stop

    delivering = threading.Thread(target=deliver_all)
    delivering.start()
    try:
        smtp_sink.wait_for(1, timeout=60)
        # An impatient operator: a Ctrl-C (SIGINT) along with the SIGTERM changes nothing: whichever
        # comes second finds the daemon already stopping (see send_back_to_back).
        code, seconds = daemon.stop(signals=(signal.SIGTERM, signal.SIGINT))
    finally:
        delivering.join(60)
    assert (code, seconds < EXIT_SECONDS) == (0, True), daemon.log
    raws, outbox = stopped_between_two(tmp_path)
    # Every reply marked sent reached the server, and none that reached it is still pending.
    answered_first = len(smtp_sink.messages)
    assert 1 <= answered_first == outbox["sent"] < len(mails), "SIGTERM should land mid-burst"
    assert "signal SIGTERM: finishing the message or send in hand" in daemon.log
    assert "stopped after" in daemon.log
    assert "already stopping" in daemon.log

    second = run_daemon(imap_settings, smtp_sink.port)
    smtp_sink.wait_for(len(mails), timeout=120)
    second.wait_for_log("cycle: 0 new, 0 processed", timeout=30)  # and nothing more came
    assert second.stop()[0] == 0
    assert receipts_by_sender(smtp_sink) == Counter({sender: 1 for sender, _raw in mails})
    assert nothing_half_done(tmp_path) == (len(mails), len(mails))
    with Session(database(tmp_path)) as session:
        names = session.exec(select(Application.company_name)).all()
    assert sorted(names) == [f"株式会社バースト{i:05d}" for i in range(len(mails))]
    assert mailbox.count("INBOX") == 0


MARKER = "（規則を更新しました）"


def with_marker(rules_text: str) -> str:
    """application.toml whose 'required' message says MARKER: an observable change."""
    changed = rules_text.replace("欄にご記入ください。\"", f"欄にご記入ください。{MARKER}\"", 1)
    assert changed != rules_text
    return changed


def fix_request_to(sender: str, mailbox, sink: SmtpSink, count: int) -> str:
    """Deliver an application without 企業名 from ``sender``; the body of the reply it gets."""
    mailbox.deliver(application(sender=sender, contact_email=sender, company_name=None,
                                corporate_number=corporate_number(f"{700000000000 + count:012d}")))
    sink.wait_for(count, timeout=30)
    [reply] = [mail for mail in sink.messages if sender in mail.rcpt_tos]
    return body(reply)


def test_sighup_refuses_a_broken_rule_file_keeps_the_old_rules_then_takes_a_valid_one(
        run_daemon, imap_settings, smtp_sink, mailbox, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", rules)
    original = (rules / "application.toml").read_text(encoding="utf-8")
    daemon = run_daemon(imap_settings, smtp_sink.port, rules_dir=rules)
    notifications = run_daemon.notifications

    (rules / "application.toml").write_text(
        with_marker(original) + '\n[[checks]]\ncheck = "no_such_check"\nfield = "company_name"\nmessage = "x"\n',
        encoding="utf-8")
    daemon.send(signal.SIGHUP)
    daemon.wait_for_log("reload refused, the rules and templates in use stay")
    assert "application.toml: checks[" in daemon.log and "no_such_check" in daemon.log
    notifications.wait_for(lambda m: m.startswith("RELOADING=1\nMONOTONIC_USEC="), timeout=10)
    notifications.wait_for(lambda m: m.startswith("READY=1\nSTATUS=reload refused"), timeout=10)
    text = fix_request_to("old-rules@example.jp", mailbox, smtp_sink, 1)
    assert "「企業名」欄にご記入ください。" in text and MARKER not in text
    assert daemon.process.poll() is None

    (rules / "application.toml").write_text(with_marker(original), encoding="utf-8")
    daemon.send(signal.SIGHUP)
    daemon.wait_for_log("reloaded rules from")
    notifications.wait_for(lambda m: m.startswith("READY=1\nSTATUS=rules and templates reloaded"), timeout=10)
    assert MARKER in fix_request_to("new-rules@example.jp", mailbox, smtp_sink, 2)
    assert daemon.stop()[0] == 0


class RestartableDovecot(dovecot_server.Dovecot):
    """This test's own Dovecot (the session's serves every other test): stopped and started
    again on the same port with its mail kept, as an operator's restart would."""

    def halt(self) -> None:
        dovecot_server._signal_group(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            dovecot_server._signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def resume(self) -> None:
        with open(self.base / "stderr.log", "ab") as stderr:
            self.process = subprocess.Popen(
                [self.binary, "-F", "-c", str(self.base / "dovecot.conf")], start_new_session=True,
                preexec_fn=dovecot_server._die_with_parent, stdout=subprocess.DEVNULL, stderr=stderr)
        self._wait_ready(10)


@pytest.fixture
def own_dovecot():
    try:
        server = RestartableDovecot()
    except dovecot_server.DovecotUnavailable as exc:
        pytest.fail(f"{exc} — run `.ci/setup --test` to install it")
    server.start()
    yield server
    server.stop()


def health(config_path: Path) -> tuple[int, str]:
    result = subprocess.run([str(MAILBOT), "--config", str(config_path), "health"],
                            capture_output=True, text=True, timeout=60)
    return result.returncode, result.stdout


def wait_for_health(config_path: Path, code: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        got, text = health(config_path)
        if got == code:
            return text
        assert time.monotonic() < deadline, f"health stayed {got} for {timeout}s:\n{text}"
        time.sleep(2)


def test_health_turns_1_while_dovecot_is_stopped_and_0_once_it_is_back(run_daemon, own_dovecot, smtp_sink):
    imap = own_dovecot.settings(own_dovecot.new_user("health"))
    daemon = run_daemon(imap, smtp_sink.port)
    daemon.wait_for_log("cycle: 0 new")
    assert health(daemon.config_path)[0] == 0

    own_dovecot.halt()
    # A poll a second: three failed in a row make it unhealthy, long before health_alert_minutes.
    text = wait_for_health(daemon.config_path, 1, timeout=30)
    assert re.search(r"PROBLEM  mailbox INBOX: the last \d+ poll\(s\) failed: \S", text), text
    assert "poll failed" in daemon.log and daemon.process.poll() is None

    own_dovecot.resume()
    text = wait_for_health(daemon.config_path, 0, timeout=60)
    assert text.strip().endswith("healthy") and "unhealthy" not in text
    assert daemon.stop()[0] == 0
