"""The outbox drained while the poll works: on opening day, receipts go out during the burst.

A cycle polls (every new mail stored, processed, its replies queued in the
outbox) and then drains the outbox. With one mail that order is right; with
the opening-day burst (bench/burst.py: thousands at once) the first company
would wait for its receipt until the last company's mail was processed, and
the PDF readers would sit idle while the replies are sent at the end.

``SendingAlongside`` drains the outbox in a thread for as long as the poll
runs: a drain, then another as soon as the last one sent something, or after
``PAUSE_SECONDS`` when nothing was due. The cycle's own drain after the poll
sends what is left; only one drain of this process runs at a time (the thread
has finished before that one starts). Rows are sent as ever (outbox.drain:
each row once, retries, the daemon's stop asked before each send); the
thread's counts are added to the cycle's, and an error that ended its drain
is raised again by ``close()``, where the cycle's own drain would have
raised it.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable

from sqlalchemy.engine import Engine

from mailbot import outbox
from mailbot.config import SmtpSettings
from mailbot.outbox import DrainResult

#: Seconds between two looks at the outbox while nothing is due.
PAUSE_SECONDS = 0.5


class SendingAlongside:
    """A context manager: the outbox drained in a thread while the ``with`` block runs."""

    def __init__(self, engine: Engine, smtp: SmtpSettings, stop: Callable[[], bool] | None = None):
        self._engine, self._smtp, self._stop = engine, smtp, stop
        self._done = threading.Event()
        self.result = DrainResult()
        self._error: Exception | None = None
        # In the caller's context: its log lines carry the same program=<id>.
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._run,),
                                        name="mailbot-sending", daemon=True)

    def __enter__(self) -> SendingAlongside:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close(raise_error=exc_info[0] is None)

    def close(self, raise_error: bool = True) -> None:
        """Let the send in hand finish, wait for the thread; its error raised here."""
        self._done.set()
        self._thread.join()
        if self._error is not None and raise_error:
            raise self._error

    def _stopping(self) -> bool:
        return self._done.is_set() or (self._stop is not None and self._stop())

    def _run(self) -> None:
        try:
            while not self._stopping():
                drained = outbox.send_pending(self._engine, self._smtp, stop=self._stopping)
                self._add(drained)
                if not (drained.sent or drained.retried or drained.failed):
                    self._done.wait(PAUSE_SECONDS)
        except Exception as exc:  # noqa: BLE001 - not swallowed: close() raises it in the cycle's thread
            self._error = exc

    def _add(self, drained: DrainResult) -> None:
        self.result.sent += drained.sent
        self.result.retried += drained.retried
        self.result.failed += drained.failed
        self.result.errors += drained.errors
