"""Bounces of our own replies: link them to the reply, stop mailing the address, tell staff.

A delivery-failure report (multipart/report, or a mailer daemon's plain
notice) quotes the headers of the mail that failed, so our Message-ID is in
it somewhere: that finds the outbox row. The recipients that failed
permanently (DSN ``Final-Recipient`` with a 5.x.x ``Status``; else every
recipient of that reply) are held: no automatic mail goes to them until staff
clear the hold. A temporary failure (4.x.x) holds nothing.

When an address becomes held, staff get one notice (``staff_bounce``) in the
same transaction: who failed, why, which reply, which application, and the
``mailbot held --release`` command. No notice when:
- the bounce is not about one of our mails (it stays filtered as automatic);
- the mail that bounced is itself a staff notice (a broken staff address
  would otherwise mail itself without end): recorded and held only;
- every failed address was already held (a second bounce, e.g. of an earlier
  reply still on its way): staff already know; recorded only.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from typing import TYPE_CHECKING

from sqlmodel import Session, select

from mailbot import staff
from mailbot.db import raw_mail
from mailbot.models import Application, HeldAddress, OutboxMessage, RawMessage
from mailbot.render import one_line

if TYPE_CHECKING:
    from mailbot.services import Services

log = logging.getLogger(__name__)

_MESSAGE_ID = re.compile(rb"<[^<>\s@]+@[^<>\s]+>")
_MESSAGE_ID_HEADER = re.compile(rb"^Message-ID:\s*(<[^<>\s@]+@[^<>\s]+>)", re.I | re.M)
_FINAL_RECIPIENT = re.compile(rb"^Final-Recipient:\s*rfc822;\s*<?([^\s>]+)>?", re.I | re.M)
_STATUS = re.compile(rb"^Status:\s*([245]\.\d{1,3}\.\d{1,3})", re.I | re.M)
_DIAGNOSTIC = re.compile(rb"^Diagnostic-Code:\s*(.*(?:\r?\n[ \t].*)*)", re.I | re.M)
_STATUS_TEXT = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
DIAGNOSTIC_MAX = 300  # characters of the remote server's explanation kept for staff


@dataclass(frozen=True)
class Failure:
    """One recipient a delivery report speaks of: the address, its DSN status, the server's words."""

    address: str  # lower-cased
    status: str | None = None  # "5.1.1"; None when the report gives none
    diagnostic: str | None = None

    @property
    def permanent(self) -> bool:
        """5.x.x, or no status at all (a plain "could not be delivered" notice)."""
        return self.status is None or self.status.startswith("5")


def handle(session: Session, raw: RawMessage, services: Services | None = None) -> str | None:
    """Hold the failed addresses of the reply this bounce is about, tell staff; a note, or None.

    Without ``services`` nothing is mailed (the hold is still recorded).
    """
    mail = raw_mail(session, raw.id)
    reply = _our_reply(session, mail)
    if reply is None:
        return None
    reports = failures(mail, reply.to_addrs)
    permanent = [f for f in reports if f.permanent]
    if not permanent:
        return f"temporary delivery failure of outbox {reply.id}; nothing held"
    already = held(session, [f.address for f in permanent])
    for failure in permanent:
        hold(session, failure.address, f"bounce of outbox {reply.id}", reply.id, raw.id)
    note = f"bounce of outbox {reply.id}; held {', '.join(dict.fromkeys(f.address for f in permanent))}"
    fresh = [f for f in permanent if f.address not in already]
    return f"{note}; {_tell_staff(session, services, raw, reply, fresh)}"


def _tell_staff(session: Session, services: Services | None, raw: RawMessage,
                reply: OutboxMessage, fresh: list[Failure]) -> str:
    """Queue the staff notice when one is due; say what was done, for the message's reason."""
    if staff.is_notice(reply):
        log.warning("message=%s: a staff notice (outbox %s) bounced; held, no notice about it",
                    raw.id, reply.id)
        return "a staff notice bounced: no notice about it (loop guard)"
    if not fresh:
        return "already held: no new staff notice"
    if services is None:
        return "staff not notified (no services given)"
    # No application_id on the notice: the application's thread is the applicant's mail
    # (reception follows it); a staff member answering the notice must not join it.
    notice = staff.notify(session, services, staff.BOUNCE, topic=f"bounce:{fresh[0].address}",
                          raw_message_id=raw.id, **_notice_context(session, raw, reply, fresh))
    return "staff notified" if notice is not None else "no staff address: not notified"


def _notice_context(session: Session, raw: RawMessage, reply: OutboxMessage,
                    fresh: list[Failure]) -> dict:
    """What the staff_bounce template shows (every key always given: StrictUndefined)."""
    app = session.get(Application, reply.application_id) if reply.application_id else None
    return {
        "failures": fresh,
        "reply": reply,
        "reply_sent_at": staff.when(reply.sent_at or reply.created_at),
        "reception_number": app.reception_number if app else None,
        "company_name": (app.company_name or (app.fields or {}).get("company_name")) if app else None,
        "bounce_sender": raw.sender,
        "bounce_arrived_at": staff.when(raw.arrived_at),
        "raw_id": raw.id,
    }


# --- reading the report -----------------------------------------------------------


def failures(data: bytes, recipients: list[str] | tuple[str, ...] = ()) -> list[Failure]:
    """The recipients a delivery report names, with status and diagnostic.

    The structured DSN (message/delivery-status, RFC 3464) is read first. A
    mailer daemon that sends only text is read line by line; when it names no
    recipient, ``recipients`` (those of the mail that bounced) are the ones.
    """
    found = _dsn_failures(message_from_bytes(data, policy=policy.default))
    if found:
        return found
    named = [a.decode("ascii", "replace") for a in _FINAL_RECIPIENT.findall(data)] or list(recipients)
    diagnostic = _DIAGNOSTIC.search(data)
    text = _diagnostic(_after_type(diagnostic.group(1).decode("utf-8", "replace"))) if diagnostic else None
    status = _text_status(data)
    return [Failure(a.lower(), status, text) for a in dict.fromkeys(a.lower() for a in named)]


def _dsn_failures(message: Message) -> list[Failure]:
    found: list[Failure] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status" or not part.is_multipart():
            continue
        for block in part.get_payload():  # the per-message block, then one per recipient
            recipient = block.get("Final-Recipient") or block.get("Original-Recipient")
            address = _after_type(recipient).strip("<>").lower()
            if "@" in address:
                found.append(Failure(address, _status(block.get("Status")),
                                     _diagnostic(_after_type(block.get("Diagnostic-Code")))))
    return found


def _text_status(data: bytes) -> str | None:
    """Without the structure, a status cannot be tied to a recipient: a permanent one decides."""
    statuses = [s.decode() for s in _STATUS.findall(data)]
    return next((s for s in statuses if s.startswith("5")), statuses[0] if statuses else None)


def _after_type(value: object) -> str:
    """"rfc822; a@b.jp" -> "a@b.jp", "smtp; 550 ..." -> "550 ..." (the type prefix dropped)."""
    text = one_line(str(value or ""))
    return text.split(";", 1)[1].strip() if ";" in text else text


def _status(value: object) -> str | None:
    match = _STATUS_TEXT.search(str(value or ""))
    return match.group(0) if match else None


def _diagnostic(text: str) -> str | None:
    text = one_line(text)
    return (text[:DIAGNOSTIC_MAX] + "…" if len(text) > DIAGNOSTIC_MAX else text) or None


def _our_reply(session: Session, data: bytes) -> OutboxMessage | None:
    """The outbox row the report is about: quoted as Message-ID first, else named anywhere.

    A staff notice named anywhere wins: better one bounce left unexplained than
    a notice about a notice.
    """
    anywhere = _ids(_MESSAGE_ID.findall(data))
    if not anywhere:
        return None
    rows = {row.message_id: row for row in session.exec(
        select(OutboxMessage).where(OutboxMessage.message_id.in_(anywhere)))}
    notices = [row for row in rows.values() if staff.is_notice(row)]
    if notices:
        return notices[0]
    quoted = [mid for mid in _ids(_MESSAGE_ID_HEADER.findall(data)) if mid in rows]
    ordered = quoted + [mid for mid in anywhere if mid in rows]
    return rows[ordered[0]] if ordered else None


def _ids(found: list[bytes]) -> list[str]:
    return list(dict.fromkeys(m.decode("ascii", "replace") for m in found))


# --- the holds --------------------------------------------------------------------


def hold(session: Session, address: str, reason: str, outbox_id: int | None, raw_id: int | None) -> str:
    """Hold one address (again: the first reason stays)."""
    address = address.lower()
    if session.get(HeldAddress, address) is None:
        session.add(HeldAddress(address=address, reason=reason, outbox_id=outbox_id, raw_message_id=raw_id))
    return address


def held(session: Session, addresses: list[str]) -> set[str]:
    """Which of ``addresses`` (any case) are held, lower-cased."""
    lowered = [a.lower() for a in addresses]
    rows = session.exec(select(HeldAddress.address).where(HeldAddress.address.in_(lowered))).all()
    return set(rows)


def release(session: Session, address: str) -> bool:
    """Staff clear a hold (the address was fixed); False when it was not held."""
    row = session.get(HeldAddress, address.lower())
    if row is None:
        return False
    session.delete(row)
    return True


def listing(session: Session) -> list[HeldAddress]:
    """Every held address, oldest first."""
    return list(session.exec(select(HeldAddress).order_by(HeldAddress.held_at)).all())
