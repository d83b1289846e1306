"""An application's states, the moves allowed between them (one table), and its history.

Every change is a ``Transition`` row (from, to, who, why, which mail), added
to the caller's session: nothing here commits, so the state change, its
history row and the reply it causes (outbox) commit together or not at all.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlmodel import Session, select

from mailbot.errors import WorkflowError
from mailbot.models import Application, Transition

#: state -> the states it may move to. The whole workflow, as data.
TRANSITIONS: dict[str, frozenset[str]] = {
    "received": frozenset({"needs_fix", "queued", "waitlisted", "declined"}),
    "needs_fix": frozenset({"needs_fix", "queued", "waitlisted", "declined", "withdrawn"}),
    "queued": frozenset({"adopted", "declined", "withdrawn"}),
    "waitlisted": frozenset({"queued", "adopted", "declined", "withdrawn"}),
    "adopted": frozenset({"documents_requested", "withdrawn"}),
    # A reminder or a "still missing" reply keeps it in documents_requested.
    "documents_requested": frozenset({"documents_requested", "documents_received", "withdrawn"}),
    # Staff may find a document unusable and ask again.
    "documents_received": frozenset({"documents_requested", "interview_scheduled", "withdrawn"}),
    # A cancelled interview returns the application to waiting for a new date.
    "interview_scheduled": frozenset({"interview_scheduled", "documents_received", "in_service",
                                      "withdrawn"}),
    "in_service": frozenset({"followup_scheduled", "withdrawn"}),
    # A cancelled follow-up returns it to the service period until a new date is set.
    "followup_scheduled": frozenset({"followup_scheduled", "in_service", "completed"}),
    "completed": frozenset(),
    "declined": frozenset(),
    "withdrawn": frozenset(),
}

#: Where an application's history may begin.
INITIAL_STATES = frozenset({"received"})

STATES = frozenset(TRANSITIONS)
FINAL_STATES = frozenset(state for state, nexts in TRANSITIONS.items() if not nexts)

#: States that hold one of the capped places: queued, adopted and everything after adoption.
PLACE_STATES = frozenset(
    {"queued", "adopted", "documents_requested", "documents_received",
     "interview_scheduled", "in_service", "followup_scheduled", "completed"}
)


def can_move(from_state: str, to_state: str) -> bool:
    """True when the table allows ``from_state`` -> ``to_state``."""
    return to_state in TRANSITIONS.get(from_state, frozenset())


def start(
    session: Session, app: Application, state: str, *, actor: str, reason: str,
    raw_message_id: int | None = None,
) -> Transition:
    """Give a new application its first state and its first history row (from None)."""
    if state not in INITIAL_STATES:
        raise WorkflowError(f"an application cannot start in state {state!r}")
    if app.id is not None and _has_history(session, app.id):
        raise WorkflowError(f"application {app.reception_number} has already started")
    app.state = state
    session.add(app)
    session.flush()  # the Transition needs the application's id
    return _record(session, app, None, state, actor, reason, raw_message_id)


def move(
    session: Session, app: Application, to_state: str, *, actor: str, reason: str,
    raw_message_id: int | None = None,
) -> Transition:
    """Move to ``to_state`` if the table allows it; WorkflowError naming both states if not."""
    from_state = app.state
    if to_state not in STATES:
        raise WorkflowError(f"unknown state {to_state!r}")
    if not can_move(from_state, to_state):
        raise WorkflowError(
            f"application {app.reception_number}: cannot move from {from_state!r} to {to_state!r}"
        )
    app.state = to_state
    app.updated_at = datetime.now(timezone.utc)
    session.add(app)
    return _record(session, app, from_state, to_state, actor, reason, raw_message_id)


def history(session: Session, app: Application) -> list[Transition]:
    """The application's transitions, oldest first."""
    query = select(Transition).where(Transition.application_id == app.id).order_by(Transition.id)
    return list(session.exec(query))


def _has_history(session: Session, app_id: int) -> bool:
    query = select(Transition.id).where(Transition.application_id == app_id).limit(1)
    return session.exec(query).first() is not None


def _record(
    session: Session, app: Application, from_state: str | None, to_state: str,
    actor: str, reason: str, raw_message_id: int | None,
) -> Transition:
    row = Transition(
        application_id=app.id, from_state=from_state, to_state=to_state,
        actor=actor, reason=reason, raw_message_id=raw_message_id,
    )
    session.add(row)
    return row
