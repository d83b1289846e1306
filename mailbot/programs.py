"""Several programs in one deployment: whose work a log line is about.

One daemon serves every program of the config (``[[programs]]``), in turn.
While it works for one, :func:`working_on` marks the thread, and the
:class:`ProgramField` filter puts ``program=<id>`` among the fields of every
record logged meanwhile — the pipeline's ``processed`` line included — without
each module passing the id down. ``label_log_lines`` puts that filter on the
root logger's handlers (the ones :func:`mailbot.logs.configure` installs, and
any a test adds).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from mailbot.logs import FIELDS

#: The id of the program whose work runs in this thread (None: the daemon's own work).
_current: ContextVar[str | None] = ContextVar("mailbot_program", default=None)


@contextmanager
def working_on(program_id: str) -> Iterator[None]:
    """Lines logged in this block (this thread) carry ``program=<program_id>``."""
    token = _current.set(program_id)
    try:
        yield
    finally:
        _current.reset(token)


def current() -> str | None:
    """The program being worked on in this thread, if any."""
    return _current.get()


class ProgramField(logging.Filter):
    """Adds ``program`` to a record's fields while a program's work runs (a field the
    caller gave itself is kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        program = _current.get()
        if program is not None:
            fields = dict(getattr(record, FIELDS, None) or {})
            setattr(record, FIELDS, {"program": program, **fields})
        return True


def label_log_lines(logger: logging.Logger | None = None) -> None:
    """Put one ProgramField on every handler of ``logger`` (the root logger) that has none."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(existing, ProgramField) for existing in handler.filters):
            handler.addFilter(ProgramField())
