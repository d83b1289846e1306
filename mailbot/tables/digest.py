"""The staff digest's own memory: one row per digest period, sent or not.

The next digest's period starts where the last row's ``period_end`` is, so
nothing falls between two digests and nothing is told twice. ``fire_time``
is the schedule's fire time a row answered (None for ``mailbot digest
--send``); it is unique, so two daemons can never both send the 09:00 digest.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from mailbot.models import UtcDateTime, utcnow


class DigestRun(SQLModel, table=True):
    """One digest period and what became of it.

    ``outcome``: "sent" (queued in the outbox as ``outbox_id``), "empty"
    (nothing new and ``[staff] digest_when_empty = false``), "no_recipients"
    (no usable address in ``[staff] digest_to``), or "baseline" (the first
    call on an empty database: the start of the first period, nothing sent).
    """

    __tablename__ = "digest_run"

    id: int | None = Field(default=None, primary_key=True)
    period_start: datetime = Field(sa_type=UtcDateTime)
    period_end: datetime = Field(sa_type=UtcDateTime, index=True)
    fire_time: datetime | None = Field(default=None, sa_type=UtcDateTime, unique=True)
    outcome: str
    needs_person: int = 0
    outbox_id: int | None = Field(default=None, foreign_key="outbox.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
