"""`mailbot run`: poll the mailbox on a schedule and on push, and send what is in the outbox.

APScheduler runs one job, "cycle" (poll, then drain the outbox), every
[service] poll_seconds with max_instances=1 and coalescing: the scheduled
poll is the safety net. With ``[imap] idle`` a watcher thread
(:mod:`mailbot.intake.watch`) keeps an IDLE connection and, on new mail,
asks for the same job to run now. Whoever asks, cycles run one at a time
(:class:`CycleGate`): a request that arrives while a cycle runs causes exactly
one more cycle after it, never a second poll of the folder at the same time.
SIGTERM/SIGINT stop the watcher (DONE, LOGOUT), let the cycle in hand
finish, then stop.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from mailbot import documents, health, outbox
from mailbot.errors import ImapError, TransportError
from mailbot.intake.imap import Mailbox
from mailbot.intake.poller import PollReport, poll
from mailbot.intake.watch import Watcher
from mailbot.services import Services

log = logging.getLogger(__name__)

JOB_ID = "cycle"


@dataclass(frozen=True)
class CycleReport:
    """What one cycle did: the poll's counts and the outbox's."""

    poll: PollReport | None
    sent: int
    retried: int
    failed: int


def run_once(services: Services, connect: Callable[[], Mailbox] | None = None) -> CycleReport:
    """Poll, process, send. A mailbox that cannot be reached still lets the outbox drain.

    ``connect``: gives an open Mailbox to reuse; without it the poll logs in itself.
    """
    report, error = None, None
    try:
        report = poll(services, connect() if connect else None)
    except TransportError as exc:
        error = str(exc)
        log.error("poll failed: %s", exc)
    # After every attempt, good or bad: staff hear once when polling has failed for
    # too long, and once when it works again; the drain below sends that mail now.
    health.watch(services, error=error)
    # Step 03: applications past the documents deadline get their one reminder (sent below).
    documents.remind_due(services)
    drained = outbox.send_pending(services.engine, services.settings.smtp)
    return CycleReport(report, drained.sent, drained.retried, drained.failed)


class CycleGate:
    """Runs cycles one at a time; a request during a cycle runs exactly one more after it."""

    def __init__(self, cycle: Callable[[], object], wake: Callable[[], None] | None = None):
        self._cycle = cycle
        self._wake = wake or self.run  # how to get a cycle started when none runs
        self._lock = threading.Lock()
        self._running = False
        self._again = False
        self.cycles = 0

    def request(self) -> None:
        """Ask for a cycle soon: folded into the running one's follow-up if one runs."""
        with self._lock:
            if self._running:
                self._again = True
                return
        self._wake()

    def run(self) -> None:
        """Run a cycle now, then one more per batch of requests that came in meanwhile."""
        with self._lock:
            if self._running:
                self._again = True
                return
            self._running = True
        try:
            self._run_until_quiet()
        finally:
            with self._lock:
                self._running = False

    def _run_until_quiet(self) -> None:
        while True:
            self._cycle()
            self.cycles += 1
            with self._lock:
                if not self._again:
                    return
                self._again = False


class Daemon:
    """The running service: the scheduled job, the IDLE watcher and the reused IMAP connection."""

    def __init__(self, services: Services, scheduler: BaseScheduler | None = None):
        self.services = services
        self.scheduler = scheduler or BlockingScheduler(timezone="Asia/Tokyo")
        self.gate = CycleGate(self._cycle, wake=self._run_job_now)
        self.watcher: Watcher | None = None
        self._box: Mailbox | None = None

    def start(self) -> None:
        """Add the job, start the watcher, start the scheduler (blocks if it is a BlockingScheduler)."""
        self.scheduler.add_job(
            self.gate.run, "interval", seconds=self.services.settings.service.poll_seconds,
            id=JOB_ID, max_instances=1, coalesce=True, next_run_time=datetime.now(timezone.utc),
        )
        if self.services.settings.imap.idle:
            self.watcher = Watcher(self.services.settings.imap, self.gate.request).start()
        log.info("mailbot running: every %ss%s", self.services.settings.service.poll_seconds,
                 ", and on IMAP IDLE" if self.watcher else "")
        self.scheduler.start()

    def stop(self) -> None:
        """Stop the watcher, then the scheduler; the cycle in hand finishes first."""
        if self.watcher is not None:
            self.watcher.stop()
        # wait=True joins the worker running the current cycle: the message in hand and
        # the send in flight finish before start() returns.
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self._drop_connection()

    def _run_job_now(self) -> None:
        try:
            self.scheduler.modify_job(JOB_ID, next_run_time=datetime.now(timezone.utc))
        except JobLookupError:
            log.info("new mail announced while stopping: left for the next start")

    def _cycle(self) -> None:
        report = run_once(self.services, self._connection)
        if report.poll is None:
            self._drop_connection()  # it failed: the next cycle starts from a fresh login
        log.info("cycle sent=%d retried=%d failed=%d", report.sent, report.retried, report.failed)

    def _connection(self) -> Mailbox:
        """The IMAP connection kept between cycles, tested with NOOP; a new one if it died."""
        if self._box is not None:
            try:
                self._box.noop()
                return self._box
            except ImapError as exc:
                # Servers log idle clients out (Dovecot after 30 min): log in again, same cycle.
                log.info("kept IMAP connection is gone (%s): logging in again", exc)
                self._drop_connection()
        box = Mailbox(self.services.settings.imap)
        box.open()
        self._box = box
        return box

    def _drop_connection(self) -> None:
        box, self._box = self._box, None
        if box is not None:
            box.close()


def run_forever(services: Services) -> None:
    """Run until SIGTERM or SIGINT."""
    daemon = Daemon(services)
    stop = lambda signum, _frame: _stop(daemon, signum)  # noqa: E731
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    daemon.start()
    log.info("mailbot stopped")


def _stop(daemon: Daemon, signum: int) -> None:
    log.info("signal %s: finishing the cycle in hand, then stopping", signal.Signals(signum).name)
    daemon.stop()
