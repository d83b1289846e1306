"""`mailbot status`: the applications and where the program stands against its cap."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from mailbot import admission
from mailbot.config import ProgramSettings
from mailbot.models import Application


def status(engine: Engine, program: ProgramSettings) -> dict[str, Any]:
    """Every application (queue order first) and the cap counts."""
    with Session(engine) as session:
        apps = session.exec(select(Application)).all()
        cap = admission.cap_status(session, program)
    apps = sorted(apps, key=_queue_key)
    return {"applications": [_row(app) for app in apps], "cap": cap}


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
    lines = [f"cap: {cap['limit']}  adopted: {cap['adopted']}  queued: {cap['queued']}"
             f"  waitlisted: {cap['waitlisted']}", ""]
    lines.append(f"{'reception':<14} {'pos':>3}  {'state':<11} {'country':<7} company")
    for row in result["applications"]:
        pos = row["position"] if row["position"] is not None else "-"
        lines.append(f"{row['reception_number']:<14} {pos:>3}  {row['state']:<11} "
                     f"{row['country'] or '-':<7} {row['company_name'] or '-'}")
    return "\n".join(lines)
