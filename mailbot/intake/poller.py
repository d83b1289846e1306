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
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from sqlmodel import Session, select

from mailbot import pipeline
from mailbot.db import transaction
from mailbot.intake.imap import FetchedMail, Mailbox
from mailbot.models import FolderState, RawMessage, utcnow
from mailbot.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollReport:
    """How many messages one poll stored, processed and moved."""

    stored: int
    processed: int
    moved: int


def poll(services: Services) -> PollReport:
    """Store new mail, process everything pending, move what is done."""
    imap = services.settings.imap
    with Mailbox(imap) as box:
        uidvalidity = box.select()
        stored = store_new(services, box, uidvalidity)
        processed = process_pending(services)
        moved = move_done(services, box, uidvalidity)
    record_poll(services, imap.folder, uidvalidity)
    log.info("poll folder=%s stored=%d processed=%d moved=%d", imap.folder, stored, processed, moved)
    return PollReport(stored, processed, moved)


def store_new(services: Services, box: Mailbox, uidvalidity: int) -> int:
    """Fetch the UIDs the database has no record of and store each one raw."""
    folder = services.settings.imap.folder
    with Session(services.engine) as session:
        known = set(session.exec(select(RawMessage.uid).where(
            RawMessage.folder == folder, RawMessage.uidvalidity == uidvalidity)).all())
    new = [uid for uid in box.uids() if uid not in known]
    for mail in box.fetch(new):
        _store(services, folder, mail)
    return len(new)


def _store(services: Services, folder: str, mail: FetchedMail) -> None:
    digest = hashlib.sha256(mail.raw).hexdigest()
    with transaction(services.engine) as session:
        # Same bytes already stored under an older UIDVALIDITY: the server renumbered
        # its folder. Keep the copy, never answer it twice.
        seen = session.exec(select(RawMessage.id).where(
            RawMessage.folder == folder, RawMessage.sha256 == digest,
            RawMessage.uidvalidity != mail.uidvalidity)).first()
        session.add(RawMessage(
            folder=folder, uidvalidity=mail.uidvalidity, uid=mail.uid, arrived_at=mail.arrived_at,
            size=len(mail.raw), sha256=digest, raw=mail.raw,
            status="duplicate" if seen else "new",
            reason=f"same content as stored message {seen}" if seen else None,
        ))


def process_pending(services: Services) -> int:
    """Process every stored, unprocessed message in arrival order."""
    with Session(services.engine) as session:
        ids = session.exec(select(RawMessage.id).where(RawMessage.status == "new").order_by(
            RawMessage.arrived_at, RawMessage.uid)).all()
    for raw_id in ids:
        pipeline.process(services, raw_id)
    return len(ids)


def move_done(services: Services, box: Mailbox, uidvalidity: int) -> int:
    """Move committed messages out of the inbox; record each move."""
    imap = services.settings.imap
    with Session(services.engine) as session:
        rows = session.exec(select(RawMessage.id, RawMessage.uid, RawMessage.status).where(
            RawMessage.folder == imap.folder, RawMessage.uidvalidity == uidvalidity,
            RawMessage.status != "new", RawMessage.moved == False)).all()  # noqa: E712
    for raw_id, uid, status in rows:
        box.move(uid, imap.quarantine_folder if status == "quarantined" else imap.processed_folder)
        with transaction(services.engine) as session:
            session.get(RawMessage, raw_id).moved = True
    return len(rows)


def record_poll(services: Services, folder: str, uidvalidity: int) -> None:
    """Remember the folder's UIDVALIDITY and when a poll last succeeded."""
    with transaction(services.engine) as session:
        state = session.get(FolderState, folder) or FolderState(folder=folder)
        state.uidvalidity, state.last_poll_at = uidvalidity, utcnow()
        session.add(state)
