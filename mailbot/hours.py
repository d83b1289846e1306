"""Step 05: the hours ledger — sessions logged by staff, the cap per company and region, the summary.

The program gives each company at most ``hours_per_country`` hours
(rules/regions.toml, 23) of expert service per country/region, of two kinds:
consultation for managers and training for managers and staff. Staff log
each session (``mailbot log-session``); a session that would pass the cap,
falls outside the support period or comes in the wrong state is refused
with a WorkflowError that says why (and, for the cap, how much is left).

The cap belongs to the company, not the application: every application of
the same company (the same corporate number, else the same normalised name)
for the same region shares one ledger. Two regions are two caps.

When a session makes the used hours reach ``[workflow] hours_notice_percent``
of the cap, the applicant gets one summary mail (template hours_summary).
Hours only ever grow, so "crossing" happens once per company and region;
staff can send the summary again on request (``mailbot hours ID --send``).
Nothing here commits: the caller's transaction holds the row, the state
change and the mail together.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from mailbot import db, letters, workflow
from mailbot.companies import normalise_company_name
from mailbot.errors import WorkflowError
from mailbot.models import Application, OutboxMessage
from mailbot.tables.hours import HoursSession

TOKYO = ZoneInfo("Asia/Tokyo")
TEMPLATE = "hours_summary"

#: The two kinds of service, as the program page names them.
KINDS = {"consultation": "管理職向けコンサルテーション", "training": "管理職・社員向け研修"}

#: Sessions are logged once the interview is set (the first one starts the service) and during it.
LOGGABLE_STATES = ("interview_scheduled", "in_service")
#: States in which a summary means something to the applicant (sent on request).
SUMMARY_STATES = (*LOGGABLE_STATES, "followup_scheduled", "completed")


@dataclass(frozen=True)
class SessionLine:
    """One logged session as staff and the applicant see it."""

    held_on: date
    kind: str
    hours: float
    note: str | None
    recorded_by: str
    reception_number: str  # the application it was logged on (a shared cap can span two)


@dataclass(frozen=True)
class HoursSummary:
    """Hours used and left for one company in one region, and the sessions behind them."""

    cap: float
    used: float
    left: float
    by_kind: dict[str, float]  # every kind in KINDS, 0.0 when none
    sessions: tuple[SessionLine, ...]  # oldest first
    region: str | None
    support_ends: date

    @property
    def percent_used(self) -> int:
        """Used hours as a whole percentage of the cap (rounded down)."""
        return int(self.used * 100 // self.cap) if self.cap else 0

    def as_json(self) -> dict:
        """Plain JSON values (dates as ISO strings) for ``--json`` and ``mailbot show``."""
        data = asdict(self)
        data["support_ends"] = self.support_ends.isoformat()
        data["sessions"] = [{**line, "held_on": line["held_on"].isoformat()} for line in data["sessions"]]
        data["percent_used"] = self.percent_used
        return data


@dataclass(frozen=True)
class Logged:
    """What one log-session did: the ledger row, the summary after it, the mail if one went."""

    row: HoursSession
    summary: HoursSummary
    started_service: bool  # interview_scheduled -> in_service
    notice: OutboxMessage | None


def hours_text(hours: float) -> str:
    """22 -> "22.0 h": how refusals and the terminal show hours."""
    return f"{hours:.1f} h"


def support_ends(services) -> date:
    """The last day of expert service: ``[program] support_ends``, else ``closes``."""
    program = services.settings.program
    return program.support_ends or program.closes


def tokyo_today() -> date:
    """Today in Asia/Tokyo, the program's calendar."""
    return datetime.now(TOKYO).date()


def summary(session: Session, services, app: Application) -> HoursSummary:
    """The company's ledger for the application's region: used, cap, left, by kind, sessions."""
    cap = float(services.rules.hours_cap)
    sharing = {a.id: a.reception_number for a in sharing_applications(session, app)}
    rows = session.exec(select(HoursSession).where(HoursSession.application_id.in_(list(sharing)))
                        .order_by(HoursSession.held_on, HoursSession.id)).all()
    by_kind = {kind: sum((r.hours for r in rows if r.kind == kind), 0.0) for kind in KINDS}
    used = sum(by_kind.values())
    lines = tuple(SessionLine(r.held_on, r.kind, r.hours, r.note, r.recorded_by, sharing[r.application_id])
                  for r in rows)
    return HoursSummary(cap=cap, used=used, left=max(cap - used, 0.0), by_kind=by_kind, sessions=lines,
                        region=app.country, support_ends=support_ends(services))


def sharing_applications(session: Session, app: Application) -> list[Application]:
    """The application and every other one of the same company for the same region.

    There should be only one (reception merges a second application of the
    same company and region), but the ledger must hold if there are two.
    """
    if not app.country:
        return [app]
    same_region = session.exec(select(Application).where(Application.country == app.country)
                               .order_by(Application.id)).all()
    return [other for other in same_region if other.id == app.id or same_company(app, other)]


def same_company(one: Application, other: Application) -> bool:
    """The same corporate number when both have one; else the same normalised company name."""
    ours, theirs = _digits(one.corporate_number), _digits(other.corporate_number)
    if ours and theirs:
        return ours == theirs
    if not one.company_name or not other.company_name:
        return False
    return normalise_company_name(one.company_name) == normalise_company_name(other.company_name)


def _digits(number: str | None) -> str:
    return re.sub(r"\D", "", unicodedata.normalize("NFKC", number or ""))


def log_session(session: Session, services, app: Application, *, held_on: date, kind: str, hours: float,
                by: str, note: str | None = None, today: date | None = None) -> Logged:
    """Record one session after every check; the first one moves interview_scheduled -> in_service."""
    check_session(services, app, held_on=held_on, kind=kind, hours=hours, today=today or tokyo_today())
    # PostgreSQL: a second staff member logging for this company waits here, then sees this session.
    db.serialise(session, f"hours:{app.id}")
    before = summary(session, services, app)
    _refuse_overrun(app, hours, before)
    row = HoursSession(application_id=app.id, held_on=held_on, kind=kind, hours=float(hours),
                       note=note or None, recorded_by=by)
    session.add(row)
    started = app.state == "interview_scheduled"
    if started:
        workflow.move(session, app, "in_service", actor=by,
                      reason=f"first session logged ({held_on.isoformat()}, {kind}, {hours_text(hours)})")
    session.flush()
    after = summary(session, services, app)
    notice = None
    if _crosses_notice(services, before.used, after.used, after.cap):
        notice = send_summary(session, services, app, trigger="threshold", current=after)
    return Logged(row=row, summary=after, started_service=started, notice=notice)


def check_session(services, app: Application, *, held_on: date, kind: str, hours: float, today: date) -> None:
    """Refuse a session in the wrong state, of an unknown kind, of odd hours or outside the period."""
    who = f"application {app.reception_number}"
    if app.state not in LOGGABLE_STATES:
        raise WorkflowError(f"{who}: sessions are logged in {' or '.join(LOGGABLE_STATES)}, "
                            f"not in state {app.state!r}")
    if kind not in KINDS:
        raise WorkflowError(f"{who}: the kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not (hours > 0 and float(hours * 2).is_integer()):
        raise WorkflowError(f"{who}: hours are logged in steps of 0.5 h (0.5, 1.0, 1.5 …), not {hours}")
    program, last = services.settings.program, support_ends(services)
    if held_on < program.opens:
        raise WorkflowError(f"{who}: {held_on} is before the program opened ({program.opens})")
    if held_on > last:
        raise WorkflowError(f"{who}: {held_on} is after the support period ended ({last})")
    if held_on > today:
        raise WorkflowError(f"{who}: {held_on} is in the future (today is {today})")


def _refuse_overrun(app: Application, hours: float, before: HoursSummary) -> None:
    """WorkflowError saying what is used and left when ``hours`` more would pass the cap."""
    if hours > before.left:
        raise WorkflowError(
            f"application {app.reception_number}: {hours_text(hours)} would pass the cap of "
            f"{hours_text(before.cap)} for this company in {app.country or 'its region'}: "
            f"{hours_text(before.used)} used, {hours_text(before.left)} left")


def _crosses_notice(services, used_before: float, used_after: float, cap: float) -> bool:
    """Whether this session took the used hours from below the notice line to on or above it."""
    line = cap * services.settings.workflow.hours_notice_percent / 100
    return used_before < line <= used_after


def send_summary(session: Session, services, app: Application, *, trigger: str = "request",
                 current: HoursSummary | None = None) -> OutboxMessage | None:
    """Mail the summary to the applicant (None when every address is held after a bounce).

    ``trigger``: "threshold" (the service's notice at hours_notice_percent,
    an automatic mail) or "request" (staff send it on request).
    """
    if app.state not in SUMMARY_STATES:
        raise WorkflowError(f"application {app.reception_number}: an hours summary goes out in "
                            f"{', '.join(SUMMARY_STATES)}, not in state {app.state!r}")
    current = current or summary(session, services, app)
    return letters.send(
        session, services, app, TEMPLATE, automatic=trigger == "threshold", summary=current,
        trigger=trigger, notice_percent=services.settings.workflow.hours_notice_percent,
        region_name=services.rules.region_name(app.country) if app.country else None,
    )
