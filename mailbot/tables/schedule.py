"""Appointments of steps 04 and 06 and of the consultation desk: one row per meeting.

A row is one appointment as the applicant's calendar knows it: its ``uid``
never changes, a reschedule raises ``sequence`` (RFC 5545), a cancellation
raises it once more and ends the row. Scheduling the same step again after
a cancellation makes a new row (a new calendar event).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from mailbot.models import UtcDateTime, utcnow


class Appointment(SQLModel, table=True):
    """An interview, follow-up or desk meeting: when, where, with whom, and its calendar identity.

    ``step``: "interview", "followup" or "consultation". It belongs to an
    application (steps 04/06) or to a consultation-desk request.
    ``state``: "scheduled", "cancelled" or "done". ``from_state`` is the
    state its owner was in before it was first scheduled, where a
    cancellation returns it.
    """

    id: int | None = Field(default=None, primary_key=True)
    uid: str = Field(unique=True, index=True)
    step: str = Field(index=True)
    application_id: int | None = Field(default=None, foreign_key="application.id", index=True)
    consultation_id: int | None = Field(default=None, foreign_key="consultation_request.id", index=True)
    starts_at: datetime = Field(sa_type=UtcDateTime)
    minutes: int
    place: str | None = None
    url: str | None = None
    expert: str
    sequence: int = 0
    state: str = Field(default="scheduled", index=True)
    from_state: str
    actor: str
    reason: str | None = None  # why it was cancelled
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
