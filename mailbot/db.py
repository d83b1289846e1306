"""The database engine: SQLite by default (WAL), PostgreSQL (psycopg 3) in production.

[database] url is any SQLAlchemy URL; the two mailbot is tested on are
``sqlite:///data/mailbot.db`` and ``postgresql+psycopg://user@host/mailbot``.
``make_engine`` also checks the schema (mailbot.schema.ensure_current): an
empty database is created at the head, an old one is refused until
`mailbot db upgrade`; ``open_engine`` is the same engine without the check,
for that upgrade.

Two processes must never both read the cap and both take the last place, nor
both take the same reception number. SQLite transactions start with BEGIN
IMMEDIATE, so every writer waits for the one before it to commit. PostgreSQL
lets writers run side by side (READ COMMITTED), so the few places that count
and then write ask for a named lock first: ``serialise`` (an advisory lock
held until the transaction ends; nothing on SQLite, which is serialised already).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event, select, text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.orm import defer
from sqlmodel import Session, create_engine

from mailbot import models, tables  # noqa: F401  (registers the tables)
from mailbot.models import RawMessage

#: A connection's execution option: its transactions only read (``reading``).
READ_ONLY = "mailbot_read_only"

#: A query option: load stored mails without their bytes (listings, state changes);
#: the bytes are read on purpose, with raw_mail, where they are needed.
WITHOUT_RAW = defer(RawMessage.raw)


def make_engine(url: str) -> Engine:
    """The engine on a database at this mailbot's schema (created if empty); SchemaError if old."""
    from mailbot import schema  # here, not above: schema opens its engines with open_engine

    engine = open_engine(url)
    schema.ensure_current(engine)
    return engine


def open_engine(url: str | URL, *, foreign_keys: bool = True) -> Engine:
    """The engine without a schema check; SQLite gets WAL and immediate transactions.

    ``foreign_keys=False`` is for migrations only: SQLite's batch mode drops
    and re-creates tables that other tables reference.
    """
    if isinstance(url, URL):
        url = url.render_as_string(hide_password=False)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **engine_options(url))
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine, foreign_keys=foreign_keys)
    elif engine.dialect.name == "postgresql":
        _tune_postgresql(engine)
    return engine


def engine_options(url: str) -> dict:
    """create_engine's keywords for this kind of database."""
    if url.startswith("sqlite"):
        # One engine serves the daemon's threads; a locked database is waited for, not an error.
        return {"connect_args": {"check_same_thread": False, "timeout": 30}}
    # A server database can restart under a running daemon: test a pooled connection before use.
    return {"pool_pre_ping": True}


def _tune_sqlite(engine: Engine, *, foreign_keys: bool) -> None:
    """WAL for concurrent readers; BEGIN IMMEDIATE so writers serialise at the start."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_conn.cursor()
        _switch_to_wal(cursor)
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # A transaction that only reads (``reading``) takes no write lock: in WAL mode a
        # reader neither waits for the writer nor holds the next one up.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


#: How long a first start waits for another process's switch of a new database to WAL.
WAL_SWITCH_SECONDS = 30


def _switch_to_wal(cursor: sqlite3.Cursor) -> None:
    """PRAGMA journal_mode=WAL, retried while another process switches the same new file.

    On a database that is not WAL yet, the switch answers "database is locked"
    at once when another connection is switching or writing it: SQLite does not
    wait busy_timeout for it. Two first starts at once (the daemon and a staff
    command) failed that way one time in five; once the file is WAL, the
    pragma reads the mode and never locks.
    """
    deadline = time.monotonic() + WAL_SWITCH_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _tune_postgresql(engine: Engine) -> None:
    """Text with NUL characters is stored with U+FFFD in their place.

    PostgreSQL's text cannot hold NUL (SQLite's can); mail text is the
    sender's, and a NUL in a subject or a form field must not turn into an
    error that loses the message. Raw mail is bytes and keeps every byte.
    """

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def _without_nul(_conn, _cursor, statement, parameters, _context, _executemany):
        if isinstance(parameters, dict):
            return statement, _nul_replaced(parameters)
        if isinstance(parameters, (list, tuple)) and parameters and isinstance(parameters[0], dict):
            return statement, [_nul_replaced(row) for row in parameters]
        return statement, parameters


def _nul_replaced(row: dict) -> dict:
    if not any(isinstance(value, str) and "\x00" in value for value in row.values()):
        return row  # nearly always: no copy
    return {key: value.replace("\x00", "\ufffd") if isinstance(value, str) else value
            for key, value in row.items()}


def serialise(session: Session | Connection, name: str) -> None:
    """Wait until no other transaction holds the lock ``name``, then hold it until this one ends.

    For work that reads and then writes on what it read (the cap, a counter,
    the schema of an empty database). SQLite needs nothing: BEGIN IMMEDIATE
    already lets one writer at a time. On PostgreSQL a transaction-level
    advisory lock: released by the commit or the rollback, never left behind
    by a process that dies.
    """
    connection = session.connection() if isinstance(session, Session) else session
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"mailbot:{name}"})


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work commits together at the end, or not at all."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def reading(engine: Engine) -> Iterator[Session]:
    """A session that only reads, and never commits.

    On SQLite its transaction begins deferred, not IMMEDIATE: it takes no
    write lock, so it neither waits for a writer (the outbox marking a mail
    sent while the poll works: each wait is at least the 1 ms of SQLite's
    first busy sleep) nor holds one up. Writing in it is a bug: SQLite may
    refuse the write (its snapshot is older than the last commit).
    """
    # The engine with the option (sharing its pool and events): no connection until a query.
    with Session(engine.execution_options(**{READ_ONLY: True})) as session:
        yield session


def raw_mail(session: Session, raw_id: int) -> bytes:
    """The stored bytes of one mail.

    PostgreSQL hands bytea over as hex text unless a query asks for binary
    results: a 50 MB mail arrived as 100 MB of text and cost 350 MB at its
    peak. Read in binary it costs its own size (and libpq's copy of it).
    """
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return connection.execute(select(RawMessage.raw).where(RawMessage.id == raw_id)).scalar_one()
    with connection.connection.driver_connection.cursor(binary=True) as cursor:
        cursor.execute("SELECT raw FROM raw_message WHERE id = %s", (raw_id,))
        return cursor.fetchone()[0]
