"""Step 01 (申請書提出): an application mail is received, checked, and queued or sent back.

The story of one application mail:
1. find its application: the same thread (reception number in the subject,
   or a reply to one of our mails), else the same company for the same
   region, else a new application with a new reception number;
2. outside the application period -> declined, the sender is told the dates;
3. already complete -> nothing changes; the sender gets the receipt again;
4. problems to fix -> needs_fix, with the exact list of what to fix;
5. complete -> admitted in arrival order: queued within the cap, else waitlisted;
   under ``[workflow] auto_adopt`` a queued one first in line is adopted at once
   (step 02) and gets one mail, the adoption mail that also confirms receipt.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

from sqlmodel import select

from mailbot import admission, adoption, replies, workflow
from mailbot.forms.reading import FormReading
from mailbot.models import Application, OutboxMessage, utcnow

if TYPE_CHECKING:
    from mailbot.pipeline import Handling

ACTOR = "service"
#: States in which an application is complete and waiting or served: a resend changes nothing.
COMPLETE = {"queued", "waitlisted", "adopted", "documents_requested", "documents_received",
            "interview_scheduled", "in_service", "followup_scheduled", "completed"}
#: States in which a new mail from the same company and region belongs to the same application.
ACTIVE = COMPLETE | {"received", "needs_fix"}


def receive(handling: Handling, reading: FormReading) -> None:
    """Handle one mail that carries the application form."""
    app = find_application(handling, reading) or new_application(handling, reading)
    program = handling.services.settings.program
    if app.state in COMPLETE:
        _answer_complete(handling, app)
    elif not admission.is_open(program, handling.raw.arrived_at):
        _close(handling, app)
    else:
        _judge(handling, app, reading)


def _judge(handling: Handling, app: Application, reading: FormReading) -> None:
    problems = handling.services.rules.check(reading)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        _record_reading(app, reading, problems)
        _move(handling, app, "needs_fix", f"{len(errors)} problem(s): " + ", ".join(p.code for p in errors))
        replies.send(handling, "fix_request", app=app, problems=errors)
        return
    place = admission.admit(
        handling.session, app, arrived_at=handling.raw.arrived_at, uid=handling.raw.uid,
        program=handling.services.settings.program,
    )
    # Recorded after admission, whose count needs none of it: recorded before, the count's
    # flush wrote the application once for the reading and then again for its place.
    _record_reading(app, reading, problems)
    if _adopted_at_once(handling, app):
        return
    template = "receipt" if place.state == "queued" else "waitlisted"
    replies.send(handling, template, app=app, position=place.position,
                 cap=handling.services.settings.program.cap, warnings=problems)


def _adopted_at_once(handling: Handling, app: Application) -> bool:
    """``[workflow] auto_adopt``: adopt a queued application that is next in line.

    One mail, not two: the adoption mail confirms the receipt and carries the
    documents, where a receipt saying "screening follows" would be contradicted
    by the adoption mail a second later.
    """
    if not adoption.can_auto_adopt(handling.session, handling.services, app):
        return False
    adoption.adopt(handling.session, handling.services, app, actor=ACTOR,
                   reason="auto_adopt: complete, first in the queue, within the cap",
                   with_receipt=True)
    return True


def _answer_complete(handling: Handling, app: Application) -> None:
    """A complete application sent again keeps its place; tell the sender where it stands."""
    template = "waitlisted" if app.state == "waitlisted" else "receipt"
    replies.send(handling, template, app=app, position=app.position,
                 cap=handling.services.settings.program.cap, warnings=[])


def _close(handling: Handling, app: Application) -> None:
    _move(handling, app, "declined", "outside the application period")
    replies.send(handling, "closed", app=app)


def _move(handling: Handling, app: Application, state: str, reason: str) -> None:
    workflow.move(handling.session, app, state, actor=ACTOR, reason=reason,
                  raw_message_id=handling.raw.id)


def _record_reading(app: Application, reading: FormReading, problems) -> None:
    fields = reading.fields
    app.company_name = _text(fields.get("company_name")) or app.company_name
    app.corporate_number = _text(fields.get("corporate_number")) or app.corporate_number
    app.country = _text(fields.get("country")) or app.country
    app.contact_email = _text(fields.get("contact_email")) or app.contact_email
    app.hours_requested = _hours(fields)
    app.fields = {key: value for key, value in fields.items()}
    app.seal = reading.seal.as_json()
    app.problems = [p.as_json() for p in problems]
    app.updated_at = utcnow()


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _hours(fields: dict) -> int | None:
    hours = [fields.get(k) for k in ("consultation_hours", "training_hours")]
    numbers = [h for h in hours if isinstance(h, int)]
    return sum(numbers) if numbers else None


def new_application(handling: Handling, reading: FormReading) -> Application:
    """A new application with its reception number, in state received."""
    settings = handling.services.settings
    year = handling.raw.arrived_at.year
    app = Application(
        reception_number=admission.next_reception_number(
            handling.session, settings.program.reception_prefix, year),
        state="received",
        sender=handling.msg.sender,
        raw_message_id=handling.raw.id,
        thread_message_id=handling.msg.message_id,
        # Given, though _record_reading sets them: left to their default factories, pydantic
        # reads the factory's signature at every construction (list's alone: ~165 µs).
        fields={}, problems=[],
    )
    _record_reading(app, reading, [])
    # start() adds and flushes it (the id, for the history row): flushed here first, the
    # row was inserted, then updated, and start() looked up a history it cannot have yet.
    workflow.start(handling.session, app, "received", actor=ACTOR,
                   reason="application mail received", raw_message_id=handling.raw.id)
    return app


def find_application(handling: Handling, reading: FormReading) -> Application | None:
    """The application this mail belongs to: by thread first, then by company and region."""
    return by_thread(handling) or _by_company(handling, reading)


def by_thread(handling: Handling) -> Application | None:
    session, msg = handling.session, handling.msg
    prefix = re.escape(handling.services.settings.program.reception_prefix)
    found = re.search(rf"{prefix}-\d{{4}}-\d{{4,}}", unicodedata.normalize("NFKC", msg.subject))
    if found:
        app = session.exec(select(Application).where(
            Application.reception_number == found.group(0))).first()
        if app is not None:
            return app
    ids = [m for m in (msg.in_reply_to, *msg.references) if m]
    if not ids:
        return None
    row = session.exec(select(OutboxMessage).where(
        OutboxMessage.message_id.in_(ids), OutboxMessage.application_id.is_not(None))).first()
    return session.get(Application, row.application_id) if row else None


def _by_company(handling: Handling, reading: FormReading) -> Application | None:
    fields = reading.fields
    return admission.find_duplicate(
        handling.session, corporate_number=_text(fields.get("corporate_number")),
        company_name=_text(fields.get("company_name")), country=_text(fields.get("country")),
        states=ACTIVE,
    )
