"""Several `mailbot run` processes on one PostgreSQL database: one poller per folder at a time.

Two instances (two machines, or a second start by mistake) that both polled one
folder would both store, process and move the same mail. So a poll first takes
the folder's lock: a PostgreSQL session-level advisory lock
(``pg_try_advisory_lock``) on a connection of its own, held while the poll
stores, processes and moves, released after. An instance that finds it taken
skips the poll (and still sends its outbox). When the holder dies, even by
kill -9, PostgreSQL ends its session and with it the lock: the next poll of
another instance takes over.

SQLite has no such lock and needs none: one instance per SQLite file (a second
process on the same file would poll alongside the first), which is what the
README says.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from mailbot import logs
from mailbot.config import ImapSettings

log = logging.getLogger(__name__)

#: Per lock key, whether this process held the lock at its last try: the log says
#: when that changes, not every cycle.
_last_outcome: dict[int, bool] = {}


def folder_key(imap: ImapSettings) -> int:
    """The folder's lock key: a stable signed 64-bit hash of IMAP host, username and folder.

    Stable across processes and machines (not Python's salted ``hash``), and
    signed because PostgreSQL's advisory lock keys are bigint.
    """
    name = "\0".join(("mailbot-folder", imap.host.lower(), imap.username, imap.folder))
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class FolderLock:
    """The lock ``key`` on a connection of its own: ``acquire()`` (True or False), ``release()``.

    Nothing is locked on SQLite: ``acquire()`` is always True there.
    """

    def __init__(self, engine: Engine, key: int):
        self.engine, self.key = engine, key
        self._connection: Connection | None = None

    @property
    def needed(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def acquire(self) -> bool:
        """Take the lock if no other session holds it; never waits."""
        if not self.needed:
            return True
        connection = self.engine.connect()
        try:
            held = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar()
            # A session lock outlives the transaction: end it, so that the connection
            # does not sit "idle in transaction" for the whole poll.
            connection.commit()
        except SQLAlchemyError:
            connection.invalidate()  # whatever it holds goes with its session
            connection.close()
            raise
        if not held:
            connection.close()
            return False
        self._connection = connection
        return True

    def release(self) -> None:
        """Give the lock back; a connection that cannot unlock is closed, which frees it too."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            connection.commit()
        except SQLAlchemyError:
            # Never hand a pooled connection that may still hold the lock to someone else.
            connection.invalidate()
        finally:
            connection.close()


@contextmanager
def polling(engine: Engine, imap: ImapSettings) -> Iterator[bool]:
    """``with polling(engine, imap) as mine:`` the folder's lock for the block, if free.

    ``mine`` is False when another instance polls the folder now: the block
    must then leave the mailbox alone. Logged when that changes.
    """
    lock = FolderLock(engine, folder_key(imap))
    held = lock.acquire()
    _say_when_changed(lock.key, held, imap.folder)
    try:
        yield held
    finally:
        if held:
            lock.release()


def _say_when_changed(key: int, held: bool, folder: str) -> None:
    before = _last_outcome.get(key)
    _last_outcome[key] = held
    if before is None and held or before == held:
        return  # the usual case, or no change: nothing to say
    if held:
        logs.event(log, "polling the folder again (the other instance let go)", logging.INFO, folder=folder)
    else:
        logs.event(log, "another instance is polling the folder: this one only sends its outbox",
                   logging.INFO, folder=folder)
