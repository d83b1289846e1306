"""The queue and the cap: first come, first served, inside the caller's transaction.

A complete application takes a place when one is free (state ``queued``),
else joins the waiting list (``waitlisted``). Places taken are applications
that are queued, adopted or further on; an incomplete, waiting, declined or
withdrawn one holds none. Counting and taking happen in one transaction
that holds the queue's lock (db.serialise: BEGIN IMMEDIATE on SQLite, an
advisory lock on PostgreSQL), so two processes can never both take the last
place, and a reception number is never given twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, update
from sqlmodel import Session, select

from mailbot import db, workflow
from mailbot.companies import company_key, corporate_digits
from mailbot.config import ProgramSettings
from mailbot.errors import WorkflowError
from mailbot.models import Application, Counter

TOKYO = ZoneInfo("Asia/Tokyo")
QUEUE_LOCK = "admission-lock"

#: Applications that count as "this company already applied for this region".
ACTIVE_STATES = workflow.PLACE_STATES | {"waitlisted"}
#: Places beyond "queued": adopted and every later step.
ADOPTED_STATES = workflow.PLACE_STATES - {"queued"}
#: Where an application may be admitted from.
ADMITTABLE_STATES = frozenset({"received", "needs_fix"})


@dataclass(frozen=True)
class Admission:
    """Where a complete application landed: queued at position N, or waitlisted at N."""

    state: Literal["queued", "waitlisted"]
    position: int


def next_reception_number(session: Session, prefix: str, year: int) -> str:
    """The next number of the year, e.g. "TS-2026-0001" (a Counter row per prefix and year)."""
    name = f"reception:{prefix}:{year}"
    # The lock, not a row lock: the year's first number has no row to lock yet.
    db.serialise(session, name)
    # One statement (not a read, then a write) for every number but the year's first.
    value = session.execute(update(Counter).where(Counter.name == name)
                            .values(value=Counter.value + 1).returning(Counter.value)).scalar_one_or_none()
    if value is None:
        value = 1
        session.add(Counter(name=name, value=value))
        session.flush()
    return f"{prefix}-{year}-{value:04d}"


def is_open(program: ProgramSettings, arrived_at: datetime) -> bool:
    """True when the arrival day in Tokyo is within [opens, closes]; naive times are UTC."""
    day = as_utc(arrived_at).astimezone(TOKYO).date()
    return program.opens <= day <= program.closes


def as_utc(moment: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken as UTC (SQLite returns stored times naive)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def admit(
    session: Session, app: Application, *, arrived_at: datetime, uid: int,
    program: ProgramSettings, actor: str = "service", raw_message_id: int | None = None,
) -> Admission:
    """Queue a complete application if a place is free, else put it on the waiting list."""
    if app.state not in ADMITTABLE_STATES:
        raise WorkflowError(f"application {app.reception_number}: cannot admit from {app.state!r}")
    lock(session)
    taken = _count(session, workflow.PLACE_STATES)
    if taken < program.cap:
        admission = Admission("queued", taken + 1)
        reason = f"complete; place {admission.position} of {program.cap}"
    else:
        admission = Admission("waitlisted", _count(session, {"waitlisted"}) + 1)
        reason = f"complete; cap of {program.cap} reached, waiting list {admission.position}"
    app.queued_at, app.queued_uid, app.position = as_utc(arrived_at), uid, admission.position
    workflow.move(session, app, admission.state, actor=actor, reason=reason,
                  raw_message_id=raw_message_id)
    return admission


def promote_next(session: Session, program: ProgramSettings, *, actor: str, reason: str) -> Application | None:
    """After a withdrawal or decline: the first on the waiting list takes a free place."""
    lock(session)
    taken = _count(session, workflow.PLACE_STATES)
    first = waiting_list(session)[:1]
    if taken >= program.cap or not first:
        return None
    first[0].position = taken + 1
    workflow.move(session, first[0], "queued", actor=actor, reason=reason)
    return first[0]


def places_taken(session: Session) -> int:
    """Places held now: queued, adopted and every later step."""
    return _count(session, workflow.PLACE_STATES)


def adopted_count(session: Session) -> int:
    """Applications adopted so far (adopted and every later step)."""
    return _count(session, ADOPTED_STATES)


def first_ahead(session: Session, app: Application) -> Application | None:
    """The application that comes before ``app`` in order: the first queued one, else
    (for a waitlisted ``app``) the first on the waiting list; None when ``app`` is next."""
    line = queue(session) or (waiting_list(session) if app.state == "waitlisted" else [])
    return line[0] if line and line[0].id != app.id else None


def live_positions(session: Session) -> dict[int, int]:
    """Application id -> its place now: 1.. in the queue, 1.. on the waiting list.

    ``Application.position`` is what the applicant was told when it queued;
    after a withdrawal the others move up, and this is where they stand today.
    """
    ranks: dict[int, int] = {}
    for line in (queue(session), waiting_list(session)):
        ranks.update({app.id: rank for rank, app in enumerate(line, start=1)})
    return ranks


def queue(session: Session) -> list[Application]:
    """Queued applications in arrival order (the server's time, then its UID)."""
    return _in_order(session, "queued")


def waiting_list(session: Session) -> list[Application]:
    """Waitlisted applications in arrival order."""
    return _in_order(session, "waitlisted")


def find_duplicate(
    session: Session, *, corporate_number: str | None, company_name: str | None,
    country: str | None, exclude_id: int | None = None, states=ACTIVE_STATES,
) -> Application | None:
    """The same company's application for the same region in ``states``, if there is one.

    Same company: the same corporate number when both have one; otherwise the
    same company name after normalising (companies.company_key: NFKC, spaces,
    ㈱ = 株式会社). One lookup on the indexed keys: an opening-day burst
    compared each new application with every earlier one (quadratic).
    """
    same = _same_company(corporate_digits(corporate_number), company_key(company_name))
    if not country or same is None:
        return None
    query = (
        select(Application)
        .where(Application.country == country, Application.state.in_(states), same)
        .order_by(Application.id)
    )
    if exclude_id is not None:
        query = query.where(Application.id != exclude_id)
    return session.exec(query).first()


def _same_company(digits: str | None, key: str | None):
    """The condition "this row is the same company" on the stored keys; None if nothing to match by."""
    by_name = Application.company_key == key
    if digits is None:
        return by_name if key else None
    if key is None:
        return Application.corporate_digits == digits
    # A row without a corporate number is compared by name (the number was left blank there).
    return or_(Application.corporate_digits == digits,
               and_(Application.corporate_digits.is_(None), by_name))


def cap_status(session: Session, program: ProgramSettings) -> dict[str, int]:
    """The numbers for the digest: limit, adopted, queued, waitlisted, taken, remaining."""
    adopted = _count(session, ADOPTED_STATES)
    queued = _count(session, {"queued"})
    taken = adopted + queued
    return {
        "limit": program.cap, "adopted": adopted, "queued": queued,
        "waitlisted": _count(session, {"waitlisted"}),
        "taken": taken, "remaining": max(0, program.cap - taken),
    }


def _count(session: Session, states) -> int:
    query = select(func.count()).select_from(Application).where(Application.state.in_(states))
    return session.exec(query).one()


def _in_order(session: Session, state: str) -> list[Application]:
    query = (
        select(Application)
        .where(Application.state == state)
        .order_by(Application.queued_at, Application.queued_uid, Application.id)
    )
    return list(session.exec(query))


def lock(session: Session) -> None:
    """Admissions one at a time until this transaction ends: the count of places stays true."""
    db.serialise(session, QUEUE_LOCK)
