"""Consultation-desk requests (個別相談窓口): one row per request mail, with its own number.

``state``: "received" (a complete request waiting for a date), "needs_fix"
(fields to fix; a corrected form from the same company updates this row),
"scheduled", "done", or "refused" (the company had already used the desk in
this program year: ``repeat_of`` names that earlier request).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from mailbot.models import UtcDateTime, utcnow


class ConsultationRequest(SQLModel, table=True):
    """One company's request for the one-hour desk consultation, as read from its form."""

    __tablename__ = "consultation_request"

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(unique=True, index=True)  # e.g. "TS-C-2026-0001"
    state: str = Field(index=True)
    program_year: int = Field(index=True)  # the fiscal year (年度) the program opens in
    company_name: str | None = None
    company_key: str | None = Field(default=None, index=True)  # the name normalised for matching
    corporate_number: str | None = Field(default=None, index=True)  # digits only
    contact_name: str | None = None
    contact_email: str | None = None
    sender: str
    fields: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    problems: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    raw_message_id: int | None = Field(default=None, foreign_key="raw_message.id")
    thread_message_id: str | None = None  # the request mail's Message-ID
    #: Our mails about this request (Message-IDs, oldest first): the thread later mail joins.
    message_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    repeat_of: int | None = Field(default=None, foreign_key="consultation_request.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
