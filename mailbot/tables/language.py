"""The language an applicant asked staff to write to them in (a row only when it differs from the default)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from mailbot.models import UtcDateTime, utcnow


class MailLanguage(SQLModel, table=True):
    """One application's mail language, set by staff (``mailbot language ID en``)."""

    __tablename__ = "mail_language"

    application_id: int = Field(foreign_key="application.id", primary_key=True)
    language: str  # "ja" or "en" (mailbot.render.LANGUAGES)
    set_by: str
    set_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
