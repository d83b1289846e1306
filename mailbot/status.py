"""What staff look at: `mailbot status` (the applications, the cap, the mail by class)
and `mailbot messages` (the recent inbound mail, newest first, with its class and why)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from mailbot import admission
from mailbot.config import ProgramSettings
from mailbot.db import WITHOUT_RAW
from mailbot.intake.classify import CLASSES
from mailbot.models import Application, RawMessage


def status(engine: Engine, program: ProgramSettings) -> dict[str, Any]:
    """Every application (queue order first), the cap counts, and the inbound mail by class."""
    with Session(engine) as session:
        apps = session.exec(select(Application)).all()
        cap = admission.cap_status(session, program)
        mail = mail_counts(session)
    apps = sorted(apps, key=_queue_key)
    return {"applications": [_row(app) for app in apps], "cap": cap, "mail": mail}


def mail_counts(session: Session) -> dict[str, int]:
    """Processed inbound mail per class (all six, 0 when none), and the quarantined and waiting ones."""
    by_class = dict(session.exec(select(RawMessage.mail_class, func.count()).where(
        RawMessage.status == "processed").group_by(RawMessage.mail_class)).all())
    by_status = dict(session.exec(select(RawMessage.status, func.count()).group_by(RawMessage.status)).all())
    counts = {name: by_class.get(name, 0) for name in CLASSES}
    counts.update(quarantined=by_status.get("quarantined", 0), waiting=by_status.get("new", 0))
    return counts


def messages(engine: Engine, mail_class: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The most recent inbound messages (of one class when given), newest arrival first."""
    query = (select(RawMessage).options(WITHOUT_RAW)
             .order_by(RawMessage.arrived_at.desc(), RawMessage.id.desc()).limit(limit))
    if mail_class is not None:
        query = query.where(RawMessage.mail_class == mail_class)
    with Session(engine) as session:
        rows = session.exec(query).all()
    return [{"id": r.id, "arrived_at": r.arrived_at.isoformat(), "class": r.mail_class or r.status,
             "sender": r.sender, "subject": r.subject, "reason": r.reason or r.error} for r in rows]


def messages_as_text(rows: list[dict[str, Any]]) -> str:
    """Two lines per message for the terminal: who and what, then why it was sorted so."""
    lines = [f"{row['id']:>6}  {row['arrived_at'][:19]}  {row['class']:<12} {row['sender'] or '-'}  "
             f"{row['subject'] or '-'}\n        {row['reason'] or '-'}" for row in rows]
    return "\n".join([*lines, f"{len(rows)} message(s)"])


def _queue_key(app: Application):
    # Queued/waitlisted by arrival of the complete form; the incomplete after, by number.
    return (app.queued_at is None, app.queued_at or app.created_at, app.queued_uid or 0, app.reception_number)


def _row(app: Application) -> dict[str, Any]:
    return {
        "reception_number": app.reception_number,
        "company_name": app.company_name,
        "country": app.country,
        "state": app.state,
        "position": app.position,
        "queued_at": app.queued_at.isoformat() if app.queued_at else None,
        "sender": app.sender,
    }


def as_text(result: dict[str, Any]) -> str:
    """A table for the terminal."""
    cap = result["cap"]
    mail = result["mail"]
    counts = "  ".join(f"{name}: {mail[name]}" for name in (*CLASSES, "quarantined", "waiting"))
    cap_line = (f"cap: {cap['limit']}  adopted: {cap['adopted']}  queued: {cap['queued']}"
                f"  waitlisted: {cap['waitlisted']}")
    lines = [cap_line, f"mail: {counts}", ""]
    lines.append(f"{'reception':<14} {'pos':>3}  {'state':<11} {'country':<7} company")
    for row in result["applications"]:
        pos = row["position"] if row["position"] is not None else "-"
        lines.append(f"{row['reception_number']:<14} {pos:>3}  {row['state']:<11} "
                     f"{row['country'] or '-':<7} {row['company_name'] or '-'}")
    return "\n".join(lines)
