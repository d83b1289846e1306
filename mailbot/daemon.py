"""`mailbot run`: poll the mailbox on a schedule and on push, and send what is in the outbox.

APScheduler runs one job, "cycle" (poll, then drain the outbox; the outbox
is drained alongside the poll too, :mod:`mailbot.sending`), every
[service] poll_seconds with max_instances=1 and coalescing: the scheduled
poll is the safety net. With ``[imap] idle`` a watcher thread
(:mod:`mailbot.intake.watch`) keeps an IDLE connection and, on new mail,
asks for the same job to run now. Whoever asks, cycles run one at a time
(:class:`CycleGate`): a request that arrives while a cycle runs causes exactly
one more cycle after it, never a second poll of the folder at the same time.

Signals (run_forever), for systemd (deploy/mailbot.service) and a terminal alike:
- SIGTERM/SIGINT: STOPPING=1, stop the watcher (DONE, LOGOUT); the cycle in
  hand finishes the message being processed and the mail being sent, leaves
  the rest stored or pending for the next start, and no other starts; exit 0;
- SIGHUP: rules and templates read again and checked (:mod:`mailbot.reload`);
  swapped in between two cycles, or refused with the reason while the old
  ones stay in use.
systemd hears READY=1 once the scheduler runs, WATCHDOG=1 at half the
unit's WatchdogSec while cycles are not stuck (:class:`Watchdog`), and a
STATUS= line after each cycle (:mod:`mailbot.systemd`).

Several programs (config ``[[programs]]``): one Daemon serves them all. A
cycle runs every program's cycle in turn (``run_once`` on its Services, its
own kept IMAP connection); one program's mailbox or database being down is
logged and the next program's cycle runs. Each program's IDLE watcher wakes
the one cycle; the PDF reader pool is the programs' shared one; SIGHUP reloads
each program's rules and templates on its own (a broken file refuses that
program's reload only). Log lines of a program's work carry ``program=<id>``
(:mod:`mailbot.programs`).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from sqlalchemy.exc import SQLAlchemyError

from mailbot import digest, documents, health, logs, metrics, outbox, programs, reload, systemd
from mailbot.config import DEFAULT_PROGRAM
from mailbot.errors import ImapError, MailbotError, TransportError
from mailbot.intake.imap import Mailbox
from mailbot.intake.poller import PollReport, poll
from mailbot.intake.watch import Watcher
from mailbot.sending import SendingAlongside
from mailbot.services import Services

log = logging.getLogger(__name__)

JOB_ID = "cycle"
WATCHDOG_JOB_ID = "watchdog"
#: A cycle running longer than this is stuck (a server that never answers, a lock
#: never released): the watchdog pings stop and systemd restarts the service. An
#: opening-day burst of 100 applications takes about 25 s (bench/burst.py); each PDF
#: is bounded by [service] pdf_timeout_seconds and each server command by its timeout.
STUCK_SECONDS = 30 * 60


@dataclass(frozen=True)
class CycleReport:
    """What one cycle did: the poll's counts and the outbox's."""

    poll: PollReport | None
    sent: int
    retried: int
    failed: int

    def summary(self) -> str:
        """One line for the log and `systemctl status`."""
        if self.poll is None:
            polled = "mailbox not reachable"
        elif self.poll.other_instance:
            polled = "another instance is polling the folder"
        else:
            polled = f"{self.poll.stored} new, {self.poll.processed} processed, {self.poll.moved} moved"
        return f"{polled}; {self.sent} sent, {self.retried} to retry, {self.failed} failed"

    def fields(self) -> dict[str, object]:
        """The counts as log fields (key=value or JSON), for searching the log."""
        counts: dict[str, object] = {"sent": self.sent, "retried": self.retried, "failed": self.failed}
        if self.poll is None:
            return {"polled": False, **counts}
        return {"polled": True, "other_instance": self.poll.other_instance, "stored": self.poll.stored, "processed": self.poll.processed,
                "moved": self.poll.moved, **counts}


def run_once(services: Services, connect: Callable[[], Mailbox] | None = None,
             stop: Callable[[], bool] | None = None) -> CycleReport:
    """Poll, process, send. A mailbox that cannot be reached still lets the outbox drain.

    The outbox is drained while the poll runs too (:mod:`mailbot.sending`), and once after it.

    ``connect``: gives an open Mailbox to reuse; without it the poll logs in itself.
    ``stop``: true once the service is stopping: the message being processed and
    the mail being sent finish, the rest wait (stored, or pending) for the next start.
    """
    report, error = None, None
    # Replies go out while the poll works (a burst's first receipt does not wait for its last mail).
    with SendingAlongside(services.engine, services.settings.smtp, stop) as early:
        try:
            report = poll(services, connect() if connect else None, stop)
        except TransportError as exc:
            error = str(exc)
            logs.event(log, "poll failed", logging.ERROR, error=error)
    # After every attempt, good or bad: staff hear once when polling has failed for
    # too long, and once when it works again; the drain below sends that mail now.
    health.watch(services, error=error)
    # Step 03: applications past the documents deadline get their one reminder (sent below).
    documents.remind_due(services)
    # The staff digest when its [staff] digest_schedule time has passed since the last one:
    # checked every cycle, so a digest due while the service was down goes out at the next start.
    digest.send_if_due(services)
    drained = outbox.send_pending(services.engine, services.settings.smtp, stop=stop)
    sent = early.result
    return CycleReport(report, drained.sent + sent.sent, drained.retried + sent.retried, drained.failed + sent.failed)


class CycleGate:
    """Runs cycles one at a time; a request during a cycle runs exactly one more after it.

    ``between_cycles(task)`` runs a task while no cycle runs (at once when the gate
    is free, else right after the cycle in hand): how a reload swaps the rules.
    ``close()`` starts no other cycle (stopping); the cycle in hand sees ``closed``
    and ends after its message or send in hand.
    """

    def __init__(self, cycle: Callable[[], object], wake: Callable[[], None] | None = None):
        self._cycle = cycle
        self._wake = wake or self.run  # how to get a cycle started when none runs
        self._lock = threading.Lock()
        self._running = False  # a cycle or a between-cycles task holds the gate
        self._again = False
        self._closed = False
        self._between: list[Callable[[], None]] = []
        self.started_at: float | None = None  # time.monotonic() when the cycle in hand began
        self.cycles = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def request(self) -> None:
        """Ask for a cycle soon: folded into the running one's follow-up if one runs."""
        with self._lock:
            if self._closed:
                return
            if self._running:
                self._again = True
                return
        self._wake()

    def run(self) -> None:
        """Run a cycle now, then one more per batch of requests that came in meanwhile."""
        with self._lock:
            if self._closed:
                return
            if self._running:
                self._again = True
                return
            self._running = True
        self._hold(cycle=True, cycles_here=True)

    def between_cycles(self, task: Callable[[], None]) -> None:
        """Run ``task`` while no cycle runs: now if the gate is free, else after the cycle in hand."""
        with self._lock:
            self._between.append(task)
            if self._running:
                return  # the holder runs it before letting go
            self._running = True
        # This thread (a signal handler) runs no cycle itself: one asked for meanwhile is woken.
        self._hold(cycle=False, cycles_here=False)

    def close(self) -> None:
        """No cycle starts after this one; tasks already handed over still run."""
        with self._lock:
            self._closed = True

    def busy_seconds(self) -> float | None:
        """How long the cycle in hand has been running; None between cycles."""
        started = self.started_at
        return None if started is None else time.monotonic() - started

    def _hold(self, cycle: bool, cycles_here: bool) -> None:
        """Cycles and tasks until none is asked for; the gate is let go in the same locked
        step that finds nothing left, so a request can never fall in between."""
        quiet = wake = False
        try:
            while True:
                if cycle:
                    self._timed_cycle()
                with self._lock:
                    tasks, self._between = self._between, []
                    asked = self._again and not self._closed
                    cycle = asked and cycles_here
                    if not tasks and not cycle:
                        self._running = self._again = False
                        quiet, wake = True, asked
                        break
                    self._again = asked and not cycles_here
                for task in tasks:
                    task()
        finally:
            if not quiet:  # a cycle or task raised: free the gate for the next one
                with self._lock:
                    self._running = False
        if wake:
            self._wake()

    def _timed_cycle(self) -> None:
        self.started_at = time.monotonic()
        try:
            self._cycle()
        finally:
            self.started_at = None
        self.cycles += 1


class Watchdog:
    """WATCHDOG=1 to systemd, but only while cycles are not stuck.

    The scheduler runs ``ping`` at half $WATCHDOG_USEC: a hung process (or a
    scheduler that no longer dispatches jobs) stops pinging by itself; a cycle
    running longer than ``stuck_seconds`` stops it on purpose, and systemd
    restarts the service (Restart=on-failure).
    """

    def __init__(self, gate: CycleGate, stuck_seconds: float = STUCK_SECONDS):
        self.gate = gate
        self.stuck_seconds = stuck_seconds
        self._told = False  # the "stuck" line is logged once per stuck cycle

    def ping(self) -> bool:
        """Ping systemd unless the cycle in hand is stuck; True when a ping went out."""
        busy = self.gate.busy_seconds()
        if busy is not None and busy > self.stuck_seconds:
            if not self._told:
                log.error("cycle running for %.0f s (more than %.0f s): stuck; no more watchdog "
                          "pings, systemd will restart the service", busy, self.stuck_seconds)
                systemd.notify(systemd.status(f"stuck: a cycle has run for {busy:.0f} s"))
                self._told = True
            return False
        self._told = False
        return systemd.notify(systemd.WATCHDOG)


@dataclass
class ProgramRun:
    """What the daemon keeps for one program: its services, its kept IMAP connection, its
    IDLE watcher, the templates it started with and its last cycle."""

    services: Services
    templates: set[str] = field(default_factory=set)  # a reload must keep them all
    box: Mailbox | None = None
    watcher: Watcher | None = None
    last: CycleReport | None = None

    @property
    def id(self) -> str:
        return self.services.program_id

    def connection(self) -> Mailbox:
        """The IMAP connection kept between cycles, tested with NOOP; a new one if it died."""
        if self.box is not None:
            try:
                self.box.noop()
                return self.box
            except ImapError as exc:
                # Servers log idle clients out (Dovecot after 30 min): log in again, same cycle.
                log.info("kept IMAP connection is gone (%s): logging in again", exc)
                self.drop_connection()
        box = Mailbox(self.services.settings.imap)
        box.open()
        self.box = box
        return box

    def drop_connection(self) -> None:
        box, self.box = self.box, None
        if box is not None:
            box.close()


class Daemon:
    """The running service: the scheduled jobs, and per program its IDLE watcher and IMAP connection.

    ``services``: one program's, or every program's (services.build_all); the
    [service] keys of the daemon itself (poll_seconds...) are shared, so the
    first program's are everyone's.
    """

    def __init__(self, services: Services | Sequence[Services], scheduler: BaseScheduler | None = None,
                 stuck_seconds: float = STUCK_SECONDS):
        self.programs = [ProgramRun(one, reload.template_names(one.renderer))
                         for one in ([services] if isinstance(services, Services) else services)]
        self.services = self.programs[0].services
        self.scheduler = scheduler or BlockingScheduler(timezone="Asia/Tokyo")
        self.gate = CycleGate(self._cycle, wake=self._run_job_now)
        self.watchdog = Watchdog(self.gate, stuck_seconds)
        self._last_line = "no cycle yet"  # the STATUS= text after the latest cycle
        programs.label_log_lines()  # the lines of a program's work say program=<id>

    @property
    def watcher(self) -> Watcher | None:
        """The first program's IDLE watcher (the only one with a one-program config)."""
        return self.programs[0].watcher

    @property
    def last(self) -> CycleReport | None:
        """The first program's last cycle (the only one with a one-program config)."""
        return self.programs[0].last

    def start(self) -> None:
        """Add the jobs, start the watchers, start the scheduler (blocks if it is a BlockingScheduler)."""
        if self.gate.closed:
            return  # stopped before it started (SIGTERM during start-up)
        for job in self.jobs():
            self.scheduler.add_job(**job)
        self.scheduler.add_listener(self._ready, EVENT_SCHEDULER_STARTED)
        for program in self.programs:
            if program.services.settings.imap.idle:
                with programs.working_on(program.services.program_id):  # its log lines name the program
                    program.watcher = Watcher(program.services.settings.imap, self.gate.request).start()
        log.info("mailbot running: every %ss%s%s", self.services.settings.service.poll_seconds,
                 ", and on IMAP IDLE" if self.watcher else "", self._serving())
        self.scheduler.start()

    def _serving(self) -> str:
        """", for programs ts, design" with [[programs]] (the log names what runs)."""
        ids = [program.id for program in self.programs]
        return "" if ids == [DEFAULT_PROGRAM] else f", for programs {', '.join(ids)}"

    def jobs(self) -> list[dict]:
        """The scheduler's jobs, as add_job keywords: another periodic task is one more entry."""
        now = datetime.now(timezone.utc)
        jobs = [dict(func=self.gate.run, trigger="interval", seconds=self.services.settings.service.poll_seconds,
                     id=JOB_ID, max_instances=1, coalesce=True, next_run_time=now)]
        interval = systemd.watchdog_seconds()
        if interval:  # the unit sets WatchdogSec: ping at half of it, as sd_watchdog_enabled(3) advises
            jobs.append(dict(func=self.watchdog.ping, trigger="interval", seconds=interval / 2,
                             id=WATCHDOG_JOB_ID, max_instances=1, coalesce=True, next_run_time=now))
        return jobs

    def stop(self) -> None:
        """Stop the watchers, then the scheduler; the cycle in hand ends after its message or send
        in hand, no other starts."""
        if self.gate.closed:
            # A second SIGTERM/SIGINT runs inside the first one's wait: closing the IMAP
            # connection here would pull it from under the cycle still running.
            log.info("already stopping: waiting for the message or send in hand")
            return
        systemd.notify(systemd.STOPPING, systemd.status("stopping: finishing the message or send in hand"))
        self.gate.close()
        for program in self.programs:
            if program.watcher is not None:
                program.watcher.stop()
        # wait=True joins the worker running the current cycle: the message in hand and
        # the send in flight finish before start() returns.
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        for program in self.programs:
            program.drop_connection()
        self._close_readers()
        log.info("stopped after %d cycle(s)%s", self.gate.cycles,
                 f"; the last: {self.last.summary()}" if self.last else "")

    def _close_readers(self) -> None:
        """End the warm PDF readers (mailbot.forms.pool) now: once each, the programs share them."""
        pools = {id(p.services.read_form): p.services.read_form for p in self.programs}
        for pool in pools.values():
            close_readers = getattr(pool, "close", None)
            if close_readers is not None:
                close_readers(timeout=5)

    def reload(self) -> bool:
        """Read and check each program's rules and templates; swap them in between cycles, or
        keep that program's old ones. True when every program took its new files."""
        systemd.notify(systemd.reloading(), systemd.status("reloading rules and templates"))
        ready, refused = [], []
        for program in self.programs:
            outcome = reload.prepare(program.services, program.templates)
            if isinstance(outcome, reload.Refusal):
                logs.event(log, f"reload refused, the rules and templates in use stay: {outcome.reason}",
                           logging.ERROR, program=program.id)
                refused.append(f"{self._prefix(program)}{outcome.reason}")
            else:
                ready.append((program, outcome))
        if ready:
            self.gate.between_cycles(lambda: self._swap(ready, refused))
        else:
            systemd.notify(systemd.READY, systemd.status(f"reload refused ({'; '.join(refused)}); "
                                                         "running on the previous rules and templates"))
        return not refused

    def _swap(self, ready: list[tuple[ProgramRun, reload.Parts]], refused: list[str]) -> None:
        for program, parts in ready:
            reload.apply(program.services, parts)
            settings = program.services.settings
            logs.event(log, f"reloaded rules from {settings.path(settings.service.rules_dir)} and templates "
                            f"from {settings.path(settings.service.templates_dir)}", logging.INFO,
                       program=program.id)
        refusal = f" (refused: {'; '.join(refused)})" if refused else ""
        systemd.notify(systemd.READY, systemd.status(f"rules and templates reloaded{refusal}; " + self._last_line))

    @staticmethod
    def _prefix(program: ProgramRun) -> str:
        """"ts: " before a program's words in the status line (none for a config without [[programs]])."""
        return "" if program.id == DEFAULT_PROGRAM else f"{program.id}: "

    def _ready(self, _event: object) -> None:
        log.info("scheduler started: ready")
        systemd.notify(systemd.READY, systemd.status(
            f"running: a poll every {self.services.settings.service.poll_seconds} s"
            + (" and on IMAP IDLE" if self.watcher else "") + self._serving()))

    def _run_job_now(self) -> None:
        try:
            self.scheduler.modify_job(JOB_ID, next_run_time=datetime.now(timezone.utc))
        except JobLookupError:
            log.info("new mail announced while stopping: left for the next start")

    def _cycle(self) -> None:
        """Every program's cycle in turn; one that fails on its database does not stop the next."""
        for program in self.programs:
            if self.gate.closed:
                break  # stopping: the programs not reached yet wait for the next start
            with programs.working_on(program.id):
                self._program_cycle(program)
        # gate.cycles counts finished cycles: this one is the next.
        summaries = [f"{self._prefix(p)}{p.last.summary()}" for p in self.programs if p.last]
        self._last_line = (f"last cycle {datetime.now().astimezone():%Y-%m-%d %H:%M:%S}: "
                           f"{' | '.join(summaries)} ({self.gate.cycles + 1} since start)")
        systemd.notify(systemd.status(self._last_line))

    def _program_cycle(self, program: ProgramRun) -> None:
        try:
            report = run_once(program.services, program.connection, stop=lambda: self.gate.closed)
        except (SQLAlchemyError, MailbotError) as exc:
            # Its database is away (or a file it needs): the other programs still get their cycle.
            logs.event(log, "cycle failed", logging.ERROR, program=program.id, error=logs.error_line(exc))
            program.drop_connection()
            return
        if report.poll is None:
            program.drop_connection()  # it failed: the next cycle starts from a fresh login
        program.last = report
        logs.event(log, f"cycle: {report.summary()}", logging.INFO, program=program.id, **report.fields())


def run_forever(services: Services | Sequence[Services]) -> None:
    """Run until SIGTERM or SIGINT; SIGHUP reloads rules and templates.

    ``services``: one program's, or every program's (one daemon serves them all).
    With ``[service] metrics_port`` the Prometheus endpoint runs alongside, on
    127.0.0.1 only; a port already taken is a ConfigError before anything starts.
    """
    port = (services if isinstance(services, Services) else services[0]).settings.service.metrics_port
    endpoint = metrics.serve(services, port) if port else None
    try:
        daemon = Daemon(services)
        install_signals(daemon)
        daemon.start()
    finally:
        if endpoint is not None:
            endpoint.stop()
    log.info("mailbot stopped")


def install_signals(daemon: Daemon) -> None:
    """SIGTERM/SIGINT stop the daemon, SIGHUP reloads it (default SIGHUP would kill it)."""

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %s: finishing the message or send in hand, then stopping",
                 signal.Signals(signum).name)
        daemon.stop()

    def reload_files(_signum: int, _frame: object) -> None:
        log.info("signal SIGHUP: reloading rules and templates")
        daemon.reload()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload_files)
