"""`mailbot health`: is the service doing its job? For monitoring (exit 0 healthy, 1 not).

Read-only, from the database alone, so it answers the same whether or not
the daemon runs and costs nothing to call every minute:
- database: reachable at all (else nothing else can be said);
- last poll: a poll succeeded within [service] health_alert_minutes, and
  fewer than FAILED_POLLS attempts in a row have failed since (a mailbox
  that refuses the login shows within minutes, with the server's reason);
- outbox: no mail given up on ("failed") and none pending longer than
  BACKLOG_MINUTES (the SMTP server refuses or is away);
- quarantine: how many mails wait for staff (reported, not a failure: the
  service did its job by keeping them).

With programs in the config (``[[programs]]``) every program is checked,
each line starting with "program <id>: "; one unhealthy program makes the
whole service unhealthy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import func
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from mailbot.config import DEFAULT_PROGRAM
from mailbot.models import FolderState, OutboxMessage, RawMessage

BACKLOG_MINUTES = 30
#: Failed poll attempts in a row that make the service unhealthy: one is a blip
#: (a server restarting), three at a poll a minute is a mailbox that stays away.
FAILED_POLLS = 3


@dataclass
class Checkup:
    """Each finding as a line; healthy when no finding is a problem."""

    problems: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_json(self) -> dict:
        return {"healthy": self.healthy, "problems": self.problems, "facts": self.facts}


def check(services, now: datetime | None = None) -> Checkup:
    """Every finding about the service, from its database."""
    now = now or datetime.now(timezone.utc)
    report = Checkup()
    try:
        with Session(services.engine) as session:
            _last_poll(session, services, now, report)
            _outbox(session, now, report)
            _quarantine(session, report)
    except SQLAlchemyError as exc:
        report.problems.append(f"database unreachable: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    return report


def combine(reports: dict[str, Checkup]) -> Checkup:
    """Every program's findings in one report; each line names its program, except the one
    program of a config without [[programs]] (its lines stay as they always were)."""
    if list(reports) == [DEFAULT_PROGRAM]:
        return reports[DEFAULT_PROGRAM]
    combined = Checkup()
    for program_id, report in reports.items():
        combined.problems += [f"program {program_id}: {line}" for line in report.problems]
        combined.facts += [f"program {program_id}: {line}" for line in report.facts]
    return combined


def _last_poll(session: Session, services, now: datetime, report: Checkup) -> None:
    folder = services.settings.imap.folder
    limit = services.settings.service.health_alert_minutes
    state = session.get(FolderState, folder)
    if state is None or state.last_poll_at is None:
        reason = f": {state.poll_error}" if state is not None and state.poll_error else ""
        report.problems.append(f"mailbox {folder}: no poll has ever succeeded{reason}")
        return
    age = (now - _aware(state.last_poll_at)).total_seconds() / 60
    line = f"mailbox {folder}: last good poll {age:.1f} min ago"
    (report.problems if age > limit else report.facts).append(
        line + (f" (more than {limit} min)" if age > limit else ""))
    _failed_polls(state, report)


def _failed_polls(state: FolderState, report: Checkup) -> None:
    if not state.failed_polls:
        return
    line = f"mailbox {state.folder}: the last {state.failed_polls} poll(s) failed: {state.poll_error}"
    (report.problems if state.failed_polls >= FAILED_POLLS else report.facts).append(line)


def _outbox(session: Session, now: datetime, report: Checkup) -> None:
    failed = _count(session, OutboxMessage, OutboxMessage.status == "failed")
    late = _count(session, OutboxMessage, OutboxMessage.status == "pending",
                  OutboxMessage.created_at < now - timedelta(minutes=BACKLOG_MINUTES))
    pending = _count(session, OutboxMessage, OutboxMessage.status == "pending")
    if failed:
        report.problems.append(f"outbox: {failed} mail(s) failed (given up): see `mailbot status`")
    if late:
        report.problems.append(f"outbox: {late} mail(s) pending for more than {BACKLOG_MINUTES} min")
    report.facts.append(f"outbox: {pending} pending")


def _quarantine(session: Session, report: Checkup) -> None:
    kept = _count(session, RawMessage, RawMessage.status == "quarantined")
    report.facts.append(f"quarantine: {kept} mail(s) kept for staff"
                        + ("; `mailbot quarantined`" if kept else ""))


def _count(session: Session, model, *conditions) -> int:
    return session.exec(select(func.count()).select_from(model).where(*conditions)).one()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
