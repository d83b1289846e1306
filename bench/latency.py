"""How fast mail is answered with IMAP IDLE, and what a poll of a big unchanged folder costs.

    .venv/bin/python bench/latency.py [--n 100] [--folder-size 10000] [--polls 9]

Everything runs on this machine: a throwaway Dovecot 2.3 (tests/dovecot.py,
as the tests start it), an aiosmtpd SMTP sink, a SQLite database in a temp
dir, the shipped rules and templates.

1. Reply latency: the daemon (scheduler with its poll an hour away, so only
   IDLE can wake it; the IDLE watcher; the reused poll connection) runs in
   this process. N applications from N different companies are APPENDed one
   at a time, each after the previous reply arrived; the time from the
   APPEND to the reply in the SMTP sink is measured: p50 and p95.
2. Unchanged folder: a second mailbox gets ``--folder-size`` messages written
   as Maildir files (fast, as ../shared/notes/test-mail-servers.md says), one
   real poll stores them all, and they are then marked processed and moved —
   the state of a folder nobody touched since. ``poll()`` is then timed
   ``--polls`` times on a kept connection, as the daemon polls (after a
   warm-up poll that selects the folder); the median is reported, and for
   comparison the median with a new login each time (``run --once``).
   Goals (issue 4): p95 <= 2 s, unchanged poll <= 50 ms.

The last line is fixed, for comparing runs:

    latency n=N p50_s=X p95_s=Y unchanged_poll_ms=Z
"""

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout, for tests/

import argparse  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import date, timedelta  # noqa: E402
from email.message import EmailMessage  # noqa: E402
from email.policy import SMTP  # noqa: E402
from pathlib import Path  # noqa: E402

from apscheduler.schedulers.background import BackgroundScheduler  # noqa: E402
from sqlalchemy import update  # noqa: E402

from mailbot import PROJECT_ROOT, config, daemon, samples  # noqa: E402
from mailbot.db import transaction  # noqa: E402
from mailbot.forms.fill import corporate_number, render_application, sample_values  # noqa: E402
from mailbot.intake import poller  # noqa: E402
from mailbot.intake.imap import Mailbox  # noqa: E402
from mailbot.models import RawMessage  # noqa: E402
from mailbot.services import Services, build  # noqa: E402
from mailbot.sink import SmtpSink  # noqa: E402
from tests.dovecot import Dovecot  # noqa: E402


def make_services(dovecot: Dovecot, user: str, sink_port: int, workdir: Path) -> Services:
    """Settings as the e2e tests make them: this user's mailbox, the sink, a fresh database."""
    today = date.today()
    data = {
        "imap": dovecot.settings(user).model_dump(),
        "smtp": {"host": "127.0.0.1", "port": sink_port, "security": "none",
                 "from_address": "chizai@example.jp"},
        "database": {"url": f"sqlite:///{workdir / user}.db"},
        "program": {"opens": today - timedelta(days=30), "closes": today + timedelta(days=60),
                    "cap": 100_000},
        "service": {"poll_seconds": 3600, "rules_dir": str(PROJECT_ROOT / "rules"),
                    "templates_dir": str(PROJECT_ROOT / "templates")},
    }
    return build(config.validate(data, base_dir=workdir, origin="bench"))


def company_mail(i: int) -> bytes:
    """Company number i's stamped application, from its own address."""
    sender = f"tanto{i}@company{i}.example.jp"
    values = sample_values(company_name=f"株式会社ベンチ{i:03d}", contact_email=sender,
                           corporate_number=corporate_number(f"{700000000000 + i:012d}"))
    return samples.application_mail(render_application(values), sender=sender)


def measure_replies(dovecot: Dovecot, workdir: Path, n: int) -> list[float]:
    """Seconds from APPEND to the reply in the sink, for n applications one after another."""
    mails = [company_mail(i) for i in range(n)]  # rendered up front: not part of the latency
    with SmtpSink() as sink:
        services = make_services(dovecot, "latency", sink.port, workdir)
        service = daemon.Daemon(services, BackgroundScheduler(timezone="Asia/Tokyo"))
        service.start()
        try:
            _wait_for(lambda: service.watcher.idles >= 1 and service.gate.cycles >= 1, 30)
            return [_one_reply(services, sink, raw, i + 1) for i, raw in enumerate(mails)]
        finally:
            service.stop()


def _one_reply(services: Services, sink: SmtpSink, raw: bytes, count: int) -> float:
    started = time.monotonic()
    _append(services, raw)
    sink.wait_for(count, timeout=60)
    return time.monotonic() - started


def _append(services: Services, raw: bytes) -> None:
    with Mailbox(services.settings.imap) as box:
        box.client.append(services.settings.imap.folder, raw)


def _wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the daemon did not start watching in time")
        time.sleep(0.05)


def measure_unchanged_poll(dovecot: Dovecot, workdir: Path, size: int, polls: int) -> tuple[float, float]:
    """Median ms of poll() on an unchanged folder of ``size`` messages: reused / fresh connection."""
    services = make_services(dovecot, "bigfolder", 9, workdir)  # nothing is sent: no SMTP needed
    with Mailbox(services.settings.imap) as box:
        box.select()  # Dovecot creates the Maildir on first access
    write_maildir(dovecot, "bigfolder", size)
    with Mailbox(services.settings.imap) as box:
        uidvalidity = box.select()
        stored = poller.store_new(services, box, uidvalidity)
    assert stored == size, f"stored {stored} of {size}"
    mark_done(services)
    with Mailbox(services.settings.imap) as box:  # the daemon's kept connection
        reused = _median_ms(lambda: poller.poll(services, box), polls)
    fresh = _median_ms(lambda: poller.poll(services), polls)
    return reused, fresh


def write_maildir(dovecot: Dovecot, user: str, size: int) -> None:
    """``size`` small mails written straight into the user's Maildir (tmp/, then new/)."""
    maildir = dovecot.base / "mail" / user / "Maildir"
    account = dovecot.account
    for i in range(size):
        name = f"{1_700_000_000 + i}.M{i}P1.bench"
        tmp, new = maildir / "tmp" / name, maildir / "new" / name
        tmp.write_bytes(_filler(i))
        os.chown(tmp, account.uid, account.gid)
        tmp.rename(new)


def _filler(i: int) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = f"sender{i}@example.co.jp"
    msg["To"] = "chizai@example.jp"
    msg["Subject"] = f"過去のお問い合わせ {i}"
    msg["Message-ID"] = f"<old{i}@example.co.jp>"
    msg.set_content("以前のお問い合わせです。\n" * 20)
    return msg.as_bytes()


def mark_done(services: Services) -> None:
    """Every stored message processed and moved: what is left is a folder nothing changes in."""
    with transaction(services.engine) as session:
        session.exec(update(RawMessage).values(status="processed", moved=True))


def _median_ms(action, times: int) -> float:
    action()  # warm-up: first-time costs (index, caches) are not what is measured
    samples_ms = []
    for _ in range(times):
        started = time.perf_counter()
        report = action()
        samples_ms.append((time.perf_counter() - started) * 1000)
        assert (report.stored, report.processed, report.moved) == (0, 0, 0), report
    return statistics.median(samples_ms)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p95 of 100 values is the 95th smallest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="applications to time (default 100)")
    parser.add_argument("--folder-size", type=int, default=10_000, help="messages in the unchanged folder")
    parser.add_argument("--polls", type=int, default=9, help="timed polls of the unchanged folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    dovecot = Dovecot().start()
    try:
        with tempfile.TemporaryDirectory(prefix="latency") as workdir:
            report(args, dovecot, Path(workdir))
    finally:
        dovecot.stop()


def report(args, dovecot: Dovecot, workdir: Path) -> None:
    latencies = measure_replies(dovecot, workdir, args.n)
    p50, p95 = statistics.median(latencies), percentile(latencies, 0.95)
    print(f"replies: n={len(latencies)} min_s={min(latencies):.3f} p50_s={p50:.3f} "
          f"p95_s={p95:.3f} max_s={max(latencies):.3f}", flush=True)
    reused, fresh = measure_unchanged_poll(dovecot, workdir, args.folder_size, args.polls)
    print(f"unchanged folder of {args.folder_size}: poll {reused:.1f} ms on the daemon's kept "
          f"connection, {fresh:.1f} ms with a new login and SELECT each time", flush=True)
    print(f"latency n={len(latencies)} p50_s={p50:.3f} p95_s={p95:.3f} unchanged_poll_ms={reused:.1f}")


if __name__ == "__main__":
    main()
