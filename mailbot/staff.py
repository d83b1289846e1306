"""Notices to staff: a bounce of one of our replies, the mailbox out of reach, and back.

A staff notice is a mail like every other: rendered from a ``staff_*``
template in templates/ja, written to the outbox in the caller's transaction
and sent by the outbox's sender. It goes to every address in ``[staff]
digest_to`` that is not held after a bounce. Its outbox ``kind`` is the
template name, so a notice is recognisable later (``is_notice``): a bounce of
a notice must never produce another notice, or a broken staff address would
mail itself forever.

Notices on one subject (one held address, one mailbox) share a thread: they
name the same made-up root Message-ID in In-Reply-To/References, so a mail
client groups them. That root is never the Message-ID of an outbox row, so a
bounce quoting it cannot be mistaken for a bounce of an applicant's reply.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from mailbot import outbox
from mailbot.errors import ConfigError
from mailbot.models import HeldAddress, OutboxMessage
from mailbot.render import japanese_date

if TYPE_CHECKING:
    from mailbot.services import Services

log = logging.getLogger(__name__)

TOKYO = ZoneInfo("Asia/Tokyo")
PREFIX = "staff_"  # every staff template's name, hence every notice's outbox kind, starts so
BOUNCE = "staff_bounce"
HEALTH_ALERT = "staff_health_alert"
HEALTH_RECOVERED = "staff_health_recovered"


def is_notice(row: OutboxMessage) -> bool:
    """Whether this outbox row is a staff notice (not a reply to an applicant)."""
    return row.kind.startswith(PREFIX)


def recipients(session: Session, services: Services) -> list[str]:
    """The staff list (``[staff] digest_to``) without the addresses held after a bounce."""
    staff = list(services.settings.staff.digest_to)
    if not staff:
        return []
    try:
        staff = outbox.unique_addresses(staff)
    except ValueError as exc:  # config.py does not check the list's addresses (yet)
        raise ConfigError(f"[staff] digest_to: {exc}") from None
    lowered = [a.lower() for a in staff]
    held = set(session.exec(select(HeldAddress.address).where(HeldAddress.address.in_(lowered))).all())
    return [a for a in staff if a.lower() not in held]


def notify(
    session: Session, services: Services, template: str, *, topic: str,
    in_reply_to: str | None = None, application_id: int | None = None,
    raw_message_id: int | None = None, **context: Any,
) -> OutboxMessage | None:
    """Render ``template`` and queue it to staff in ``session``; None (and a warning) when nobody can get it.

    ``topic`` names what the notice is about ("bounce:tanaka@example.jp",
    "health:INBOX"): notices on one topic thread together.
    """
    if not template.startswith(PREFIX):
        raise ValueError(f"not a staff template: {template!r}")
    to = recipients(session, services)
    if not to:
        log.warning("staff notice %s (%s) not mailed: no staff address in [staff] digest_to "
                    "(or every one is held after a bounce)", template, topic)
        return None
    settings = services.settings
    mail = services.renderer.render(template, program=settings.program, **context)
    root = thread_root(topic, settings.smtp.from_address)
    return outbox.enqueue(
        session, kind=template, to=to, subject=mail.subject, body=mail.body,
        from_address=settings.smtp.from_address, in_reply_to=in_reply_to or root,
        references=[root], application_id=application_id, raw_message_id=raw_message_id,
        # The RFC 3834 headers: a staff member's out-of-office must not answer a robot.
        automatic=True,
    )


def thread_root(topic: str, from_address: str) -> str:
    """The made-up Message-ID that every notice on ``topic`` refers to (never sent itself)."""
    digest = hashlib.sha256(topic.lower().encode()).hexdigest()[:20]
    domain = from_address.rpartition("@")[2] or "localhost"
    return f"<mailbot-staff.{digest}@{domain}>"


def when(moment: datetime | None) -> str | None:
    """A UTC moment as staff in Tokyo read it: 2026年11月26日（木）15:04."""
    if moment is None:
        return None
    if moment.tzinfo is None:  # stored as UTC; SQLite hands it back naive
        moment = moment.replace(tzinfo=timezone.utc)
    local = moment.astimezone(TOKYO)
    return f"{japanese_date(local)} {local:%H:%M}"


def duration(seconds: float) -> str:
    """A span as 1日2時間3分 (minutes rounded down; under a minute is 1分未満)."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "1分未満"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days}日" if days else "", f"{hours}時間" if hours else "", f"{minutes}分" if minutes else ""]
    return "".join(parts)
