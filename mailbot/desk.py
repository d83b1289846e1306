"""The consultation desk (個別相談窓口): one hour, once per company per program year.

A mail whose PDF reads as the consultation form comes here (the pipeline's
"consultation" class). The request gets its own number
("{reception_prefix}-C-{year}-{nnnn}") and one of three answers:

1. the company already has a request this program year (received, scheduled
   or held): a polite answer that the desk is once per company, and a
   notice to staff, who may still decide otherwise;
2. fields to fix (rules/consultation.toml): the list of what to fix; a
   corrected form from the same company updates the same request;
3. otherwise: a receipt; staff then set the date with
   ``mailbot schedule TS-C-... --step consultation`` (mailbot.schedule).

"The same company": the same corporate number when both have one, else the
same company name once normalised (NFKC, ㈱/（株）= 株式会社, ㈲ = 有限会社,
no spaces, widths unified, case-folded). The program year is the fiscal year
(年度, April to March) in which ``[program] opens`` falls: a new year is a
new config, and its requests never count against the old one's.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from mailbot import admission, bounces, language, outbox, replies, staff
from mailbot.companies import company_key, corporate_digits
from mailbot.errors import WorkflowError
from mailbot.models import utcnow
from mailbot.outbox import OutgoingFile
from mailbot.ruleset import RuleSet
from mailbot.tables.desk import ConsultationRequest

if TYPE_CHECKING:
    from mailbot.pipeline import Handling

#: Requests that use the company's one consultation of the year.
USED_STATES = frozenset({"received", "scheduled", "done"})
#: state -> the states a request may move to.
MOVES: dict[str, frozenset[str]] = {
    "new": frozenset({"needs_fix", "received", "refused"}),  # only while its first mail is handled
    "needs_fix": frozenset({"needs_fix", "received", "refused"}),
    "received": frozenset({"scheduled", "refused"}),
    "scheduled": frozenset({"scheduled", "received", "done"}),
    "done": frozenset(),
    "refused": frozenset(),
}
REPEAT_NOTICE = "staff_desk_repeat"


def receive(handling: Handling, verdict) -> None:
    """One consultation-form mail: record the request and answer it (see the module docstring)."""
    reading, session = verdict.reading, handling.session
    year = program_year(handling.services.settings.program.opens)
    company = _company(reading.fields)
    earlier = find_used(session, year, **company)
    request = _pending_fix(handling, year, company) or _new_request(handling, year)
    problems = handling.services.rulesets["consultation"].check(reading)
    _record(request, reading, problems, handling)
    if earlier is not None:
        _refuse(handling, request, earlier)
    elif RuleSet.errors(problems):
        move(request, "needs_fix")
        _reply(handling, request, "desk_fix_request", problems=RuleSet.errors(problems))
    else:
        move(request, "received")
        _reply(handling, request, "desk_received")
    handling.raw.reason = f"{handling.raw.reason}; desk request {request.number}: {request.state}"


def program_year(opens: date) -> int:
    """The fiscal year (年度: April to March) the program opens in: 2024-05-27 -> 2024."""
    return opens.year if opens.month >= 4 else opens.year - 1


def find_used(session: Session, year: int, *, corporate_number: str | None,
              key: str | None) -> ConsultationRequest | None:
    """The company's request this program year that used its consultation, if any."""
    return _first_match(session, year, USED_STATES, corporate_number, key)


def move(request: ConsultationRequest, to_state: str) -> None:
    """Change a request's state if MOVES allows it; WorkflowError naming both states if not."""
    if to_state not in MOVES.get(request.state, frozenset()):
        raise WorkflowError(f"consultation request {request.number}: cannot move from "
                            f"{request.state!r} to {to_state!r}")
    request.state, request.updated_at = to_state, utcnow()


def listing(session: Session, state: str | None = None) -> list[ConsultationRequest]:
    """Requests, oldest first (in one state when given)."""
    query = select(ConsultationRequest).order_by(ConsultationRequest.id)
    if state:
        query = query.where(ConsultationRequest.state == state)
    return list(session.exec(query))


# --- the request ----------------------------------------------------------------------


def _company(fields: dict) -> dict[str, str | None]:
    return {"corporate_number": corporate_digits(_text(fields.get("corporate_number"))),
            "key": company_key(_text(fields.get("company_name")))}


def _first_match(session: Session, year: int, states, corporate_number: str | None,
                 key: str | None) -> ConsultationRequest | None:
    if not corporate_number and not key:
        return None  # nothing to recognise the company by
    query = (select(ConsultationRequest)
             .where(ConsultationRequest.program_year == year, ConsultationRequest.state.in_(states))
             .order_by(ConsultationRequest.id))
    for row in session.exec(query):
        if row.corporate_number and corporate_number:
            if row.corporate_number == corporate_number:
                return row
        elif key and row.company_key == key:
            return row
    return None


def _pending_fix(handling: Handling, year: int, company: dict) -> ConsultationRequest | None:
    """The request this corrected form belongs to: its number in the subject, else the company's."""
    found = re.search(r"[A-Z]+-C-\d{4}-\d{4,}", unicodedata.normalize("NFKC", handling.msg.subject))
    if found:
        row = handling.session.exec(select(ConsultationRequest).where(
            ConsultationRequest.number == found.group(0), ConsultationRequest.state == "needs_fix")).first()
        if row is not None:
            return row
    return _first_match(handling.session, year, {"needs_fix"}, company["corporate_number"], company["key"])


def _new_request(handling: Handling, year: int) -> ConsultationRequest:
    settings = handling.services.settings
    arrived = admission.as_utc(handling.raw.arrived_at).astimezone(admission.TOKYO)
    number = admission.next_reception_number(
        handling.session, f"{settings.program.reception_prefix}-C", arrived.year)
    request = ConsultationRequest(number=number, state="new", program_year=year,
                                  sender=handling.msg.sender, raw_message_id=handling.raw.id,
                                  thread_message_id=handling.msg.message_id)
    handling.session.add(request)
    return request


def _record(request: ConsultationRequest, reading, problems, handling: Handling) -> None:
    fields = reading.fields
    request.company_name = _text(fields.get("company_name")) or request.company_name
    request.company_key = company_key(request.company_name)
    request.corporate_number = corporate_digits(_text(fields.get("corporate_number"))) or request.corporate_number
    request.contact_name = _text(fields.get("contact_name")) or request.contact_name
    request.contact_email = _email(fields.get("contact_email")) or request.contact_email
    request.fields = dict(fields)
    request.problems = [p.as_json() for p in problems]
    request.raw_message_id, request.sender = handling.raw.id, handling.msg.sender
    handling.session.add(request)
    handling.session.flush()


def _refuse(handling: Handling, request: ConsultationRequest, earlier: ConsultationRequest) -> None:
    move(request, "refused")
    request.repeat_of = earlier.id
    _reply(handling, request, "desk_already_used", earlier=earlier,
           earlier_received=staff.when(earlier.created_at))
    staff.notify(handling.session, handling.services, REPEAT_NOTICE, topic=f"desk:{earlier.number}",
                 raw_message_id=handling.raw.id, request=request, earlier=earlier,
                 received=staff.when(handling.raw.arrived_at), earlier_received=staff.when(earlier.created_at))


def _text(value) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _email(value) -> str | None:
    """The form's e-mail when it is one address (a misread one must not break the reply)."""
    try:
        return outbox.unique_addresses([value])[0] if isinstance(value, str) else None
    except ValueError:
        return None


# --- mail -----------------------------------------------------------------------


def _reply(handling: Handling, request: ConsultationRequest, template: str, **context: Any) -> None:
    """Answer the request mail: to its sender (Reply-To) and the form's contact, in its thread."""
    msg = handling.msg
    addresses = [*(msg.reply_to or [msg.sender]), *([request.contact_email] if request.contact_email else [])]
    to = replies.within_reply_cap(handling, addresses)
    if not to:
        handling.raw.reason = f"{handling.raw.reason}; {template} withheld: reply cap or bounce hold"
        return
    mail = _render(handling.session, handling.services, request, template, sender_name=msg.sender_name,
                   **context)
    row = outbox.enqueue(
        handling.session, kind=template, to=to, subject=mail.subject, body=mail.body,
        from_address=handling.services.settings.smtp.from_address, in_reply_to=msg.message_id,
        references=[*msg.references, msg.message_id] if msg.message_id else list(msg.references),
        raw_message_id=handling.raw.id,
    )
    request.message_ids = [*request.message_ids, row.message_id]


def send(session: Session, services, request: ConsultationRequest, template: str, *,
         attachments: tuple[OutgoingFile, ...] | list[OutgoingFile] = (), **context: Any):
    """Mail about a request outside any reply (an invitation): like letters.send, for the desk."""
    addresses = list(dict.fromkeys(a for a in (request.contact_email, request.sender) if a))
    on_hold = bounces.held(session, addresses)
    to = [a for a in addresses if a.lower() not in on_hold]
    if not to:
        return None
    mail = _render(session, services, request, template, **context)
    chain = list(dict.fromkeys(m for m in [request.thread_message_id, *request.message_ids] if m))
    row = outbox.enqueue(
        session, kind=template, to=to, subject=mail.subject, body=mail.body,
        from_address=services.settings.smtp.from_address, in_reply_to=chain[-1] if chain else None,
        references=chain[:-1], automatic=False, attachments=attachments,
    )
    request.message_ids = [*request.message_ids, row.message_id]
    session.add(request)
    return row


def _render(session: Session, services, request: ConsultationRequest, template: str, **context: Any):
    """The template for a request: its number and names fill the greeting; the default language."""
    names = {"reception_number": request.number, "company_name": request.company_name,
             "contact_name": request.contact_name, "request": request}
    return services.renderer.render(template, language=language.of(session, services, None),
                                    program=services.settings.program, **{**names, **context})
