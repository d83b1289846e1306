"""Health of the intake: staff hear once when the mailbox cannot be polled, and once when it can again.

The daemon calls ``watch`` after every poll attempt, failed or not, and
drains the outbox afterwards: the alert travels over SMTP, so it leaves even
while the IMAP server is down. The state lives in the folder's
``FolderState`` row, written by the poller and by this module:

- ``last_poll_at``: when a poll last succeeded (the poller sets it);
- ``alerted_at``: when staff were told that polling fails (None: no alert
  outstanding). While it is set no second alert is sent, however long the
  outage lasts, and a daemon restarted mid-outage does not alert again;
- ``failed_polls`` and ``poll_error``: attempts failed since the last good
  poll and why the latest failed (counted here, cleared by the poller), for
  `mailbot health` (:mod:`mailbot.checkup`).

An outage is "no successful poll for ``[service] health_alert_minutes``",
measured from ``last_poll_at``. A mailbox that has never been polled
successfully has no ``last_poll_at``: the clock then starts at the first
attempt this process saw (kept in memory, so a restart starts it again; a
service that never worked alerts at most that many minutes after each start).
Recovery is ``last_poll_at`` later than ``alerted_at``: a poll succeeded
after staff were told.

Kept in memory only, for the wording of the mails: the last error text, the
first failed attempt when no poll ever succeeded, and the start of the
outage being reported (a restart mid-outage makes the recovery notice say
the start is unknown).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlmodel import Session, select

from mailbot import staff
from mailbot.db import transaction
from mailbot.errors import MailbotError
from mailbot.models import FolderState, OutboxMessage, utcnow
from mailbot.render import one_line
from mailbot.services import Services

log = logging.getLogger(__name__)

ALERT = "alert"
RECOVERED = "recovered"
ERROR_MAX = 500  # characters of the error kept for the mail


@dataclass
class _Memory:
    """What this process remembers about one folder's outage (see the module docstring)."""

    last_error: str | None = None
    first_attempt: datetime | None = None  # only used while no poll ever succeeded
    down_from: datetime | None = None  # the outage start given in the alert


_memory: dict[tuple[str, str], _Memory] = {}


def watch(services: Services, now: datetime | None = None, error: str | None = None) -> str | None:
    """Check the folder's health after a poll attempt; "alert", "recovered", or None.

    ``error``: why this attempt failed, when it did (shown in the alert).
    The value returned says what was signalled: the mail to staff is queued
    in the outbox (or, with no staff address configured, only logged).
    """
    now = _aware(now or utcnow())
    settings = services.settings
    memory = _memory.setdefault((settings.database_url, settings.imap.folder), _Memory())
    if error:
        memory.last_error = one_line(error)[:ERROR_MAX]
        _count_failure(services, memory.last_error)
    try:
        return _signal(services, now, memory)
    except MailbotError as exc:
        # A broken staff template must not stop the cycle (the outbox still drains and
        # applicants still get their replies); the state is unchanged, so the next
        # attempt tries again once the template is fixed.
        log.error("health: could not queue the staff notice: %s", exc)
        return None


def _count_failure(services: Services, error: str) -> None:
    """One more failed attempt since the last good poll, and its reason."""
    folder = services.settings.imap.folder
    with transaction(services.engine) as session:
        state = session.get(FolderState, folder) or FolderState(folder=folder)
        state.failed_polls, state.poll_error = state.failed_polls + 1, error
        session.add(state)


def _signal(services: Services, now: datetime, memory: _Memory) -> str | None:
    """Read the folder's state without a write lock; write only when there is news."""
    folder = services.settings.imap.folder
    minutes = services.settings.service.health_alert_minutes
    with Session(services.engine) as session:
        due = _news(session.get(FolderState, folder), now, memory, minutes)
    if due is None:
        return None  # the common case: every cycle of a healthy mailbox ends here
    with transaction(services.engine) as session:
        state = session.get(FolderState, folder)
        if _news(state, now, memory, minutes) != due:
            return None  # another process signalled it in between
        if due == RECOVERED:
            return _recover(session, services, state, memory)
        return _alert(session, services, state or FolderState(folder=folder), memory, now)


def _news(state: FolderState | None, now: datetime, memory: _Memory, minutes: int) -> str | None:
    """What staff should hear now: ALERT, RECOVERED, or None (see the module docstring)."""
    if state is not None and state.alerted_at is not None:
        polled_since = state.last_poll_at is not None and \
            _aware(state.last_poll_at) > _aware(state.alerted_at)
        return RECOVERED if polled_since else None  # still down: staff already know
    if state is None or state.last_poll_at is None:
        memory.first_attempt = memory.first_attempt or now
    since = state.last_poll_at if state is not None and state.last_poll_at else memory.first_attempt
    return ALERT if now - _aware(since) >= timedelta(minutes=minutes) else None


def _alert(session: Session, services: Services, state: FolderState, memory: _Memory,
           now: datetime) -> str:
    """Tell staff (once) that polling fails; mark the alert outstanding."""
    settings = services.settings
    imap = settings.imap
    last_ok = state.last_poll_at
    memory.down_from = last_ok or memory.first_attempt
    log.error("health: no successful poll of %s since %s; alerting staff",
              imap.folder, last_ok.isoformat() if last_ok else "start")
    staff.notify(
        session, services, staff.HEALTH_ALERT, topic=f"health:{imap.folder}",
        folder=imap.folder, server=f"{imap.host}:{imap.port}", username=imap.username,
        minutes=settings.service.health_alert_minutes, last_ok=staff.when(last_ok),
        first_failure=None if last_ok else staff.when(memory.first_attempt),
        error=memory.last_error,
    )
    state.alerted_at = now
    session.add(state)
    return ALERT


def _recover(session: Session, services: Services, state: FolderState, memory: _Memory) -> str:
    """One recovery notice (a poll succeeded after the alert); the alert is no longer outstanding."""
    imap = services.settings.imap
    down_from, down_to = memory.down_from, _aware(state.last_poll_at)
    log.info("health: polling of %s works again (alerted %s)", imap.folder, state.alerted_at.isoformat())
    staff.notify(
        session, services, staff.HEALTH_RECOVERED, topic=f"health:{imap.folder}",
        in_reply_to=_last_alert_id(session),
        folder=imap.folder, server=f"{imap.host}:{imap.port}", alerted_at=staff.when(state.alerted_at),
        down_from=staff.when(down_from), down_to=staff.when(down_to),
        down_for=staff.duration((down_to - _aware(down_from)).total_seconds()) if down_from else None,
    )
    state.alerted_at = None
    memory.down_from = memory.first_attempt = memory.last_error = None
    return RECOVERED


def _last_alert_id(session: Session) -> str | None:
    """The Message-ID of the latest alert, so the recovery notice answers it in the thread."""
    return session.exec(select(OutboxMessage.message_id).where(
        OutboxMessage.kind == staff.HEALTH_ALERT).order_by(OutboxMessage.id.desc())).first()


def _aware(moment: datetime) -> datetime:
    """Aware UTC (SQLite gives stored datetimes back naive; they were stored as UTC)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
