"""The program mailbox over IMAP (imapclient): list, fetch and move messages.

:class:`Mailbox` is stateless about mail: it never decides what is new.
Callers compare (folder, UIDVALIDITY, UID) with the database, fetch what
they lack, and move a message only after their own transaction committed.
Fetching uses BODY.PEEK[] so that the \\Seen flag of staff's mail client is
never touched.

A Mailbox may stay open across polls (the daemon keeps one): the processed and
quarantine folders are checked once per connection, and ``sync()`` keeps the
folder selected, bringing it up to date with NOOP + STATUS instead of a new
SELECT (measured on Dovecot with 10,000 messages: SELECT, or STATUS from a
new session, 0.3-0.5 s; NOOP + STATUS on the selected folder < 1 ms). The
IDLE methods let a watcher wait for new mail on a connection of its own.
"""

from __future__ import annotations

import imaplib
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from mailbot.config import ImapSettings
from mailbot.errors import ImapError
from mailbot.intake.login import login, tls_context

BATCH = 100  # UIDs per FETCH: large enough to be fast, small enough to bound memory
# What imapclient and the socket layer raise (ssl.SSLError and timeouts are OSErrors).
_NETWORK_ERRORS = (IMAPClientError, imaplib.IMAP4.error, OSError)


@dataclass(frozen=True)
class FetchedMail:
    """One raw message as the server holds it."""

    uid: int
    uidvalidity: int
    arrived_at: datetime  # the server's INTERNALDATE, tz-aware UTC
    raw: bytes


class Mailbox:
    """A connection to one folder: ``with Mailbox(settings) as box: box.select() …``."""

    def __init__(self, settings: ImapSettings):
        self.settings = settings
        self._client: IMAPClient | None = None
        self._uidvalidity: int | None = None
        #: The folder's UIDNEXT at the last select() (None: the server did not say).
        self.uidnext: int | None = None
        self._delimiter_known = False
        self._delimiter_value: str | None = None
        self._folders_ready = False

    def __enter__(self) -> Mailbox:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._client is not None

    def open(self) -> None:
        """Connect and log in (a fresh connection: folders are checked again on select)."""
        self._client = self._connect()
        self._delimiter_known = self._folders_ready = False

    def close(self) -> None:
        """Log out; a connection the server already dropped is just closed."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except _NETWORK_ERRORS:
            # The server may already have dropped us; nothing is lost by not saying goodbye.
            _close_quietly(client)

    # --- connecting --------------------------------------------------------

    def _connect(self) -> IMAPClient:
        with self._failing("connect"):
            client = self._open()
        with self._failing(f"login as {self.settings.username}"):
            login(client, self.settings)
        return client

    def _open(self) -> IMAPClient:
        s = self.settings
        tls = s.security == "tls"
        # The system's CAs, or [imap] ca_file for a server a private CA signed.
        context = tls_context(s) if s.security != "none" else None
        client = IMAPClient(s.host, port=s.port, use_uid=True, ssl=tls,
                            ssl_context=context if tls else None, timeout=s.timeout_seconds)
        client.normalise_times = False  # keep INTERNALDATE's zone instead of local naive time
        _no_delay(client)
        if s.security == "starttls":
            client.starttls(context)
        return client

    @contextmanager
    def _failing(self, what: str, folder: str | None = None) -> Iterator[None]:
        """Turn library/socket errors into ImapError naming host, folder and the step."""
        try:
            yield
        except _NETWORK_ERRORS as exc:
            s = self.settings
            where = f"{s.host}:{s.port}" + (f" folder {folder!r}" if folder else "")
            raise ImapError(f"IMAP {where}: {what} failed: {exc}") from exc

    @property
    def client(self) -> IMAPClient:
        if self._client is None:
            raise ImapError("mailbox is not open: use it as a context manager")
        return self._client

    # --- folders -----------------------------------------------------------

    def select(self) -> int:
        """Select the configured folder; create processed/quarantine if missing; UIDVALIDITY.

        The folders are checked once per connection: a reused connection's
        poll costs one SELECT. ``uidnext`` is set from the same response.
        """
        s = self.settings
        if not self._folders_ready:
            for folder in (s.processed_folder, s.quarantine_folder):
                self._ensure_folder(folder)
            self._folders_ready = True
        with self._failing("select", s.folder):
            info = self.client.select_folder(self._server_name(s.folder))
            self._uidvalidity = int(info[b"UIDVALIDITY"])
        self.uidnext = int(info[b"UIDNEXT"]) if b"UIDNEXT" in info else self._status_uidnext()
        return self._uidvalidity

    def _status_uidnext(self) -> int | None:
        """UIDNEXT by STATUS, for servers that leave it out of SELECT (RFC 3501 says MUST)."""
        return self.status()[1]

    def status(self) -> tuple[int, int | None]:
        """(UIDVALIDITY, UIDNEXT) of the configured folder by STATUS; selects nothing.

        Also sets ``uidnext``. On the folder this connection has selected,
        STATUS answers from the session's own view (Dovecot says the UIDNEXT of
        the last sync, not the server's): a NOOP first brings that view up to date.
        """
        folder = self.settings.folder
        if self._uidvalidity is not None:
            self.noop()
        with self._failing("status", folder):
            found = self.client.folder_status(self._server_name(folder), [b"UIDVALIDITY", b"UIDNEXT"])
        value = found.get(b"UIDNEXT")
        self.uidnext = int(value) if value is not None else None
        return int(found[b"UIDVALIDITY"]), self.uidnext

    def sync(self) -> tuple[int, int | None]:
        """The folder selected and up to date: (UIDVALIDITY, UIDNEXT).

        SELECT the first time on this connection (or when the folder was
        renumbered), then NOOP + STATUS: a kept connection polls an unchanged
        folder in two short round trips whatever its size.
        """
        if self._uidvalidity is None:
            return self.select(), self.uidnext
        uidvalidity, uidnext = self.status()
        if uidvalidity != self._uidvalidity:
            return self.select(), self.uidnext
        return uidvalidity, uidnext

    def _ensure_folder(self, folder: str) -> None:
        name = self._server_name(folder)
        with self._failing("create folder", folder):
            if self.client.folder_exists(name):
                return
            try:
                self.client.create_folder(name)
            except IMAPClientError:
                # Another connection (the IDLE watcher, a second mailbot) may have created
                # it between our LIST and CREATE: only a folder still missing is an error.
                if not self.client.folder_exists(name):
                    raise

    def _server_name(self, folder: str) -> str:
        """Config names use "/" as the hierarchy separator; translate to the server's."""
        delimiter = self._delimiter()
        return folder.replace("/", delimiter) if delimiter else folder

    def _delimiter(self) -> str | None:
        """The server's hierarchy separator (LIST "" ""), asked once per connection."""
        if not self._delimiter_known:
            with self._failing("list hierarchy delimiter"):
                listing = self.client.list_folders(directory="", pattern="")
            raw = listing[0][1] if listing else None
            self._delimiter_value = raw.decode() if isinstance(raw, bytes) else raw
            self._delimiter_known = True
        return self._delimiter_value

    # --- messages ----------------------------------------------------------

    def uids(self, start: int = 1) -> list[int]:
        """The UIDs from ``start`` up in the selected folder, ascending.

        ``UID SEARCH UID n:*`` always matches the last message, even when its
        UID is below n (RFC 3501 reads ``*`` as the highest UID in use), so the
        answer is filtered.
        """
        criteria = "ALL" if start <= 1 else ["UID", f"{start}:*"]
        with self._failing("search", self.settings.folder):
            found = self.client.search(criteria)
        return sorted(uid for uid in found if uid >= start)

    def fetch(self, uids: Iterable[int]) -> Iterator[FetchedMail]:
        """Raw messages ordered by (INTERNALDATE, UID); UIDs gone from the server are skipped."""
        uidvalidity = self._selected()
        arrived = self._internaldates(list(uids))
        order = sorted(arrived, key=lambda uid: (arrived[uid], uid))
        for start in range(0, len(order), BATCH):
            batch = order[start:start + BATCH]
            with self._failing("fetch", self.settings.folder):
                bodies = self.client.fetch(batch, ["BODY.PEEK[]"])
            for uid in batch:
                if uid in bodies and b"BODY[]" in bodies[uid]:
                    yield FetchedMail(uid, uidvalidity, arrived[uid], bytes(bodies[uid][b"BODY[]"]))

    def _selected(self) -> int:
        if self._uidvalidity is None:
            raise ImapError("no folder selected: call select() first")
        return self._uidvalidity

    def _internaldates(self, uids: list[int]) -> dict[int, datetime]:
        """INTERNALDATE of each UID (a cheap first pass so that bodies come out in order)."""
        dates: dict[int, datetime] = {}
        for start in range(0, len(uids), BATCH * 10):
            with self._failing("fetch INTERNALDATE", self.settings.folder):
                found = self.client.fetch(uids[start:start + BATCH * 10], ["INTERNALDATE"])
            for uid, data in found.items():
                dates[uid] = _utc(data[b"INTERNALDATE"])
        return dates

    def move(self, uids: list[int], folder: str) -> None:
        """Move these messages in one command: UID MOVE with the UID set if the server
        has MOVE, else UID COPY + \\Deleted + UID EXPUNGE of the set.

        UIDs already gone (moved by an earlier try) are no error: the server moves what is left.
        """
        if not uids:
            return
        target = self._server_name(folder)
        with self._failing(f"move {len(uids)} UID(s) from {min(uids)} to {folder!r}", self.settings.folder):
            if self._can_move():
                self.client.move(uids, target)
            else:
                self.client.copy(uids, target)
                self.client.add_flags(uids, [b"\\Deleted"])
                self._expunge(uids)

    def _can_move(self) -> bool:
        return self.client.has_capability("MOVE")

    def _expunge(self, uids: list[int]) -> None:
        if self.client.has_capability("UIDPLUS"):
            self.client.uid_expunge(uids)
        else:
            # Without UIDPLUS only a plain EXPUNGE exists; it also removes other
            # \Deleted messages, which on the program mailbox only mailbot sets.
            self.client.expunge()


    # --- waiting for mail (IDLE, RFC 2177) -----------------------------------

    def can_idle(self) -> bool:
        """Whether the server offers IDLE (else the daemon only polls)."""
        with self._failing("capability"):
            return self.client.has_capability("IDLE")

    def idle_start(self) -> None:
        """Enter IDLE on the selected folder: the server now reports changes as they happen."""
        with self._failing("idle", self.settings.folder):
            self.client.idle()

    def idle_wait(self, seconds: float) -> list[tuple]:
        """What the server said within ``seconds`` ([] if nothing); ImapError on BYE."""
        with self._failing("idle", self.settings.folder):
            responses = self.client.idle_check(timeout=seconds)
        for response in responses:
            if len(response) > 0 and response[0] == b"BYE":
                raise ImapError(f"IMAP {self.settings.host}:{self.settings.port}: "
                                f"server closed the connection: {response[1:]!r}")
        return responses

    def idle_stop(self) -> list[tuple]:
        """Leave IDLE (DONE); what the server said since the last idle_wait. Waits for the
        server's tagged answer, so a dead link raises."""
        with self._failing("end idle", self.settings.folder):
            return self.client.idle_done()[1]

    def noop(self) -> list[tuple]:
        """A round trip proving the connection is alive (and resetting the server's timer);
        the changes the server reported with it."""
        with self._failing("noop", self.settings.folder):
            return self.client.noop()[1]


def has_new_mail(responses: Iterable[tuple]) -> bool:
    """Whether IDLE responses announce mail: ``* n EXISTS``, or ``* n RECENT`` with n > 0.

    Our own MOVE out of the folder is answered with ``* 1 EXPUNGE`` and
    ``* 0 RECENT``: that must not start another cycle.
    """
    return any(len(r) > 1 and (r[1] == b"EXISTS" or (r[1] == b"RECENT" and r[0] > 0))
               for r in responses)


def _no_delay(client: IMAPClient) -> None:
    """Disable Nagle: small IMAP commands otherwise wait ~40 ms for delayed ACKs (pymap)."""
    sock = client.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _close_quietly(client: IMAPClient) -> None:
    try:
        client.shutdown()
    except OSError:
        pass  # the socket is already gone: exactly what we wanted


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:  # servers always send a zone; be safe anyway
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
