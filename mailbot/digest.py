"""The staff digest: when it is due, and sending it as text and HTML through the outbox.

A digest covers one period: from the end of the last digest to now, so
nothing falls between two digests and nothing is told twice (the facts are
mailbot.digest_facts). Every digest, scheduled or sent by hand, is a
``DigestRun`` row written in the same transaction as its outbox mail.

When one is due (``send_if_due``, called by the daemon every cycle): when a
fire time of ``[staff] digest_schedule`` (cron, in ``digest_timezone``) has
passed since the last digest. A daemon that was down at 09:00 and starts at
11:00 sends at 11:00, once: the next fire time after that digest is the next
one on the schedule, however many were missed, and the unique ``fire_time``
keeps two daemons from both sending it.

The very first period, with no digest ever recorded, starts at the first
thing the database holds (the earliest stored mail, application or outbox
mail): fire times before the database existed are never owed. A database
with nothing in it yet gets a "baseline" row at the first call, and the
first digest goes out at the next fire time after it.

``mailbot digest --send`` (``send_now``) is a digest like the others: it
ends the period, and the next scheduled one starts there. An empty period
(``Digest.is_empty``) still sends a short "nothing new" digest with the
program's state, unless ``[staff] digest_when_empty = false`` (then only a
row records that the period was looked at). ``preview`` changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import func
from sqlmodel import Session, select

from mailbot import outbox, staff
from mailbot.admission import as_utc
from mailbot.db import serialise, transaction
from mailbot.digest_facts import Digest, Period, gather
from mailbot.models import Application, OutboxMessage, RawMessage
from mailbot.render import RenderedMail
from mailbot.tables.digest import DigestRun

log = logging.getLogger(__name__)

TEMPLATE = "staff_digest"  # templates/ja/staff_digest.txt.j2 and .html.j2; also the outbox kind


@dataclass(frozen=True)
class Rendered:
    """One digest as staff get it: subject, text, HTML."""

    subject: str
    text: str
    html: str


# --- when ---------------------------------------------------------------------------------


def next_fire_time(services, after: datetime) -> datetime:
    """The first fire time of the schedule strictly after ``after``, in UTC."""
    settings = services.settings.staff
    trigger = CronTrigger.from_crontab(settings.digest_schedule, timezone=ZoneInfo(settings.digest_timezone))
    # The trigger rounds up to the whole second and may return ``now`` itself: step past it.
    fire = trigger.get_next_fire_time(None, as_utc(after) + timedelta(microseconds=1))
    return fire.astimezone(UTC)


def period_start(session: Session) -> datetime | None:
    """Where the next period starts: the end of the last digest, else the database's first record."""
    last = session.exec(select(func.max(DigestRun.period_end))).one()
    if last is not None:
        return as_utc(last)
    firsts = [session.exec(select(func.min(column))).one()
              for column in (RawMessage.stored_at, Application.created_at, OutboxMessage.created_at)]
    known = [as_utc(moment) for moment in firsts if moment is not None]
    return min(known) if known else None


def due_fire_time(session: Session, services, now: datetime) -> datetime | None:
    """The schedule's fire time a digest is owed for at ``now``, or None when none is."""
    start = period_start(session)
    if start is None:
        return None
    fire = next_fire_time(services, start)
    return fire if fire <= as_utc(now) else None


# --- send -----------------------------------------------------------------------------------


def send_if_due(services, now: datetime | None = None) -> int | None:
    """Queue the digest when a fire time has passed since the last one: its outbox id, else None.

    None also when the period was empty and ``digest_when_empty`` is false, or
    when no staff address can get it (both recorded, so the fire time is spent).
    """
    now = as_utc(now or datetime.now(UTC))
    with transaction(services.engine) as session:
        serialise(session, "digest")  # PostgreSQL: two daemons at the same moment send one digest
        start = period_start(session)
        if start is None:
            session.add(DigestRun(period_start=now, period_end=now, outcome="baseline"))
            return None
        fire = due_fire_time(session, services, now)
        if fire is None:
            return None
        run = _record(session, services, Period(start, now), fire_time=fire, force=False)
        return run.outbox_id


def send_now(services, now: datetime | None = None) -> DigestRun:
    """Queue a digest now, empty or not (``mailbot digest --send``); it ends the period."""
    now = as_utc(now or datetime.now(UTC))
    with transaction(services.engine) as session:
        start = period_start(session) or now
        return _record(session, services, Period(start, now), fire_time=None, force=True)


def preview(services, now: datetime | None = None) -> Rendered:
    """The digest as it would go out now; nothing is written."""
    now = as_utc(now or datetime.now(UTC))
    with Session(services.engine) as session:
        facts = gather(session, services, Period(period_start(session) or now, now))
    return render(services, facts)


def _record(session: Session, services, period: Period, *, fire_time: datetime | None,
            force: bool) -> DigestRun:
    """Gather, then queue the mail (unless empty and unwanted, or nobody to send to) and its row."""
    facts = gather(session, services, period)
    run = DigestRun(period_start=period.start, period_end=period.end, fire_time=fire_time,
                    outcome="sent", needs_person=facts.needs_person)
    if facts.is_empty and not force and not services.settings.staff.digest_when_empty:
        run.outcome = "empty"
    elif not (to := staff.recipients(session, services)):
        log.warning("staff digest not mailed: no staff address in [staff] digest_to "
                    "(or every one is held after a bounce)")
        run.outcome = "no_recipients"
    else:
        run.outbox_id = _enqueue(session, services, facts, to).id
    session.add(run)
    session.flush()
    log.info("digest=%s outcome=%s needs_person=%s outbox=%s", run.id, run.outcome, run.needs_person,
             run.outbox_id)
    return run


def _enqueue(session: Session, services, facts: Digest, to: list[str]) -> OutboxMessage:
    mail = render(services, facts)
    row = outbox.enqueue(session, kind=TEMPLATE, to=to, subject=mail.subject, body=mail.text, html=mail.html,
                         from_address=services.settings.smtp.from_address,
                         # RFC 3834: a staff member's out-of-office must not answer a robot.
                         automatic=True)
    session.flush()  # the run row names the outbox id
    return row


# --- words ------------------------------------------------------------------------------------


def render(services, facts: Digest) -> Rendered:
    """The text part (subject and body) and the HTML part, from the same facts."""
    context = _context(services, facts)
    text: RenderedMail = services.renderer.render(TEMPLATE, language="ja", **context)
    html = services.renderer.render_html(TEMPLATE, language="ja", subject=text.subject, **context)
    return Rendered(subject=text.subject, text=text.body, html=html)


def _context(services, facts: Digest) -> dict:
    zone = ZoneInfo(services.settings.staff.digest_timezone)
    end = facts.period.end.astimezone(zone)
    return {"d": facts, "program": services.settings.program, "day": end.date().isoformat(), "when": staff.when,
            "period_from": staff.when(facts.period.start), "period_to": staff.when(facts.period.end)}
