"""Steps 04 and 06 and the consultation desk: meetings staff set, with a calendar invitation.

Staff give a date and time (Asia/Tokyo), a place or a link, and the expert:

- ``schedule``: the interview (step 04, needs ``documents_received``), the
  follow-up (step 06, needs ``in_service``) or a desk consultation (a
  consultation request in ``received``). The applicant gets an invitation
  mail with an .ics file (METHOD:REQUEST). Scheduling the same step again is
  a reschedule: the same calendar UID with SEQUENCE + 1, so the applicant's
  calendar moves the event instead of adding a second one, and the mail says
  what changed.
- ``cancel``: METHOD:CANCEL with the same UID and a higher SEQUENCE; the
  application goes back to the state it was scheduled from when the
  workflow table allows it, else it stays and the history says why.
- ``complete``: after the follow-up, ``completed`` and the closing thank-you
  (which asks for the publicity cooperation the program page announces).

Everything happens in the caller's session: the state change, its history
row, the appointment and the mail in the outbox commit together or not at all.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, Timezone, vCalAddress
from sqlmodel import Session, select

from mailbot import desk, letters, staff, workflow
from mailbot.errors import WorkflowError
from mailbot.models import Application, OutboxMessage, utcnow
from mailbot.outbox import OutgoingFile
from mailbot.render import japanese_date, one_line
from mailbot.tables.desk import ConsultationRequest
from mailbot.tables.schedule import Appointment

TOKYO = ZoneInfo("Asia/Tokyo")
ICS_REQUEST = "text/calendar; method=REQUEST"
ICS_CANCEL = "text/calendar; method=CANCEL"


@dataclass(frozen=True)
class Step:
    """A kind of meeting: its name in mail, the state it needs and the state it leads to."""

    key: str
    name_ja: str
    needs: str
    leads_to: str
    for_desk: bool = False


STEPS = {
    "interview": Step("interview", "専門家との面談", "documents_received", "interview_scheduled"),
    "followup": Step("followup", "フォローアップ面談", "in_service", "followup_scheduled"),
    "consultation": Step("consultation", "個別相談", "received", "scheduled", for_desk=True),
}


@dataclass(frozen=True)
class Meeting:
    """What staff asked for: when (aware), how long, where (a place, a link or both), with whom."""

    starts_at: datetime
    minutes: int
    expert: str
    place: str | None = None
    url: str | None = None

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.minutes)


Owner = Application | ConsultationRequest


# --- what staff typed ---------------------------------------------------------------


def step_named(name: str) -> Step:
    """The step called ``name``; WorkflowError listing the known ones otherwise."""
    step = STEPS.get((name or "").strip().lower())
    if step is None:
        raise WorkflowError(f"unknown step {name!r}: use one of {', '.join(STEPS)}")
    return step


def parse_time(text: str) -> datetime:
    """"2026-12-03 14:00" (Asia/Tokyo unless an offset is written) -> an aware datetime."""
    cleaned = unicodedata.normalize("NFKC", text or "").strip().replace("/", "-")
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise WorkflowError(f"--at {text!r}: not a date and time such as \"2026-12-03 14:00\"") from None
    if len(cleaned) <= 10:  # a date alone: the meeting needs a time
        raise WorkflowError(f"--at {text!r}: give the time too, e.g. \"{cleaned} 14:00\"")
    return moment.replace(tzinfo=TOKYO) if moment.tzinfo is None else moment


def meeting(at: str, *, minutes: int, expert: str, place: str | None = None,
            url: str | None = None) -> Meeting:
    """Staff's words as a Meeting; WorkflowError for what cannot make an invitation."""
    place, url, expert = _clean(place), _clean(url), _clean(expert)
    if not place and not url:
        raise WorkflowError("give the place (--place) or the link of an online meeting (--url)")
    if url and not re.fullmatch(r"https?://\S+", url):
        raise WorkflowError(f"--url {url!r}: not a web address (https://...)")
    if not expert:
        raise WorkflowError("name the expert (--expert)")
    if minutes <= 0:
        raise WorkflowError(f"--minutes {minutes}: a meeting lasts at least one minute")
    return Meeting(parse_time(at), minutes, expert, place, url)


def _clean(value: str | None) -> str | None:
    return one_line(value) if value and value.strip() else None


# --- finding the application or desk request ------------------------------------------


def find(session: Session, ref: str) -> Owner:
    """An application (reception number or id) or a desk request (its number or C-<id>)."""
    text = unicodedata.normalize("NFKC", ref or "").strip().upper()
    row: Owner | None = None
    if re.fullmatch(r"C-\d+", text):
        row = session.get(ConsultationRequest, int(text[2:]))
    elif text.isdigit():
        row = session.get(Application, int(text))
    elif "-C-" in text:
        row = session.exec(select(ConsultationRequest).where(ConsultationRequest.number == text)).first()
    else:
        row = session.exec(select(Application).where(Application.reception_number == text)).first()
    if row is None:
        raise WorkflowError(f"no application or consultation request {ref!r}")
    return row


def number_of(owner: Owner) -> str:
    """The number applicants and staff know it by."""
    return owner.reception_number if isinstance(owner, Application) else owner.number


def appointments(session: Session, owner: Owner, step: str | None = None,
                 state: str | None = None) -> list[Appointment]:
    """The owner's appointments, oldest first (of one step, in one state, when given)."""
    column = Appointment.application_id if isinstance(owner, Application) else Appointment.consultation_id
    query = select(Appointment).where(column == owner.id).order_by(Appointment.id)
    if step:
        query = query.where(Appointment.step == step)
    if state:
        query = query.where(Appointment.state == state)
    return list(session.exec(query))


def active(session: Session, owner: Owner, step: str) -> Appointment | None:
    """The scheduled (not cancelled, not done) appointment of this step, if any."""
    found = appointments(session, owner, step, "scheduled")
    return found[-1] if found else None


# --- schedule, cancel, complete -------------------------------------------------------


def schedule(session: Session, services, ref: str, step_name: str, wanted: Meeting, *,
             actor: str, now: datetime | None = None) -> tuple[Appointment, OutboxMessage | None]:
    """Schedule (or reschedule) one meeting and queue the invitation; see the module docstring."""
    owner, step = find(session, ref), step_named(step_name)
    _check_fits(owner, step, wanted, services.settings.program, now or utcnow())
    current = active(session, owner, step.key)
    _check_state(owner, step, rescheduling=current is not None)
    before = _facts(current) if current else None
    appointment = _reschedule(current, wanted, actor) if current else _new(
        owner, step, wanted, actor, services.settings.smtp.from_address.rpartition("@")[2] or "mailbot")
    session.add(appointment)
    _close_earlier(session, owner, step)
    session.flush()
    after = _facts(appointment)["when"]
    _move(session, owner, step.leads_to, actor, f"{step.key} rescheduled from {before['when']} to {after}"
          if before else f"{step.key} on {after} with {wanted.expert}")
    mail = _send(session, services, owner, "invitation", appointment, step, ICS_REQUEST, previous=before)
    return appointment, mail


def cancel(session: Session, services, ref: str, step_name: str, *, actor: str,
           reason: str = "") -> tuple[Appointment, OutboxMessage | None]:
    """Cancel the step's scheduled meeting: METHOD:CANCEL, a mail, and the state back."""
    owner, step = find(session, ref), step_named(step_name)
    appointment = active(session, owner, step.key)
    if appointment is None:
        raise WorkflowError(f"{number_of(owner)}: no {step.key} is scheduled (state {owner.state!r})")
    if owner.state != step.leads_to:  # the meeting is behind it: the application has moved on
        raise WorkflowError(f"{number_of(owner)}: the {step.key} cannot be cancelled in state "
                            f"{owner.state!r} (only in {step.leads_to!r})")
    appointment.state, appointment.sequence = "cancelled", appointment.sequence + 1
    appointment.reason, appointment.updated_at = one_line(reason) or None, utcnow()
    session.add(appointment)
    _move_back(session, owner, appointment, actor, f"{step.key} on {_facts(appointment)['when']} cancelled"
               + (f": {appointment.reason}" if appointment.reason else ""))
    mail = _send(session, services, owner, "invitation_cancelled", appointment, step, ICS_CANCEL,
                 reason=appointment.reason)
    return appointment, mail


def complete(session: Session, services, ref: str, *, actor: str) -> tuple[Owner, OutboxMessage | None]:
    """After the follow-up: completed and the closing thank-you; a desk request: done (no mail)."""
    owner = find(session, ref)
    _move(session, owner, "done" if isinstance(owner, ConsultationRequest) else "completed", actor,
          "follow-up held; support completed")
    for appointment in appointments(session, owner, state="scheduled"):
        appointment.state, appointment.updated_at = "done", utcnow()
        session.add(appointment)
    if isinstance(owner, ConsultationRequest):
        return owner, None
    return owner, letters.send(session, services, owner, "completed")


# --- the checks ---------------------------------------------------------------------


def _check_fits(owner: Owner, step: Step, wanted: Meeting, program, now: datetime) -> None:
    """The right kind of owner, a time still to come, and within the support period."""
    if step.for_desk != isinstance(owner, ConsultationRequest):
        kinds = "a consultation request (TS-C-...)" if step.for_desk else "an application"
        raise WorkflowError(f"{number_of(owner)}: the {step.key} step is for {kinds}")
    if wanted.starts_at <= now:
        raise WorkflowError(f"{when(wanted.starts_at, wanted.minutes)} is in the past "
                            f"(now {staff.when(now)} Asia/Tokyo)")
    last_day = support_ends(program)
    if wanted.starts_at.astimezone(TOKYO).date() > last_day:
        raise WorkflowError(f"{when(wanted.starts_at, wanted.minutes)} is after the support period "
                            f"ends ({japanese_date(last_day)})")


def support_ends(program) -> date:
    """The last day of support: [program] support_ends, else the application period's close."""
    return program.support_ends or program.closes


def _check_state(owner: Owner, step: Step, *, rescheduling: bool) -> None:
    """A first invitation needs the step's state; a reschedule needs the scheduled state."""
    allowed = {step.leads_to} if rescheduling else {step.needs, step.leads_to}
    if owner.state not in allowed:
        raise WorkflowError(f"{number_of(owner)}: cannot schedule the {step.key} in state "
                            f"{owner.state!r} (it needs {step.needs!r})")


# --- the appointment --------------------------------------------------------------------


def _new(owner: Owner, step: Step, wanted: Meeting, actor: str, domain: str) -> Appointment:
    # A state already "scheduled" without an appointment (a cancel the table could not
    # undo) still returns to the state the step needs when cancelled again.
    # The UID must be globally unique (RFC 5545): random, under the program mailbox's domain.
    return Appointment(
        uid=f"{uuid.uuid4()}@{domain}", step=step.key, sequence=0, actor=actor,
        application_id=owner.id if isinstance(owner, Application) else None,
        consultation_id=owner.id if isinstance(owner, ConsultationRequest) else None,
        from_state=step.needs, **_when_where(wanted),
    )


def _close_earlier(session: Session, owner: Owner, step: Step) -> None:
    """Scheduling the follow-up means the interview took place: it is done, not pending."""
    for earlier in appointments(session, owner, state="scheduled"):
        if earlier.step != step.key:
            earlier.state, earlier.updated_at = "done", utcnow()
            session.add(earlier)


def _reschedule(appointment: Appointment, wanted: Meeting, actor: str) -> Appointment:
    for key, value in _when_where(wanted).items():
        setattr(appointment, key, value)
    appointment.sequence += 1
    appointment.actor, appointment.updated_at = actor, utcnow()
    return appointment


def _when_where(wanted: Meeting) -> dict:
    return {"starts_at": wanted.starts_at.astimezone(timezone.utc), "minutes": wanted.minutes,
            "place": wanted.place, "url": wanted.url, "expert": wanted.expert}


def _facts(appointment: Appointment) -> dict:
    """The appointment as the mail and the history say it (Tokyo time)."""
    starts = appointment.starts_at.astimezone(TOKYO)
    ends = starts + timedelta(minutes=appointment.minutes)
    return {"starts": starts, "start": f"{starts:%H:%M}", "end": f"{ends:%H:%M}",
            "minutes": appointment.minutes, "when": when(starts, appointment.minutes),
            "place": appointment.place, "url": appointment.url, "expert": appointment.expert}


def when(moment: datetime, minutes: int) -> str:
    """A meeting's time as staff and applicants read it: 2026年12月3日（木） 14:00〜15:00 (Tokyo)."""
    starts = moment.astimezone(TOKYO)
    ends = starts + timedelta(minutes=minutes)
    return f"{japanese_date(starts)} {starts:%H:%M}〜{ends:%H:%M}"


# --- the owner's state --------------------------------------------------------------


def _move(session: Session, owner: Owner, to_state: str, actor: str, reason: str) -> None:
    if isinstance(owner, Application):
        workflow.move(session, owner, to_state, actor=actor, reason=reason)
    else:
        desk.move(owner, to_state)
        session.add(owner)


def _move_back(session: Session, owner: Owner, appointment: Appointment, actor: str, reason: str) -> None:
    """Back to where the step was scheduled from when the table allows; else record it in place."""
    if isinstance(owner, ConsultationRequest) or workflow.can_move(owner.state, appointment.from_state):
        _move(session, owner, appointment.from_state, actor, reason)
        return
    _move(session, owner, owner.state, actor, f"{reason}; state kept: the workflow table has no move "
                                               f"back to {appointment.from_state!r}")


# --- the mail and its calendar file -------------------------------------------------------


def _send(session: Session, services, owner: Owner, template: str, appointment: Appointment,
          step: Step, content_type: str, **context) -> OutboxMessage | None:
    method = content_type.rpartition("=")[2]
    ics = calendar(appointment, services, owner, step, method=method)
    filename = "invite.ics" if method == "REQUEST" else "cancel.ics"
    files = [OutgoingFile(filename, content_type, ics)]
    facts = {"step_name": step.name_ja, "step": step.key, "meeting": _facts(appointment), **context}
    if isinstance(owner, Application):
        return letters.send(session, services, owner, template, attachments=files, **facts)
    return desk.send(session, services, owner, template, attachments=files, **facts)


def calendar(appointment: Appointment, services, owner: Owner, step: Step, *, method: str,
             now: datetime | None = None) -> bytes:
    """The .ics of one appointment: METHOD REQUEST or CANCEL, one VEVENT, the Tokyo VTIMEZONE."""
    cal = Calendar()
    cal.add("prodid", "-//JETRO//mailbot//JA")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    cal.add_component(Timezone.from_tzid("Asia/Tokyo"))
    cal.add_component(_event(appointment, services, owner, step, method, now or utcnow()))
    return cal.to_ical()


def _event(appointment: Appointment, services, owner: Owner, step: Step, method: str,
           now: datetime) -> Event:
    facts, program = _facts(appointment), services.settings.program
    event = Event()
    event.add("uid", appointment.uid)
    event.add("dtstamp", now.astimezone(timezone.utc))
    event.add("dtstart", facts["starts"])
    event.add("dtend", facts["starts"] + timedelta(minutes=appointment.minutes))
    event.add("sequence", appointment.sequence)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("summary", f"{program.name} {step.name_ja}（{number_of(owner)}）")
    event.add("location", appointment.place or appointment.url)
    if appointment.url:
        event.add("url", appointment.url)
    event.add("description", _description(appointment, owner, step))
    _add_people(event, services.settings.smtp, owner)
    return event


def _add_people(event: Event, smtp, owner: Owner) -> None:
    """ORGANIZER: the program mailbox; ATTENDEE: the applicant's contact.

    RSVP=FALSE: an accept/decline reply would land in the program mailbox as
    a mail for staff to read, for every invitation.
    """
    event.add("organizer", _address(smtp.from_address, smtp.from_name or "ジェトロ知的財産課"))
    attendee = _address(_contact_email(owner), _contact_name(owner))
    attendee.params.update({"ROLE": "REQ-PARTICIPANT", "PARTSTAT": "NEEDS-ACTION", "RSVP": "FALSE"})
    event.add("attendee", attendee)


def _description(appointment: Appointment, owner: Owner, step: Step) -> str:
    lines = [f"{step.name_ja}", f"受付番号：{number_of(owner)}", f"専門家：{appointment.expert}"]
    if appointment.place:
        lines.append(f"場所：{appointment.place}")
    if appointment.url:
        lines.append(f"オンライン会議：{appointment.url}")
    return "\n".join(lines)


def _address(email: str, name: str | None) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    if name:  # a parameter value: one line, no double quotes (they delimit it)
        address.params["CN"] = one_line(name).replace('"', "'")
    return address


def _contact_email(owner: Owner) -> str:
    if isinstance(owner, Application):
        return letters.recipients(owner)[0]
    return owner.contact_email or owner.sender


def _contact_name(owner: Owner) -> str | None:
    if isinstance(owner, Application):
        return (owner.fields or {}).get("contact_name") or owner.company_name
    return owner.contact_name or owner.company_name
