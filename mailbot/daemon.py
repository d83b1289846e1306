"""`mailbot run`: poll the mailbox on a schedule and send what is in the outbox.

APScheduler runs one job, "cycle" (poll, then drain the outbox), every
[service] poll_seconds with max_instances=1 and coalescing, so two polls of
the mailbox never overlap and a slow cycle is not followed by a burst of
catch-up runs. SIGTERM/SIGINT let the cycle in hand finish, then stop.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from datetime import datetime, timezone

from apscheduler.schedulers.blocking import BlockingScheduler

from mailbot import outbox
from mailbot.errors import TransportError
from mailbot.intake.poller import PollReport, poll
from mailbot.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CycleReport:
    """What one cycle did: the poll's counts and the outbox's."""

    poll: PollReport | None
    sent: int
    retried: int
    failed: int


def run_once(services: Services) -> CycleReport:
    """Poll, process, send. A mailbox that cannot be reached still lets the outbox drain."""
    report = None
    try:
        report = poll(services)
    except TransportError as exc:
        log.error("poll failed: %s", exc)
    drained = outbox.send_pending(services.engine, services.settings.smtp)
    return CycleReport(report, drained.sent, drained.retried, drained.failed)


def run_forever(services: Services) -> None:
    """Run cycles every poll_seconds until SIGTERM or SIGINT."""
    scheduler = BlockingScheduler(timezone="Asia/Tokyo")
    scheduler.add_job(
        _cycle, "interval", args=[services], seconds=services.settings.service.poll_seconds,
        id="cycle", max_instances=1, coalesce=True, next_run_time=datetime.now(timezone.utc),
    )
    stop = lambda signum, _frame: _stop(scheduler, signum)  # noqa: E731
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("mailbot running: every %ss", services.settings.service.poll_seconds)
    scheduler.start()
    log.info("mailbot stopped")


def _cycle(services: Services) -> None:
    report = run_once(services)
    log.info("cycle sent=%d retried=%d failed=%d", report.sent, report.retried, report.failed)


def _stop(scheduler: BlockingScheduler, signum: int) -> None:
    log.info("signal %s: finishing the cycle in hand, then stopping", signal.Signals(signum).name)
    # wait=True joins the worker running the current cycle: the message in hand and
    # the send in flight finish before start() returns.
    scheduler.shutdown(wait=True)
