"""db.reading: a session that only reads takes no write lock on SQLite, so a writer never holds it up."""

from __future__ import annotations

import threading
import time

import pytest
from sqlmodel import select

from mailbot import db
from mailbot.models import Counter


@pytest.fixture
def engine(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'mailbot.db'}")
    with db.transaction(engine) as session:
        session.add(Counter(name="applications", value=1))
    return engine


def hold_the_write_lock(engine, held: threading.Event, release: threading.Event) -> None:
    """A writer in the middle of its transaction (the outbox marking a mail sent, say)."""
    with db.transaction(engine) as session:
        session.get(Counter, "applications").value = 2
        session.flush()
        held.set()
        release.wait(10)


@pytest.mark.sqlite_only
def test_a_read_does_not_wait_for_a_writer_and_sees_the_last_commit(engine):
    held, release = threading.Event(), threading.Event()
    writer = threading.Thread(target=hold_the_write_lock, args=(engine, held, release))
    writer.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        with db.reading(engine) as session:
            value = session.exec(select(Counter.value)).one()
        waited = time.monotonic() - started
    finally:
        release.set()
        writer.join()
    # A transaction begun IMMEDIATE would have waited for the writer (up to the 30 s busy timeout).
    assert value == 1 and waited < 2
    with db.reading(engine) as session:
        assert session.exec(select(Counter.value)).one() == 2


def test_reading_begins_a_deferred_transaction_only_on_sqlite(engine):
    begun = []
    with db.reading(engine) as session:
        connection = session.connection()
        begun.append(connection.get_execution_options().get(db.READ_ONLY))
        assert session.exec(select(Counter.value)).one() == 1
    with db.transaction(engine) as session:
        begun.append(session.connection().get_execution_options().get(db.READ_ONLY))
    assert begun == [True, None]
