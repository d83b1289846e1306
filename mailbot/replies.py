"""Answering the sender: render a template and put the mail in the outbox.

The reply goes to whoever sent the mail (Reply-To when given) and to the
form's contact e-mail, threads under the original (In-Reply-To, References)
and is written in the caller's transaction, so it exists exactly when the
state change that caused it does.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlmodel import Session, select

from mailbot import bounces, language, outbox
from mailbot.models import Application, ReplyRecipient, utcnow
from mailbot.render import plain_address

if TYPE_CHECKING:
    from mailbot.pipeline import Handling

log = logging.getLogger(__name__)


def send(handling: Handling, template: str, *, app: Application | None = None, **context: Any) -> None:
    """Render ``template`` for this message (and application) in its language and queue it."""
    settings = handling.services.settings
    mail = handling.services.renderer.render(
        template, language=language.of(handling.session, handling.services, app),
        app=app, program=settings.program, sender_name=handling.msg.sender_name, **context
    )
    msg = handling.msg
    to = within_reply_cap(handling, recipients(handling, app))
    if not to:
        handling.raw.reason = f"{handling.raw.reason}; {template} withheld: reply cap or bounce hold"
        log.warning("message=%s reply %s withheld: reply cap or bounce hold", handling.raw.id, template)
        return
    references = [*msg.references, msg.message_id] if msg.message_id else list(msg.references)
    outbox.enqueue(
        handling.session,
        kind=template,
        to=to,
        subject=mail.subject,
        body=mail.body,
        from_address=settings.smtp.from_address,
        in_reply_to=msg.message_id,
        references=references,
        application_id=app.id if app else None,
        raw_message_id=handling.raw.id,
    )


def recipients(handling: Handling, app: Application | None) -> list[str]:
    """The sender (its Reply-To if set) and the form's contact e-mail, once each.

    An address that could not go into To: as it is (a space, "=?") is left
    out rather than written: applicant text never shapes a header.
    """
    addresses = list(handling.msg.reply_to) or [handling.msg.sender]
    if app is not None and app.contact_email:
        addresses.append(app.contact_email)
    unusable = [a for a in addresses if not plain_address(a)]
    if unusable:
        log.warning("message=%s not answered at unusable addresses %r", handling.raw.id, unusable)
    return [a for a in addresses if plain_address(a)]


def within_reply_cap(handling: Handling, addresses: list[str]) -> list[str]:
    """The addresses not held after a bounce that have had fewer than the cap of replies.

    A robot that answers every mail (or a flood of mail from one address)
    would otherwise be answered without end: past the cap the mail is still
    recorded and shown to staff, it just gets no further automatic reply.
    """
    service = handling.services.settings.service
    counts = recent_replies(handling.session, addresses, service.reply_window_minutes)
    on_hold = bounces.held(handling.session, addresses)  # our mail bounced there before
    return [a for a in addresses
            if counts[a.lower()] < service.max_replies_per_recipient and a.lower() not in on_hold]


def recent_replies(session: Session, addresses: list[str], minutes: int) -> Counter:
    """Automatic mails per address (lower-cased) in the last ``minutes`` (models.ReplyRecipient)."""
    if not addresses:
        return Counter()
    since = utcnow() - timedelta(minutes=minutes)
    rows = session.exec(
        select(ReplyRecipient.address, func.count()).where(
            ReplyRecipient.address.in_({a.lower() for a in addresses}), ReplyRecipient.created_at >= since)
        .group_by(ReplyRecipient.address)).all()
    return Counter(dict(rows))


def no_pdf_reason(names: str) -> str:
    """Why a mail with attachments but no PDF is not an application."""
    return (
        f"添付ファイル（{names}）はPDF形式ではありませんでした。"
        "押印済みの申請書をPDFファイルとして添付し、再送してください。"
    )
