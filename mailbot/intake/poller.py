"""One poll of the program mailbox: store what is new, process it, then tidy the mailbox.

Order matters, and is the whole point of this module:
1. every message not yet recorded for (folder, UIDVALIDITY, UID) is stored
   raw in the database, with the server's INTERNALDATE, before anything else;
2. stored messages are processed in arrival order (INTERNALDATE, then UID),
   each in its own transaction;
3. only after that commit is the message moved to the processed (or
   quarantine) folder, and the move itself is recorded.
A crash between 2 and 3 leaves a processed message in the inbox: the next
poll sees its UID recorded, does not answer it again, and only moves it.
The \\Seen flag is never read or set: people may read the mailbox freely.

A poll costs what is new, not what the folder holds: the folder's UIDNEXT is
kept in FolderState once every message below it is stored, and a poll that
finds the same UIDVALIDITY and UIDNEXT (NOOP + STATUS on the kept
connection's selected folder) asks nothing more: no SEARCH, no FETCH. When
UIDNEXT moved, only ``UID n:*`` is searched.

Several instances on one PostgreSQL database take turns: a poll holds the
folder's lock (mailbot.instances) from the first IMAP command to the last
move; an instance that finds it held skips the poll. On SQLite there is no
lock: one instance per SQLite file.

Moves go by target folder in UID sets of MOVE_CHUNK (one MOVE per chunk, the
chunk's ``moved`` recorded in one transaction): one MOVE per mail cost Dovecot
time in proportion to the folder (12 of 29 minutes of a 10,000-mail burst).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32

from sqlalchemy import or_, update
from sqlmodel import Session, select

from mailbot import instances, logs, pipeline
from mailbot.db import raw_mail, reading, transaction
from mailbot.forms.pool import ReaderPool
from mailbot.intake import mime
from mailbot.intake.imap import FetchedMail, Mailbox
from mailbot.intake.message import InboundMessage
from mailbot.models import FolderState, RawMessage, utcnow
from mailbot.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollReport:
    """How many messages one poll stored, processed and moved.

    ``other_instance``: another instance held the folder's lock, so this one
    left the mailbox alone (all counts 0).
    """

    stored: int
    processed: int
    moved: int
    other_instance: bool = False


def poll(services: Services, box: Mailbox | None = None,
         stop: Callable[[], bool] | None = None) -> PollReport:
    """Store new mail, process everything pending, move what is done.

    ``box``: an open Mailbox to reuse (the daemon keeps one between cycles);
    without it the poll opens and closes its own connection.
    ``stop``: asked before each message; once true the rest wait for the next poll
    (the daemon is stopping: it finishes the message in hand, not the whole burst).
    On PostgreSQL, when another instance is polling this folder now, nothing is
    done and the report says ``other_instance`` (the daemon still sends its outbox).
    """
    with instances.polling(services.engine, services.settings.imap) as ours:
        if not ours:
            return PollReport(0, 0, 0, other_instance=True)
        if box is None:
            with Mailbox(services.settings.imap) as own:
                return poll_folder(services, own, stop)
        return poll_folder(services, box, stop)


def poll_folder(services: Services, box: Mailbox, stop: Callable[[], bool] | None = None) -> PollReport:
    """``poll`` once the folder is this instance's (its lock held, or SQLite)."""
    imap = services.settings.imap
    uidvalidity, _uidnext = box.sync()
    stored = store_new(services, box, uidvalidity)
    processed = process_pending(services, stop)
    moved = move_done(services, box, uidvalidity)
    record_poll(services, imap.folder, uidvalidity)
    logs.event(log, "poll", folder=imap.folder, stored=stored, processed=processed, moved=moved)
    return PollReport(stored, processed, moved)


def store_new(services: Services, box: Mailbox, uidvalidity: int) -> int:
    """Fetch the UIDs the database has no record of and store each one raw.

    Only UIDs from the stored UIDNEXT up are asked for, and nothing at all when
    the folder's UIDNEXT has not moved. The new UIDNEXT is saved only after
    every message below it is stored: a crash half-way searches the same range
    again and skips what was already stored.
    """
    folder = services.settings.imap.folder
    start = _stored_uidnext(services, folder, uidvalidity)
    if start is not None and start == box.uidnext:
        return 0
    start = start or 1
    with Session(services.engine) as session:
        known = set(session.exec(select(RawMessage.uid).where(
            RawMessage.folder == folder, RawMessage.uidvalidity == uidvalidity,
            RawMessage.uid >= start)).all())
        renumbered = stored_under_other_uidvalidity(session, folder, uidvalidity)
    new = [uid for uid in box.uids(start) if uid not in known]
    fetched = set()
    for mail in box.fetch(new):
        _store(services, folder, mail, renumbered)
        fetched.add(mail.uid)
    if fetched == set(new):
        # A UID the server listed but did not hand over is asked for again next
        # time (if it was expunged meanwhile, the search no longer lists it).
        _save_uidnext(services, folder, uidvalidity, box.uidnext)
    return len(fetched)


def _stored_uidnext(services: Services, folder: str, uidvalidity: int) -> int | None:
    """The UIDNEXT below which everything is stored, if it belongs to this UIDVALIDITY."""
    with Session(services.engine) as session:
        state = session.get(FolderState, folder)
    if state is None or state.uidvalidity != uidvalidity:
        return None
    return state.uidnext


def _save_uidnext(services: Services, folder: str, uidvalidity: int, uidnext: int | None) -> None:
    # The UIDNEXT read (STATUS or SELECT) before the search: mail that arrived since
    # has a UID at or above it and is found again next time (then skipped as known).
    with transaction(services.engine) as session:
        state = session.get(FolderState, folder) or FolderState(folder=folder)
        state.uidvalidity, state.uidnext = uidvalidity, uidnext
        session.add(state)


def stored_under_other_uidvalidity(session: Session, folder: str, uidvalidity: int) -> bool:
    """Whether this folder has mail stored under another UIDVALIDITY (it was renumbered once).

    Nearly never: then no new mail can be a copy of stored mail, and storing
    it skips that search (two queries a mail; asked once a poll instead)."""
    other = or_(RawMessage.uidvalidity < uidvalidity, RawMessage.uidvalidity > uidvalidity)  # two index ranges
    return session.exec(select(RawMessage.id).where(RawMessage.folder == folder, other).limit(1)).first() is not None


def _store(services: Services, folder: str, mail: FetchedMail, renumbered: bool = True) -> None:
    """Store one fetched mail raw, as "duplicate" when it is a copy of mail stored before a
    renumbering (only searched for when ``renumbered``: see stored_under_other_uidvalidity)."""
    digest = hashlib.sha256(mail.raw).hexdigest()
    message_id = header_message_id(mail.raw)
    with transaction(services.engine) as session:
        seen = _same_mail_elsewhere(session, folder, mail, digest, message_id) if renumbered else None
        session.add(RawMessage(
            folder=folder, uidvalidity=mail.uidvalidity, uid=mail.uid, arrived_at=mail.arrived_at,
            size=len(mail.raw), sha256=digest, message_id=message_id, raw=mail.raw,
            status="duplicate" if seen else "new",
            reason=f"same mail as stored message {seen} (folder renumbered)" if seen else None,
        ))


def _same_mail_elsewhere(session: Session, folder: str, mail: FetchedMail, digest: str,
                         message_id: str | None) -> int | None:
    """A stored copy of this mail under another UIDVALIDITY: the server renumbered its folder.

    The same bytes, or (because a migration may rewrite Received and X-
    headers) the same Message-ID with the same body. Keep the copy, never
    answer it twice.
    """
    elsewhere = (RawMessage.folder == folder, RawMessage.uidvalidity != mail.uidvalidity)
    same_bytes = session.exec(select(RawMessage.id).where(*elsewhere, RawMessage.sha256 == digest)).first()
    if same_bytes is not None or message_id is None:
        return same_bytes
    body = body_digest(mail.raw)
    candidates = session.exec(select(RawMessage.id, RawMessage.raw).where(
        *elsewhere, RawMessage.message_id == message_id)).all()
    return next((raw_id for raw_id, raw in candidates if body_digest(raw) == body), None)


def header_message_id(raw: bytes) -> str | None:
    """The Message-ID as mime.py records it (the first <...>), read from the header block only."""
    value = BytesHeaderParser(policy=compat32).parsebytes(header_block(raw)).get("message-id")
    if value is None:
        return None
    text_value = str(value).strip()
    start, end = text_value.find("<"), text_value.find(">")
    if 0 <= start < end and " " not in text_value[start:end]:
        return text_value[start:end + 1]
    return text_value or None


def header_block(raw: bytes) -> bytes:
    """The bytes up to the first blank line: a 50 MB body is not copied to read one header
    (the header parser keeps the whole payload as text, ~10 times its size)."""
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    return raw[:min(ends) + 2] if ends else raw


def body_digest(raw: bytes) -> str:
    """sha256 of the bytes after the header block (line endings as LF: servers differ)."""
    _head, _blank, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    return hashlib.sha256(body).hexdigest()


def process_pending(services: Services, stop: Callable[[], bool] | None = None) -> int:
    """Process stored, unprocessed messages in arrival order: all of them, or until ``stop()``.

    One message at a time, each in its own transaction, as always; meanwhile
    the PDFs of the next few are read ahead by the reader pool (ReadAhead).
    """
    with Session(services.engine) as session:
        pending = session.exec(select(RawMessage.id, RawMessage.size).where(RawMessage.status == "new")
                               .order_by(RawMessage.arrived_at, RawMessage.uid)).all()
    ids = [raw_id for raw_id, _size in pending]
    ahead = ReadAhead(services, pending)
    done = 0
    try:
        for raw_id in ids:
            if stop is not None and stop():
                log.info("stopping: %d stored message(s) left for the next start", len(ids) - done)
                break
            ahead.up_to(done)
            pipeline.process(services, raw_id, ahead.parsed.pop(raw_id, None))
            ahead.finished(raw_id)
            done += 1
    finally:
        ahead.drop()
    return done


#: Messages whose PDFs are being read ahead, per reader process: enough that a
#: reader finishing one PDF always finds the next waiting.
READ_AHEAD_PER_WORKER = 2
#: Raw mail held parsed ahead at most: a few applications, never a pile of 50 MB mails
#: (a larger one is parsed in its turn only, as without reading ahead).
READ_AHEAD_BYTES = 32 * 1024 * 1024


class ReadAhead:
    """Hands the PDFs of the next pending messages to the reader pool before the pipeline asks.

    The pipeline still reads every PDF through services.read_form, which
    answers with the reading done ahead (a pure function of the bytes: the
    decision is the same) or reads it then; it gets the message as parsed
    here (``parsed``), not to parse it twice. A stand-in reader (tests) is not
    read ahead for.
    """

    def __init__(self, services: Services, pending: list[tuple[int, int]]):
        reader = services.read_form
        self.pool = reader if isinstance(reader, ReaderPool) else None
        self.services, self.pending = services, pending  # (id, raw size) in arrival order
        self.depth = READ_AHEAD_PER_WORKER * self.pool.size if self.pool is not None else 0
        self.next = 0  # index in pending of the first message not yet read ahead
        self.started: dict[int, list[Future]] = {}
        self.parsed: dict[int, InboundMessage] = {}
        self.held: dict[int, int] = {}  # raw sizes of the messages parsed ahead, not yet finished

    def up_to(self, index: int) -> None:
        """Message ``index`` (the one in hand) and the next ``depth`` are being read (within READ_AHEAD_BYTES)."""
        while self.pool is not None and self.next < min(len(self.pending), index + 1 + self.depth):
            raw_id, size = self.pending[self.next]
            if size <= READ_AHEAD_BYTES and sum(self.held.values()) + size > READ_AHEAD_BYTES:
                return  # the next one waits until those before it are done
            self.next += 1
            msg = parse_stored(self.services, raw_id) if size <= READ_AHEAD_BYTES else None
            if msg is not None:
                self.parsed[raw_id], self.held[raw_id] = msg, size
                self.started[raw_id] = self.pool.read_ahead(pdfs_to_read(msg))

    def finished(self, raw_id: int) -> None:
        """The message is done: what it did not ask for is dropped (junk, a form found earlier)."""
        self.held.pop(raw_id, None)
        if self.pool is not None:
            self.pool.forget(self.started.pop(raw_id, []))

    def drop(self) -> None:
        """Stopping (or done): nothing read ahead is kept for later."""
        for raw_id in list(self.started):
            self.finished(raw_id)
        self.parsed.clear()
        self.held.clear()


def parse_stored(services: Services, raw_id: int) -> InboundMessage | None:
    """The stored message parsed as the pipeline parses it; None if that fails (the pipeline will say why)."""
    with reading(services.engine) as session:
        raw = raw_mail(session, raw_id)
    try:
        return mime.parse(raw)
    except Exception:  # noqa: BLE001  the pipeline quarantines this mail with its traceback
        return None  # reading ahead is only a head start: it must never stop the poll


def pdfs_to_read(msg: InboundMessage) -> list[bytes]:
    """The PDFs classify would read in this message: its attached (not inline) PDFs."""
    return [a.data for a in msg.attachments if not a.inline and a.is_pdf]


#: UIDs per MOVE: one command for a whole burst, yet a short UID set per command.
MOVE_CHUNK = 200


def move_done(services: Services, box: Mailbox, uidvalidity: int) -> int:
    """Move committed messages out of the inbox, MOVE_CHUNK at a time per target folder.

    Each chunk's moves are recorded in one transaction after its MOVE. A
    crash between the two leaves the chunk unrecorded: the next poll moves
    its UIDs again, which the server answers OK without moving anything (they
    are gone), and records them.
    """
    imap = services.settings.imap
    with Session(services.engine) as session:
        rows = session.exec(unmoved(imap.folder, uidvalidity)).all()
    if rows and box.sync()[0] != uidvalidity:
        return 0  # renumbered under our feet: these UIDs mean other mail now; never move by them
    for target, chunk in by_target(services, rows):
        box.move([uid for _raw_id, uid in chunk], target)
        record_moved(services, [raw_id for raw_id, _uid in chunk])
    return len(rows)


def by_target(services: Services, rows) -> list[tuple[str, list[tuple[int, int]]]]:
    """(target folder, [(raw id, uid) ...]) chunks of at most MOVE_CHUNK, quarantine first."""
    imap = services.settings.imap
    targets: dict[str, list[tuple[int, int]]] = {imap.quarantine_folder: [], imap.processed_folder: []}
    for raw_id, uid, status in rows:
        targets[imap.quarantine_folder if status == "quarantined" else imap.processed_folder].append((raw_id, uid))
    return [(target, pairs[start:start + MOVE_CHUNK])
            for target, pairs in targets.items() for start in range(0, len(pairs), MOVE_CHUNK)]


def record_moved(services: Services, raw_ids: list[int]) -> None:
    """One transaction: these messages have left the inbox."""
    with transaction(services.engine) as session:
        session.exec(update(RawMessage).where(RawMessage.id.in_(raw_ids)).values(moved=True))


def unmoved(folder: str, uidvalidity: int):
    """Processed or quarantined mail still in the folder (found by the index on raw_message.moved)."""
    return select(RawMessage.id, RawMessage.uid, RawMessage.status).where(
        RawMessage.folder == folder, RawMessage.uidvalidity == uidvalidity,
        RawMessage.status != "new", RawMessage.moved == False)  # noqa: E712


def record_poll(services: Services, folder: str, uidvalidity: int) -> None:
    """Remember the folder's UIDVALIDITY and when a poll last succeeded (the failures end)."""
    with transaction(services.engine) as session:
        state = session.get(FolderState, folder) or FolderState(folder=folder)
        state.uidvalidity, state.last_poll_at = uidvalidity, utcnow()
        state.failed_polls, state.poll_error = 0, None
        session.add(state)
