"""Step-03 tables: the documents an applicant sent, and the reminders sent for them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from mailbot.models import UtcDateTime, utcnow


class ReceivedDocument(SQLModel, table=True):
    """One recognised step-03 document of an application, as it arrived.

    ``kind`` is "held_info_list" (保有情報リスト) or "self_check"
    (情報管理体制セルフチェックシート). The file's bytes stay in the raw
    message it came with (``raw_message_id``); ``sha256`` tells a resend of
    the same file from a new version.
    """

    __tablename__ = "received_document"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    kind: str
    filename: str
    content_type: str
    sha256: str = Field(index=True)
    size: int
    raw_message_id: int | None = Field(default=None, foreign_key="raw_message.id")
    received_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class DocumentReminder(SQLModel, table=True):
    """The one reminder sent for one request of the documents (the unique key keeps it one).

    ``requested_at`` is when the application entered documents_requested;
    ``outbox_id`` is None when every address of the applicant is held after a bounce.
    """

    __tablename__ = "document_reminder"
    __table_args__ = (UniqueConstraint("application_id", "requested_at"),)

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    requested_at: datetime = Field(sa_type=UtcDateTime)
    sent_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    outbox_id: int | None = Field(default=None, foreign_key="outbox.id")
