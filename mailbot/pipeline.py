"""One stored message's path: parse -> classify -> the handler of its class.

The six classes and their handlers (``HANDLERS``): an application goes to
reception (step 01); automatic mail is recorded, never answered (a bounce of
one of our replies holds the address); junk is recorded, never answered;
a consultation-desk form goes to the desk (desk.py), step-03 documents to
their application (documents.py); questions are recorded for staff, and
only a person who sent something other than a readable PDF is told
automatically to send one.

Whether a message belongs to an application's thread is looked up read-only
before the transaction and handed to classify, which stays database-free.

Reading the PDF (seconds, in a child process) happens before the database
transaction opens, so no write lock is held while a PDF is read; everything
the message causes (application, history, replies in the outbox, its own
status) then commits together, or not at all. A message that cannot be
processed is quarantined: kept raw with its error, moved aside, shown to staff.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlmodel import Session, select

from mailbot import bounces, desk, documents, logs, reception, replies
from mailbot.db import WITHOUT_RAW, raw_mail, reading, transaction
from mailbot.errors import MailbotError, MailError
from mailbot.intake import mime
from mailbot.intake.classify import Classification, classify
from mailbot.intake.message import InboundMessage
from mailbot.models import Application, OutboxMessage, RawMessage, Transition, utcnow
from mailbot.services import Services
from mailbot.staff import PREFIX as STAFF_PREFIX
from mailbot.tables.desk import ConsultationRequest

log = logging.getLogger(__name__)


@dataclass
class Handling:
    """One message being handled, inside its transaction."""

    services: Services
    session: Session
    raw: RawMessage
    msg: InboundMessage


def process(services: Services, raw_id: int, parsed: InboundMessage | None = None) -> str:
    """Process one stored message; return its class, or "quarantined".

    ``parsed``: the message as mime.parse made it from the stored bytes already
    (the poller's read-ahead), so it is not parsed twice.
    """
    try:
        msg = parsed or mime.parse(_raw_bytes(services, raw_id))
        verdict = classify(msg, services.triage, services.settings.smtp.from_address, services.read_form,
                           thread=thread_of(services, msg))
        _refuse_our_own_failures(verdict)
        with transaction(services.engine) as session:
            mail_class, fields = _handle(services, session, raw_id, msg, verdict)
    except MailbotError as exc:
        return quarantine(services, raw_id, exc)
    except Exception as exc:  # noqa: BLE001  a bug must not lose the mail or stop the others
        log.exception("processing failed", extra={logs.FIELDS: {"message": raw_id}})
        return quarantine(services, raw_id, exc)
    if fields is not None:  # logged once committed: a failed commit is a quarantine line instead
        logs.event(log, "processed", **fields)
    return mail_class


#: PDF errors that are the service's fault, not the applicant's: the mail is kept
#: for staff (quarantined) and can be processed again once the cause is fixed.
SERVICE_FAULTS = {"ocr_unavailable"}


def _refuse_our_own_failures(verdict: Classification) -> None:
    error = verdict.pdf_error
    if error is not None and error.code in SERVICE_FAULTS and verdict.mail_class != "application":
        raise MailError(f"cannot read the attached PDF here: {error.code}: {error.message}")


def _raw_bytes(services: Services, raw_id: int) -> bytes:
    with reading(services.engine) as session:
        return raw_mail(session, raw_id)


def thread_of(services: Services, msg: InboundMessage) -> str | None:
    """The reception number of the application whose thread this mail is in, or None.

    Read-only and outside the transaction; reception.py's own rule decides
    (reception number in the subject, or a reply to one of our mails).
    """
    with reading(services.engine) as session:
        # by_thread reads only services, session and msg from a Handling.
        app = reception.by_thread(Handling(services, session, None, msg))
        return app.reception_number if app is not None else None


def _handle(services, session, raw_id, msg: InboundMessage,
            verdict: Classification) -> tuple[str, dict | None]:
    """Run the class's handler; (the class, the fields of the "processed" line, None if not ours)."""
    # Parsed already: not its bytes again. Locked (PostgreSQL): a `mailbot reprocess`, or an instance
    # whose folder lock dropped mid-poll, waits here and then finds the mail no longer "new".
    raw = session.get(RawMessage, raw_id, options=[WITHOUT_RAW], with_for_update=True)
    if raw.status != "new":  # another run finished it while we were reading the PDF
        return raw.mail_class or raw.status, None
    raw.sender, raw.subject, raw.message_id = msg.sender, msg.subject, msg.message_id
    raw.mail_class, raw.reason = verdict.mail_class, verdict.reason
    # Marked processed now, with the rest: the handler's first query writes the row once (it was
    # written again at the end). It commits with what the handler does, or not at all.
    raw.status, raw.processed_at = "processed", utcnow()
    cut_off = services.settings.service.answer_from
    before_go_live = cut_off is not None and raw.arrived_at < cut_off
    if before_go_live:
        # Already in the mailbox when the service went live: keep it, answer nothing.
        raw.reason = f"{verdict.reason}; arrived before the go-live cut-off {cut_off.isoformat()}"
    else:
        HANDLERS[verdict.mail_class](Handling(services, session, raw, msg), verdict)
    return verdict.mail_class, processed_fields(session, raw, verdict, before_go_live)


def quarantine(services: Services, raw_id: int, exc: BaseException) -> str:
    """Keep the message raw with its error for staff; the mailbox moves it aside."""
    with transaction(services.engine) as session:
        raw = session.get(RawMessage, raw_id, options=[WITHOUT_RAW])
        raw.status, raw.processed_at = "quarantined", utcnow()
        raw.error = f"{type(exc).__name__}: {exc}"
        uid, message_id = raw.uid, raw.message_id
    # The error's type only: its text may quote the mail; `mailbot quarantined` shows it to staff.
    logs.event(log, "processed", logging.WARNING, message=raw_id, uid=uid, message_id=message_id,
               verdict="quarantined", error=type(exc).__name__)
    return "quarantined"


# --- the "processed" log line ------------------------------------------------------

#: The verdict of a message that touched no application or desk request, by class.
VERDICT_BY_CLASS = {"automatic": "ignored", "junk": "ignored"}


def processed_fields(session: Session, raw: RawMessage, verdict: Classification, before_go_live: bool) -> dict:
    """The fields of one message's "processed" line: ids, class, verdict, reception number, replies.

    Read back from what the handler wrote in this transaction (the mails it
    queued, the application or desk request it touched), so no handler has to
    report anything. Never a value of the form: only numbers, states, codes.
    """
    queued = session.exec(select(OutboxMessage.kind, Application).outerjoin(
        Application, Application.id == OutboxMessage.application_id).where(
        OutboxMessage.raw_message_id == raw.id).order_by(OutboxMessage.id)).all()
    kinds = [kind for kind, _ in queued]
    answered_about = next((app for _, app in queued if app is not None), None)
    record = answered_about or _application_changed(session, raw) or _request_of(session, raw)
    outcome = record.state if record is not None else VERDICT_BY_CLASS.get(verdict.mail_class, "for_staff")
    return {
        "message": raw.id, "uid": raw.uid, "message_id": raw.message_id, "class": verdict.mail_class,
        "kind": verdict.kind or None, "verdict": "before_go_live" if before_go_live else outcome,
        "reception_number": getattr(record, "reception_number", None) or getattr(record, "number", None),
        "reply": [k for k in kinds if not k.startswith(STAFF_PREFIX)] or None,
        "staff_notice": [k for k in kinds if k.startswith(STAFF_PREFIX)] or None,
        "problems": _problem_codes(record),
        "pdf_error": verdict.pdf_error.code if verdict.pdf_error is not None else None,
    }


def _application_changed(session: Session, raw: RawMessage) -> Application | None:
    """The application whose history this message changed, if any (when it queued no mail
    about one: that one is read with the mails' kinds, in the same query)."""
    app_id = session.exec(select(Transition.application_id).where(Transition.raw_message_id == raw.id)).first()
    return session.get(Application, app_id) if app_id is not None else None


def _request_of(session: Session, raw: RawMessage) -> ConsultationRequest | None:
    return session.exec(select(ConsultationRequest).where(ConsultationRequest.raw_message_id == raw.id)).first()


def _problem_codes(record) -> list[str] | None:
    """The codes of the errors to fix (e.g. seal_missing): rule names, never the values read."""
    if record is None or record.state != "needs_fix":
        return None
    return [p["code"] for p in record.problems if p.get("severity", "error") == "error"] or None


def _automatic(handling: Handling, verdict: Classification) -> None:
    """Out-of-office replies, bounces, lists, robots: recorded, never answered (no loops).

    A bounce of one of our replies holds the address it failed for and tells
    staff. Only a bounce: an out-of-office reply quotes our Message-ID too,
    and must not hold the applicant's address.
    """
    if verdict.kind != "bounce":
        return
    note = bounces.handle(handling.session, handling.raw, handling.services)
    if note:
        handling.raw.reason = f"{handling.raw.reason}; {note}"


def _junk(handling: Handling, verdict: Classification) -> None:
    """Spam and unsolicited ads: recorded, never answered (a reply confirms the address to spammers)."""


def _question(handling: Handling, verdict: Classification) -> None:
    """A person needs a person; the sender hears automatically only when a PDF was expected."""
    if verdict.pdf_error is not None:
        replies.send(handling, "pdf_unreadable", reason=verdict.pdf_error.message)
    elif verdict.wrong_files:
        names = "、".join(a.filename or "(名前なし)" for a in verdict.wrong_files)
        replies.send(handling, "pdf_unreadable", reason=replies.no_pdf_reason(names))


def _application(handling: Handling, verdict: Classification) -> None:
    reception.receive(handling, verdict.reading)


#: The handler of each class (mailbot.intake.classify.CLASSES); every class has one.
HANDLERS = {"application": _application, "consultation": desk.receive, "documents": documents.receive,
            "question": _question, "automatic": _automatic, "junk": _junk}
