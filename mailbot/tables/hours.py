"""Step 05's ledger: one row per consultation or training session an expert gave.

The cap (rules/regions.toml ``hours_per_country``) is per company and
region, so the ledger is summed over every application of the same company
for the same region (mailbot.hours); a row belongs to the application the
session was logged on.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Field, SQLModel

from mailbot.models import UtcDateTime, utcnow


class HoursSession(SQLModel, table=True):
    """One session: when it took place, its kind, its hours, and who recorded it when."""

    __tablename__ = "hours_session"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    held_on: date  # the day of the session (Asia/Tokyo), not the day it was recorded
    kind: str  # "consultation" (管理職向けコンサルテーション) or "training" (管理職・社員向け研修)
    hours: float  # a multiple of 0.5, so exact in binary floating point
    note: str | None = None
    recorded_by: str  # the staff member (--by)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
