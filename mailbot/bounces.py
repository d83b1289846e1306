"""Bounces of our own replies: link them to the reply, and stop mailing the address.

A delivery-failure report (multipart/report, or a mailer daemon's plain
notice) quotes the headers of the mail that failed, so our Message-ID is in
it somewhere: that finds the outbox row. The recipients that failed
permanently (DSN ``Final-Recipient`` with a 5.x.x ``Status``; else every
recipient of that reply) are held: no automatic mail goes to them until staff
clear the hold. A temporary failure (4.x.x) holds nothing.
"""

from __future__ import annotations

import re

from sqlmodel import Session, select

from mailbot.models import HeldAddress, OutboxMessage, RawMessage

_MESSAGE_ID = re.compile(rb"<[^<>\s@]+@[^<>\s]+>")
_FINAL_RECIPIENT = re.compile(rb"^Final-Recipient:\s*rfc822;\s*<?([^\s>]+)>?", re.I | re.M)
_STATUS = re.compile(rb"^Status:\s*([245])\.\d{1,3}\.\d{1,3}", re.I | re.M)


def handle(session: Session, raw: RawMessage) -> str | None:
    """Hold the failed addresses of the reply this bounce is about; a note for staff, or None."""
    reply = _our_reply(session, raw.raw)
    if reply is None:
        return None
    statuses = set(_STATUS.findall(raw.raw))
    if statuses and b"5" not in statuses:
        return f"temporary delivery failure of outbox {reply.id}; nothing held"
    failed = [a.decode("ascii", "replace").lower() for a in _FINAL_RECIPIENT.findall(raw.raw)]
    held = [hold(session, address, f"bounce of outbox {reply.id}", reply.id, raw.id)
            for address in (failed or [a.lower() for a in reply.to_addrs])]
    return f"bounce of outbox {reply.id}; held {', '.join(held)}"


def _our_reply(session: Session, data: bytes) -> OutboxMessage | None:
    ids = list(dict.fromkeys(m.decode("ascii", "replace") for m in _MESSAGE_ID.findall(data)))
    if not ids:
        return None
    return session.exec(select(OutboxMessage).where(OutboxMessage.message_id.in_(ids))).first()


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
