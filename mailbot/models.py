"""The database tables: raw mail, applications, their history, the outbox.

Every inbound message is a ``RawMessage`` row before anything else happens to
it; an ``Application`` is what staff track; ``Transition`` is its history
(every state change with who, when and why); ``OutboxMessage`` is a mail
waiting to be sent, written in the same transaction as the change that
caused it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, LargeBinary, UniqueConstraint, event
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from mailbot.companies import company_key, corporate_digits


def utcnow() -> datetime:
    """Now, timezone-aware UTC (stored as UTC everywhere)."""
    return datetime.now(timezone.utc)


class UtcDateTime(TypeDecorator):
    """A datetime stored as UTC and always read back timezone-aware.

    SQLite has no time zones and hands back naive datetimes; comparing those
    with aware ones raises, and treating them as local time would shift the
    queue. Naive values given to the database are taken to be UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        # Made aware before PostgreSQL sees it: it would read a naive value in the session's time zone.
        value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        # PostgreSQL answers in the session's time zone: the same instant, read back as UTC like SQLite's.
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _when(*, default_now: bool = False, index: bool = False):
    """A UTC datetime column; now by default when asked."""
    if default_now:
        return Field(default_factory=utcnow, sa_type=UtcDateTime, index=index)
    return Field(default=None, sa_type=UtcDateTime, index=index)


class RawMessage(SQLModel, table=True):
    """One inbound e-mail exactly as the server gave it, keyed by where it was.

    ``status``: "new" (stored, not yet processed), "processed", "quarantined"
    (processing failed: kept raw with ``error`` for staff). ``moved`` records
    that the mailbox was updated after the commit, so a crash between the two
    never processes the message twice.
    """

    __tablename__ = "raw_message"
    __table_args__ = (UniqueConstraint("folder", "uidvalidity", "uid"),)

    id: int | None = Field(default=None, primary_key=True)
    folder: str
    # IMAP UIDs and UIDVALIDITY go up to 2**32 - 1: past PostgreSQL's INTEGER (SQLite's holds 64 bits).
    uidvalidity: int = Field(sa_type=BigInteger)
    uid: int = Field(sa_type=BigInteger)
    arrived_at: datetime = Field(sa_type=UtcDateTime)  # the server's INTERNALDATE: the only clock that orders applications
    size: int
    sha256: str = Field(index=True)
    message_id: str | None = Field(default=None, index=True)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = Field(default="new", index=True)
    mail_class: str | None = None  # application / consultation / documents / question / automatic / junk (see intake.classify.CLASSES)
    reason: str | None = None  # why it was classified so, or what failed
    error: str | None = None
    sender: str | None = None
    subject: str | None = None
    stored_at: datetime = _when(default_now=True)
    processed_at: datetime | None = _when()
    moved: bool = Field(default=False, index=True)


class Application(SQLModel, table=True):
    """One company's application for one region, from first mail to completion.

    ``queued_at`` is the arrival time of the mail that made it complete; the
    queue is ordered by (queued_at, queued_uid). ``position`` is the place it
    was given when it queued (1 = first).
    """

    id: int | None = Field(default=None, primary_key=True)
    reception_number: str = Field(unique=True, index=True)
    state: str = Field(index=True)
    company_name: str | None = None
    corporate_number: str | None = None
    country: str | None = None
    contact_email: str | None = None
    sender: str
    hours_requested: int | None = None
    seal: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    fields: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    problems: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    raw_message_id: int | None = Field(default=None, foreign_key="raw_message.id")
    thread_message_id: str | None = Field(default=None, index=True)
    queued_at: datetime | None = _when(index=True)
    queued_uid: int | None = Field(default=None, sa_type=BigInteger)  # an IMAP UID: 32 bits unsigned
    position: int | None = None
    created_at: datetime = _when(default_now=True)
    updated_at: datetime = _when(default_now=True)
    #: company_name and corporate_number as compared (mailbot.companies), kept by _company_keys below.
    company_key: str | None = Field(default=None, index=True)
    corporate_digits: str | None = Field(default=None, index=True)


@event.listens_for(Application, "before_insert")
@event.listens_for(Application, "before_update")
def _company_keys(_mapper, _connection, app: Application) -> None:
    """Every write of an application refreshes its company keys: no caller can forget them."""
    app.company_key = company_key(app.company_name)
    app.corporate_digits = corporate_digits(app.corporate_number)


class Transition(SQLModel, table=True):
    """One state change of an application: from, to, who, when, why."""

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    from_state: str | None
    to_state: str
    actor: str  # "service" or a staff member's name
    reason: str
    at: datetime = _when(default_now=True)
    raw_message_id: int | None = Field(default=None, foreign_key="raw_message.id", index=True)


class OutboxMessage(SQLModel, table=True):
    """A mail to send. ``status``: "pending", "sent", "failed" (gave up; staff see it)."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    kind: str  # the template name, e.g. "receipt", "fix_request", "waitlisted"
    to_addrs: list[str] = Field(sa_column=Column(JSON, nullable=False))
    subject: str
    body: str
    #: An HTML alternative of ``body`` (the staff digest), or None for plain text only.
    html: str | None = None
    message_id: str  # our own Message-ID, fixed when queued so a retry resends the same mail
    in_reply_to: str | None = None
    references: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    automatic: bool = True  # a reply to an applicant's mail: carries the RFC 3834 headers
    application_id: int | None = Field(default=None, foreign_key="application.id", index=True)
    # Indexed: each processed message's log line reads back the mails it queued.
    raw_message_id: int | None = Field(default=None, foreign_key="raw_message.id", index=True)
    status: str = Field(default="pending", index=True)
    attempts: int = 0
    next_attempt_at: datetime = _when(default_now=True)
    last_error: str | None = None
    created_at: datetime = _when(default_now=True)
    sent_at: datetime | None = _when()


class ReplyRecipient(SQLModel, table=True):
    """One recipient of one automatic mail, lower-cased: what the loop guard counts.

    "How many automatic mails went to this address in the last three hours" is
    one indexed lookup here; on the outbox it was a text search of every
    reply of the window (an opening-day burst: each new reply searched all
    the earlier ones). Written by _record_recipients whenever an outbox row is.
    """

    __tablename__ = "reply_recipient"
    __table_args__ = (Index("ix_reply_recipient_address_created_at", "address", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    outbox_id: int = Field(foreign_key="outbox.id", index=True)
    address: str
    created_at: datetime = Field(sa_type=UtcDateTime)


@event.listens_for(OutboxMessage, "after_insert")
def _record_recipients(_mapper, connection, row: OutboxMessage) -> None:
    """Each automatic mail's recipients, in the same transaction as the mail itself."""
    if row.automatic:
        connection.execute(ReplyRecipient.__table__.insert(), [
            {"outbox_id": row.id, "address": address.lower(), "created_at": row.created_at}
            for address in row.to_addrs])


class OutboxAttachment(SQLModel, table=True):
    """A file sent with an outbox mail (step-03 documents, a calendar invitation)."""

    __tablename__ = "outbox_attachment"

    id: int | None = Field(default=None, primary_key=True)
    outbox_id: int = Field(foreign_key="outbox.id", index=True)
    filename: str
    content_type: str  # e.g. "application/pdf", "text/calendar; method=REQUEST"
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class FolderState(SQLModel, table=True):
    """The intake's memory of a folder: the UIDVALIDITY seen and the last good poll."""

    __tablename__ = "folder_state"

    folder: str = Field(primary_key=True)
    uidvalidity: int | None = Field(default=None, sa_type=BigInteger)  # IMAP: 32 bits unsigned
    #: The server's UIDNEXT when everything below it was stored: an unchanged
    #: UIDNEXT means nothing new, whatever the folder's size.
    uidnext: int | None = Field(default=None, sa_type=BigInteger)
    last_poll_at: datetime | None = _when()
    #: When staff were told that polling fails (None: no alert outstanding).
    alerted_at: datetime | None = _when()
    #: Poll attempts that failed since the last good one, and why the latest failed:
    #: `mailbot health` says unhealthy after a few, long before the alert's minutes.
    failed_polls: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    poll_error: str | None = None


class Counter(SQLModel, table=True):
    """Named sequences (e.g. reception numbers per year), advanced inside transactions."""

    name: str = Field(primary_key=True)
    value: int = 0


class HeldAddress(SQLModel, table=True):
    """An address our mail bounced from: no more mail goes to it until staff clear it."""

    __tablename__ = "held_address"

    address: str = Field(primary_key=True)  # lower-cased
    reason: str
    outbox_id: int | None = Field(default=None, foreign_key="outbox.id")
    raw_message_id: int | None = Field(default=None, foreign_key="raw_message.id")
    held_at: datetime = _when(default_now=True)
