"""The database engine: SQLite by default (WAL), any SQLAlchemy URL in [database] url.

``make_engine`` also checks the schema (mailbot.schema.ensure_current): an
empty database is created at the head, an old one is refused until
`mailbot db upgrade`; ``open_engine`` is the same engine without the check,
for that upgrade.

SQLite transactions start with BEGIN IMMEDIATE, so two processes can never
both read the cap and both take the last place: the second waits for the
first to commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine
from sqlmodel import Session, create_engine

from mailbot import models, tables  # noqa: F401  (registers the tables)


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
    engine = create_engine(url, connect_args=_connect_args(url))
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine, foreign_keys=foreign_keys)
    return engine


def _connect_args(url: str) -> dict:
    return {"check_same_thread": False, "timeout": 30} if url.startswith("sqlite") else {}


def _tune_sqlite(engine: Engine, *, foreign_keys: bool) -> None:
    """WAL for concurrent readers; BEGIN IMMEDIATE so writers serialise at the start."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


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
