"""Mail that could not be processed: list it for staff, and run it again once the cause is fixed.

A quarantined message is kept raw in the database with its error (and was
moved to the mailbox's quarantine folder). ``reprocess`` puts it back on the
path from the stored bytes — the mailbox copy is not needed — and sends what
that produces.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from mailbot import outbox, pipeline
from mailbot.db import WITHOUT_RAW, transaction
from mailbot.errors import MailbotError
from mailbot.models import RawMessage
from mailbot.services import Services


def listing(services: Services) -> list[dict[str, Any]]:
    """The quarantined messages, oldest first: id, arrival, sender, subject, error."""
    with Session(services.engine) as session:
        rows = session.exec(select(RawMessage).options(WITHOUT_RAW).where(RawMessage.status == "quarantined").order_by(
            RawMessage.arrived_at)).all()
    return [{"id": r.id, "arrived_at": r.arrived_at.isoformat(), "sender": r.sender,
             "subject": r.subject, "error": r.error} for r in rows]


def reprocess(services: Services, raw_id: int) -> str:
    """Run one quarantined message through the path again; its new class (or "quarantined")."""
    with transaction(services.engine) as session:
        raw = session.get(RawMessage, raw_id, options=[WITHOUT_RAW])
        if raw is None:
            raise MailbotError(f"no stored message with id {raw_id}")
        if raw.status != "quarantined":
            raise MailbotError(f"message {raw_id} is {raw.status}, not quarantined: nothing to do")
        raw.status, raw.error = "new", None
    outcome = pipeline.process(services, raw_id)
    outbox.send_pending(services.engine, services.settings.smtp)
    return outcome
