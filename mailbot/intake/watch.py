"""Push delivery: a thread that keeps one IMAP connection in IDLE and asks for a cycle on new mail.

The watcher never fetches or stores anything itself: on ``* n EXISTS`` (or
``RECENT``) it calls ``on_mail``, and the daemon runs its usual cycle (poll,
then outbox), so IDLE-triggered and scheduled polls are one and the same.

Servers drop idle connections silently (NAT timeouts, restarts), so:
- IDLE is re-issued every ``[imap] idle_renew_minutes`` (RFC 2177: before 29);
- a link that has been silent for ``silence_seconds``, or that reports end of
  file, is tested with DONE + NOOP, which fail on a dead connection;
- a failed connection is retried after 1 s, 2 s, 4 s … up to
  ``[imap] reconnect_max_seconds``, one log line per failed attempt;
- after each (re)connection one cycle is asked for, so mail that arrived while
  nobody was listening is picked up at once.
A server without the IDLE capability ends the watcher: the scheduled poll
alone carries on.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable

from mailbot.config import ImapSettings
from mailbot.errors import ImapError
from mailbot.intake.imap import Mailbox, has_new_mail

log = logging.getLogger(__name__)

#: How long one idle_check blocks: the longest a stop request waits.
CHECK_SECONDS = 1.0
#: Silence after which the link is tested (Dovecot says "Still here" every 2 minutes).
SILENCE_SECONDS = 300.0


class Watcher:
    """``Watcher(settings, on_mail).start()`` … ``.stop()``; counters for tests and logs."""

    def __init__(self, settings: ImapSettings, on_mail: Callable[[], None],
                 silence_seconds: float = SILENCE_SECONDS):
        self.settings = settings
        self.on_mail = on_mail
        self.silence_seconds = silence_seconds
        self.connections = 0  # successful logins
        self.failures = 0  # failed attempts (connect, login, or a dropped link)
        self.idles = 0  # IDLE commands issued
        self.supported: bool | None = None  # None until the server said
        self._stopping = threading.Event()
        # The thread runs in the context it was made in: what marks the caller's log lines
        # (whose program this is: mailbot.programs) marks the watcher's too.
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._run,), name="imap-idle", daemon=True)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to leave IDLE and log out; wait for it."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # --- the connection loop -------------------------------------------------

    def _run(self) -> None:
        attempt = 0  # failures in a row: the backoff is 2 ** (attempt - 1) s, capped
        while not self._stopping.is_set():
            connected = self.connections
            try:
                if not self._session():
                    return  # no IDLE on this server: polling only
            except ImapError as exc:
                self.failures += 1
                # A link that worked for a while and then dropped starts again from 1 s.
                attempt = 1 if self.connections > connected else attempt + 1
                delay = min(2.0 ** (attempt - 1), self.settings.reconnect_max_seconds)
                log.warning("IDLE watcher: attempt %d failed: %s; retrying in %.0f s", attempt, exc, delay)
                self._stopping.wait(delay)
        log.info("IDLE watcher stopped")

    def _session(self) -> bool:
        """One connection's life: select, IDLE until stopped; False if IDLE is not offered."""
        with Mailbox(self.settings) as box:
            box.select()
            if not box.can_idle():
                self.supported = False
                log.warning("IMAP server %s has no IDLE: polling only", self.settings.host)
                return False
            self.supported = True
            self.connections += 1
            log.info("IDLE watcher connected to %s folder %s", self.settings.host, self.settings.folder)
            self.on_mail()  # catch up on whatever arrived while nobody listened
            while not self._stopping.is_set():
                self._idle_once(box)
        return True

    def _idle_once(self, box: Mailbox) -> None:
        """One IDLE command: wait for mail until renewal, silence or stop; then DONE + NOOP."""
        box.idle_start()
        self.idles += 1
        renew_at = time.monotonic() + self.settings.idle_renew_minutes * 60
        heard_at = time.monotonic()
        while not self._stopping.is_set() and time.monotonic() < renew_at:
            wait = max(0.0, min(CHECK_SECONDS, renew_at - time.monotonic()))
            began = time.monotonic()
            responses = box.idle_wait(wait)
            if responses:
                heard_at = time.monotonic()
                if has_new_mail(responses):
                    self.on_mail()
            elif _woke_early(began, wait) or time.monotonic() - heard_at > self.silence_seconds:
                break  # end of file, or too quiet: DONE + NOOP below tell a dead link
        # A mail announced after the last check comes back with DONE's answer (or NOOP's), and
        # the next IDLE will not announce it again: left there, it would wait for the scheduled poll.
        if has_new_mail(box.idle_stop() + box.noop()):
            self.on_mail()


def _woke_early(began: float, wait: float) -> bool:
    """idle_check returns nothing at once when the socket hit end of file."""
    return wait >= 0.5 and time.monotonic() - began < wait / 2
