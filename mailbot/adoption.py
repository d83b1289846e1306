"""Step 02 (採択): adoption in queue order, decline, withdrawal, and the waiting list's turn.

Everything here works inside the caller's transaction (``db.transaction``:
BEGIN IMMEDIATE on SQLite, the queue lock row elsewhere), so the state
changes, their history and the mails they cause commit together or not at
all, and two staff members adopting at the same moment are served one after
the other: the second sees the first one's adoptions and cannot repeat them.

Decisions (issue 5, step 02):
- An adoption is two moves at once, queued/waitlisted -> adopted ->
  documents_requested, because the adoption mail itself asks for the two
  step-03 documents (attached).
- Out of order needs a reason: adopting an application while an earlier one
  is still queued, or one from the waiting list, is refused without
  ``reason`` and the refusal names the application that comes first.
- The cap counts adoptions: never more than ``[program] cap`` adopted; a
  waitlisted one is adopted only into a free place.
- A decline's reason is for the history only; the applicant gets a polite
  notice without it (staff write reasons for colleagues, in shorthand, and
  an eligibility judgement deserves a person's words). Staff who want to
  tell the applicant something pass ``note``, which is quoted as written.
- When a place frees (withdrawal, or a decline of a queued application),
  the first on the waiting list takes it: queued with a 繰り上げ mail, or
  adopted at once under ``[workflow] auto_adopt``. The others on the waiting
  list are not mailed: their order is unchanged and the waiting-list notice
  promised contact only when a place opens for them. Their stored
  ``position`` stays what they were told; ``admission.live_positions`` is
  where they stand now (shown by ``mailbot applications``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlmodel import Session, select

from mailbot import admission, documents, letters, workflow
from mailbot.errors import WorkflowError
from mailbot.models import Application, OutboxMessage

if TYPE_CHECKING:
    from mailbot.services import Services

log = logging.getLogger(__name__)

SERVICE = "service"
#: Where an adoption may start from.
ADOPTABLE = frozenset({"queued", "waitlisted"})


@dataclass
class Outcome:
    """One application a command changed, and the mail it caused (None: every address held)."""

    app: Application
    mail: OutboxMessage | None
    #: For a withdrawal or decline: the waiting-list application that took the freed place.
    promoted: Outcome | None = None


def find(session: Session, reception_number: str) -> Application:
    """The application with this reception number; WorkflowError when there is none."""
    app = session.exec(select(Application).where(
        Application.reception_number == reception_number.strip())).first()
    if app is None:
        raise WorkflowError(f"no application {reception_number!r}")
    return app


# --- adopt ------------------------------------------------------------------------


def adopt_next(session: Session, services: Services, *, actor: str,
               reason: str | None = None) -> list[Outcome]:
    """Adopt the queued applications in queue order while the cap allows (``reason``: for the history)."""
    admission.lock(session)
    room = services.settings.program.cap - admission.adopted_count(session)
    return [adopt(session, services, app, actor=actor, reason=reason or "next in queue order")
            for app in admission.queue(session)[:max(room, 0)]]


def adopt_named(session: Session, services: Services, numbers: list[str], *, actor: str,
                reason: str | None = None) -> list[Outcome]:
    """Adopt these applications, earliest first; out of order only with a ``reason``."""
    admission.lock(session)
    apps = list({app.id: app for app in (find(session, n) for n in numbers)}.values())
    apps.sort(key=lambda a: (a.state != "queued", *_arrival(a)))
    return [adopt(session, services, app, actor=actor, reason=reason) for app in apps]


def adopt(session: Session, services: Services, app: Application, *, actor: str,
          reason: str | None = None, with_receipt: bool = False) -> Outcome:
    """Adopt one application and send the adoption mail with the two step-03 documents.

    ``with_receipt``: the same mail also confirms the application was received
    (automatic adoption, where it replaces the receipt).
    """
    _check_adoptable(session, services, app, reason)
    if app.state == "waitlisted":  # it takes the free place: its number among the places
        app.position = admission.places_taken(session) + 1
    why = reason or "next in queue order"
    workflow.move(session, app, "adopted", actor=actor, reason=why)
    workflow.move(session, app, "documents_requested", actor=actor,
                  reason="adoption mail asks for the two step-03 documents")
    mail = letters.send(session, services, app, "adopted", automatic=actor == SERVICE,
                        attachments=documents.blank_files(services.settings),
                        **adoption_context(services, app, with_receipt=with_receipt))
    _warn_if_withheld(app, mail, "adopted")
    return Outcome(app, mail)


def can_auto_adopt(session: Session, services: Services, app: Application) -> bool:
    """``[workflow] auto_adopt`` applies: queued, first in the queue, and the cap not reached.

    A newcomer is never adopted ahead of older queued applications (left from
    before auto_adopt was switched on): it keeps its receipt and waits for
    staff to adopt in order.
    """
    return (services.settings.workflow.auto_adopt and app.state == "queued"
            and admission.first_ahead(session, app) is None
            and admission.adopted_count(session) < services.settings.program.cap)


def _check_adoptable(session: Session, services: Services, app: Application, reason: str | None) -> None:
    """Refuse (WorkflowError) a wrong state, a full cap, or out of order without a reason."""
    if app.state not in ADOPTABLE:
        raise WorkflowError(f"application {app.reception_number}: cannot adopt from {app.state!r} "
                            f"(only from {', '.join(sorted(ADOPTABLE))})")
    cap = services.settings.program.cap
    if admission.adopted_count(session) >= cap:
        raise WorkflowError(f"application {app.reception_number}: the cap of {cap} is reached "
                            f"({cap} adopted)")
    if app.state == "waitlisted" and admission.places_taken(session) >= cap:
        raise WorkflowError(f"application {app.reception_number} is 'waitlisted' and all {cap} "
                            "places are taken: a place must free first (withdraw or decline)")
    ahead = admission.first_ahead(session, app)
    if not reason and (ahead is not None or app.state == "waitlisted"):
        raise WorkflowError(_out_of_order(app, ahead))


def _out_of_order(app: Application, ahead: Application | None) -> str:
    if ahead is None:
        return (f"application {app.reception_number} is 'waitlisted': adopting it before the "
                "queue needs --reason")
    return (f"application {app.reception_number} ('{app.state}') is out of queue order: "
            f"{ahead.reception_number} ('{ahead.state}') comes first; give --reason to adopt it anyway")


def adoption_context(services: Services, app: Application, *, with_receipt: bool = False) -> dict:
    """What the ``adopted`` template needs besides ``app`` and ``program`` (also for previews)."""
    settings = services.settings
    program = settings.program
    return {
        "with_receipt": with_receipt,
        "region": services.rules.region_name(app.country) if app.country else None,
        "support_ends": program.support_ends or program.closes,
        "hours_cap": services.rules.hours_cap,
        "reminder_days": settings.workflow.documents_reminder_days,
        "documents": [documents.TITLES[documents.HELD_INFO], documents.TITLES[documents.SELF_CHECK]],
    }


def _arrival(app: Application) -> tuple:
    return (admission.as_utc(app.queued_at) if app.queued_at else app.created_at,
            app.queued_uid or 0, app.id)


# --- decline and withdraw -----------------------------------------------------------


def decline(session: Session, services: Services, app: Application, *, actor: str, reason: str,
            note: str | None = None) -> Outcome:
    """Decline with a reason (history only); a freed place goes to the waiting list."""
    if not reason or not reason.strip():
        raise WorkflowError(f"application {app.reception_number}: a decline needs --reason")
    admission.lock(session)
    held_place = app.state in workflow.PLACE_STATES
    workflow.move(session, app, "declined", actor=actor, reason=reason.strip())
    mail = letters.send(session, services, app, "declined", note=(note or "").strip())
    _warn_if_withheld(app, mail, "declined")
    promoted = offer_place(session, services, freed_by=app) if held_place else None
    return Outcome(app, mail, promoted)


def withdraw(session: Session, services: Services, app: Application, *, actor: str,
             reason: str | None = None) -> Outcome:
    """The applicant withdrew (辞退): acknowledge it; a freed place goes to the waiting list."""
    admission.lock(session)
    held_place = app.state in workflow.PLACE_STATES
    workflow.move(session, app, "withdrawn", actor=actor,
                  reason=(reason or "").strip() or "the applicant withdrew")
    mail = letters.send(session, services, app, "withdrawn")
    _warn_if_withheld(app, mail, "withdrawn")
    promoted = offer_place(session, services, freed_by=app) if held_place else None
    return Outcome(app, mail, promoted)


def offer_place(session: Session, services: Services, *, freed_by: Application) -> Outcome | None:
    """The first on the waiting list takes the free place: 繰り上げ mail, or adoption (auto_adopt)."""
    why = f"place freed by {freed_by.reception_number} ({freed_by.state})"
    app = admission.promote_next(session, services.settings.program, actor=SERVICE, reason=why)
    if app is None:
        return None
    if can_auto_adopt(session, services, app):  # never ahead of an older queued application
        return adopt(session, services, app, actor=SERVICE, reason=f"auto_adopt; {why}")
    mail = letters.send(session, services, app, "place_offered", automatic=True, position=app.position)
    _warn_if_withheld(app, mail, "place_offered")
    return Outcome(app, mail)


def _warn_if_withheld(app: Application, mail: OutboxMessage | None, template: str) -> None:
    if mail is None:
        log.warning("application=%s: %s mail not queued, every address is held after a bounce",
                    app.reception_number, template)
