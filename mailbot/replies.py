"""Answering the sender: render a template and put the mail in the outbox.

The reply goes to whoever sent the mail (Reply-To when given) and to the
form's contact e-mail, threads under the original (In-Reply-To, References)
and is written in the caller's transaction, so it exists exactly when the
state change that caused it does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailbot import outbox
from mailbot.models import Application

if TYPE_CHECKING:
    from mailbot.pipeline import Handling


def send(handling: Handling, template: str, *, app: Application | None = None, **context: Any) -> None:
    """Render ``template`` for this message (and application) and queue it."""
    settings = handling.services.settings
    mail = handling.services.renderer.render(
        template, app=app, program=settings.program, sender_name=handling.msg.sender_name, **context
    )
    msg = handling.msg
    references = [*msg.references, msg.message_id] if msg.message_id else list(msg.references)
    outbox.enqueue(
        handling.session,
        kind=template,
        to=recipients(handling, app),
        subject=mail.subject,
        body=mail.body,
        from_address=settings.smtp.from_address,
        in_reply_to=msg.message_id,
        references=references,
        application_id=app.id if app else None,
        raw_message_id=handling.raw.id,
    )


def recipients(handling: Handling, app: Application | None) -> list[str]:
    """The sender (its Reply-To if set) and the form's contact e-mail, once each."""
    addresses = list(handling.msg.reply_to) or [handling.msg.sender]
    if app is not None and app.contact_email:
        addresses.append(app.contact_email)
    return addresses


def no_pdf_reason(names: str) -> str:
    """Why a mail with attachments but no PDF is not an application."""
    return (
        f"添付ファイル（{names}）はPDF形式ではありませんでした。"
        "押印済みの申請書をPDFファイルとして添付し、再送してください。"
    )
