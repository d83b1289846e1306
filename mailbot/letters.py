"""Mail to an applicant that answers no mail of theirs: adoption, invitations, reminders.

Replies to an inbound mail go through :mod:`mailbot.replies`. Everything
else the program sends an applicant (a staff decision, an invitation, the
service's own reminders) comes here: it goes to the form's contact e-mail
and the address that applied, threads under the application's last mail
(In-Reply-To, References) so it lands in the same conversation, and is
written to the outbox in the caller's transaction, so it exists exactly when
the state change that caused it does. Addresses held after a bounce are
left out; with none left, nothing is queued and the caller is told (None).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import Session, select

from mailbot import bounces, language, outbox
from mailbot.models import Application, OutboxMessage
from mailbot.outbox import OutgoingFile
from mailbot.render import plain_address

log = logging.getLogger(__name__)


def send(session: Session, services, app: Application, template: str, *,
         attachments: tuple[OutgoingFile, ...] | list[OutgoingFile] = (), automatic: bool = False,
         **context: Any) -> OutboxMessage | None:
    """Render ``template`` for ``app`` in its language and queue it; None when nobody can get it."""
    to = reachable(session, app)
    if not to:
        log.warning("application=%s mail %s withheld: every address is held after a bounce",
                    app.reception_number, template)
        return None
    settings = services.settings
    mail = services.renderer.render(template, language=language.of(session, services, app),
                                    app=app, program=settings.program, **context)
    last, chain = thread(session, app)
    return outbox.enqueue(
        session, kind=template, to=to, subject=mail.subject, body=mail.body,
        from_address=settings.smtp.from_address, in_reply_to=last, references=chain,
        application_id=app.id, automatic=automatic, attachments=attachments,
    )


def recipients(app: Application) -> list[str]:
    """The form's contact e-mail first, then the address the application came from.

    An address that could not go into To: as it is (a space, "=?") is left out.
    """
    return list(dict.fromkeys(a for a in (app.contact_email, app.sender) if a and plain_address(a)))


def reachable(session: Session, app: Application) -> list[str]:
    """``recipients`` without the addresses our mail bounced from."""
    addresses = recipients(app)
    on_hold = bounces.held(session, addresses)
    return [a for a in addresses if a.lower() not in on_hold]


def thread(session: Session, app: Application) -> tuple[str | None, list[str]]:
    """The Message-ID to answer (our last mail to them, else their application) and References."""
    ours = session.exec(select(OutboxMessage.message_id).where(
        OutboxMessage.application_id == app.id).order_by(OutboxMessage.id)).all()
    chain = [m for m in [app.thread_message_id, *ours] if m]
    chain = list(dict.fromkeys(chain))
    return (chain[-1] if chain else None), chain[:-1]
