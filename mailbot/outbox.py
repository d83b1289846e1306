"""The outbox: replies are rows written with the change that caused them, then sent.

``enqueue`` adds a row to the caller's session (it commits with the state
change, or not at all). ``drain`` sends the due rows over one SMTP
connection and marks each one sent in its own small transaction as soon as
the server has accepted it, so a crash can at worst resend the one message
in flight, never the whole batch. Failures: a temporary one (no connection,
4xx) is retried later with exponential backoff; a permanent one (5xx) or the
last allowed attempt marks the row "failed" for staff to see.

On PostgreSQL several instances may drain at once: there each row is claimed
(``SELECT ... FOR UPDATE SKIP LOCKED``), sent and marked in one transaction,
so no row is sent by two of them.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from zoneinfo import ZoneInfo

import aiosmtplib
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from mailbot.config import SmtpSettings
from mailbot.db import reading, transaction
from mailbot.errors import TransportError
from mailbot.models import OutboxAttachment, OutboxMessage
from mailbot.oauth import provider_for
from mailbot.render import one_line, plain_address

TOKYO = ZoneInfo("Asia/Tokyo")
#: An RFC 5322 msg-id: "<", printable ASCII without spaces or angle brackets, ">".
MSG_ID = re.compile(r"<[!-;=?-~]+>")
BACKOFF_START = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=1)


@dataclass
class DrainResult:
    """What one drain did: sent, put back for a later retry, given up on."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class _Failure(Exception):
    """Why one row was not sent; ``permanent`` when retrying cannot help."""

    def __init__(self, text: str, *, permanent: bool, connection_lost: bool = False):
        super().__init__(text)
        self.permanent = permanent
        self.connection_lost = connection_lost


@dataclass(frozen=True)
class OutgoingFile:
    """A file to attach: its name as the applicant will see it, its MIME type, its bytes.

    ``content_type`` may carry parameters: "text/calendar; method=REQUEST".
    """

    filename: str
    content_type: str
    data: bytes


# --- enqueue ----------------------------------------------------------------------


def enqueue(
    session: Session, *, kind: str, to: list[str], subject: str, body: str, from_address: str,
    in_reply_to: str | None = None, references: tuple[str, ...] | list[str] = (),
    application_id: int | None = None, raw_message_id: int | None = None, automatic: bool = True,
    attachments: tuple[OutgoingFile, ...] | list[OutgoingFile] = (), html: str | None = None,
) -> OutboxMessage:
    """Add a mail to send to the caller's session; its Message-ID is fixed here.

    ``html``: an HTML alternative of ``body`` (multipart/alternative, text first).
    """
    row = OutboxMessage(
        kind=kind, to_addrs=unique_addresses(to), subject=one_line(subject), body=body, html=html,
        message_id=make_msgid(domain=_domain(from_address)),
        in_reply_to=message_id_of(in_reply_to),
        references=_references(references, in_reply_to), automatic=automatic,
        application_id=application_id, raw_message_id=raw_message_id,
    )
    session.add(row)
    if attachments:
        session.flush()  # the files need the row's id
        for file in attachments:
            session.add(OutboxAttachment(outbox_id=row.id, filename=one_line(file.filename),
                                         content_type=one_line(file.content_type), data=file.data))
    return row


def attachments_of(session: Session, row_id: int) -> list[OutgoingFile]:
    """The files of one outbox mail, in the order they were added."""
    query = select(OutboxAttachment).where(OutboxAttachment.outbox_id == row_id).order_by(OutboxAttachment.id)
    return [OutgoingFile(a.filename, a.content_type, a.data) for a in session.exec(query)]


def unique_addresses(addresses: list[str]) -> list[str]:
    """Bare addresses, first spelling kept, duplicates dropped case-insensitively."""
    seen: dict[str, str] = {}
    for address in addresses:
        address = address.strip()
        if not plain_address(address):  # e.g. "0:@x.jp" would open an address group in To:
            raise ValueError(f"not a bare e-mail address: {address!r}")
        seen.setdefault(address.lower(), address)
    if not seen:
        raise ValueError("a mail needs at least one recipient")
    return list(seen.values())


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def message_id_of(text: str | None) -> str | None:
    """The Message-ID in ``text`` ("<id@host>"), or None when it holds none.

    Only a real msg-id goes into In-Reply-To and References: anything else a
    sender's mailer wrote there (Japanese text, an encoded word, a bare word)
    threads nowhere and would need encoding a mail client cannot read back.
    """
    found = MSG_ID.search(text or "")
    return found.group(0) if found else None


def _references(references, in_reply_to: str | None) -> list[str]:
    """Their References, then their Message-ID (RFC 5322 threading), each once; msg-ids only."""
    chain = [message_id_of(ref) for ref in (*references, in_reply_to)]
    return list(dict.fromkeys(ref for ref in chain if ref))


# --- the message --------------------------------------------------------------


def build_email(row: OutboxMessage, smtp: SmtpSettings,
                attachments: tuple[OutgoingFile, ...] | list[OutgoingFile] = ()) -> EmailMessage:
    """The row as a UTF-8 message with threading and (on automatic replies) RFC 3834 headers."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = Address(display_name=smtp.from_name, addr_spec=smtp.from_address)
    msg["To"] = ", ".join(row.to_addrs)
    _set_subject(msg, one_line(row.subject))
    msg["Date"] = format_datetime(_utc(row.created_at).astimezone(TOKYO))
    msg["Message-ID"] = row.message_id
    if row.in_reply_to:
        msg["In-Reply-To"] = row.in_reply_to
    if row.references:
        msg["References"] = " ".join(row.references)
    if row.automatic:
        # RFC 3834 and what Exchange and list servers honour: never answer this one.
        # A reply answers a mail; a staff notice or a reminder answers none.
        replied = row.raw_message_id is not None and not row.kind.startswith("staff_")
        msg["Auto-Submitted"] = "auto-replied" if replied else "auto-generated"
        msg["X-Auto-Response-Suppress"] = "All"
        msg["X-Loop"] = smtp.from_address
    cte = "7bit" if row.body.isascii() else "base64"  # no 8BITMIME needed anywhere
    msg.set_content(row.body, charset="utf-8", cte=cte)
    if row.html:
        # multipart/alternative: Outlook shows the HTML, plain readers the text.
        msg.add_alternative(row.html, subtype="html", charset="utf-8", cte="base64")
    for file in attachments:
        _attach(msg, file)
    return msg


#: UTF-8 bytes per encoded word of a subject: "Subject: =?utf-8?b?" + 56 base64 characters
#: + "?=" is 77, within the 78 of a line; a continuation line (" " first) is shorter.
SUBJECT_WORD_BYTES = 42


def _set_subject(msg: EmailMessage, subject: str) -> None:
    """The Subject, a Japanese one written as base64 encoded words, one line each.

    Left to the email package, a Japanese subject is folded by shrinking each
    encoded word one character at a time, every try encoded anew: ~1.2 ms of
    the ~2.8 a reply takes to build and write out. It reads the same once
    decoded (``subject`` has been through render.one_line: no "=?" of its own
    in it). An ASCII subject is the package's to fold, as before.
    """
    if subject.isascii():
        msg["Subject"] = subject
        return
    msg.set_raw("Subject", "\n ".join(
        f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=" for chunk in _utf8_chunks(subject)))


def _utf8_chunks(text: str) -> list[bytes]:
    """``text`` in UTF-8 runs of at most SUBJECT_WORD_BYTES, never splitting a character (RFC 2047)."""
    chunks, current = [], b""
    for char in text:
        encoded = char.encode()
        if len(current) + len(encoded) > SUBJECT_WORD_BYTES:
            chunks.append(current)
            current = b""
        current += encoded
    return [*chunks, current]


def _attach(msg: EmailMessage, file: OutgoingFile) -> None:
    """One file; a non-ASCII name goes out RFC 2231-encoded (what Outlook and Gmail read)."""
    mime_type, _, rest = file.content_type.partition(";")
    maintype, _, subtype = mime_type.strip().partition("/")
    params = dict(part.strip().split("=", 1) for part in rest.split(";") if "=" in part)
    msg.add_attachment(file.data, maintype=maintype, subtype=subtype,
                       filename=file.filename, params=params)


def _utc(moment: datetime) -> datetime:
    """Aware UTC (SQLite gives stored datetimes back naive; they were stored as UTC)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def backoff(attempts: int) -> timedelta:
    """1 min, 2, 4, 8 … after the 1st, 2nd, 3rd, 4th … failure; never more than an hour."""
    return min(BACKOFF_START * 2 ** max(attempts - 1, 0), BACKOFF_MAX)


# --- drain ----------------------------------------------------------------------


async def drain(
    engine: Engine, smtp: SmtpSettings, *, now: datetime | None = None, limit: int | None = None,
    stop: Callable[[], bool] | None = None,
) -> DrainResult:
    """Send the due pending rows in id order over one connection; see the module docstring.

    ``stop``: asked before each row; once true the send in flight was the last
    (the rest stay pending for the next drain).
    """
    now = _utc(now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    if engine.dialect.name == "postgresql":
        return await _drain_claiming(engine, smtp, now, limit, stop)
    return await _drain_by_pages(engine, smtp, now, limit, stop)


async def _drain_by_pages(engine: Engine, smtp: SmtpSettings, now: datetime, limit: int | None,
                          stop: Callable[[], bool] | None) -> DrainResult:
    """SQLite: the due rows, DRAIN_PAGE at a time, over one connection opened for the first."""
    result, client, lost, after, handled, stopped = DrainResult(), None, None, 0, 0, False
    while not stopped and (limit is None or handled < limit):
        page = DRAIN_PAGE if limit is None else min(DRAIN_PAGE, limit - handled)
        due, with_files = _due(engine, now, page, after)
        if not due:
            break
        if client is None and lost is None:
            client, lost = await _open(smtp)
        for row in due:
            if stopped := (stop is not None and stop()):
                break
            lost = await _deliver(engine, client, row, smtp, now, result, lost, row.id in with_files)
            handled += 1
        after = due[-1].id
    if client is not None:
        await _quit(client)
    return result


def send_pending(engine: Engine, smtp: SmtpSettings, **kwargs) -> DrainResult:
    """``drain`` for callers without an event loop (the CLI, the scheduler's thread)."""
    return asyncio.run(drain(engine, smtp, **kwargs))


#: Due rows loaded at a time by the SQLite drain: an opening-day burst leaves thousands
#: pending at once, and 10,000 loaded together cost ~30 MB of the service's memory.
DRAIN_PAGE = 200


def _due(engine: Engine, now: datetime, limit: int, after: int) -> tuple[list[OutboxMessage], set[int]]:
    """The next ``limit`` due rows past id ``after`` in id order, and the ids of those that carry files.

    Most mail has no file: asking which do, once a page, spares each of them
    a transaction of its own that only finds none (~0.35 ms a mail)."""
    due = (OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now, OutboxMessage.id > after)
    query = select(OutboxMessage).where(*due).order_by(OutboxMessage.id).limit(limit)
    with reading(engine) as session:
        rows = list(session.exec(query))
        if not rows:
            return rows, set()
        with_files = select(OutboxAttachment.outbox_id).distinct().join(
            OutboxMessage, OutboxMessage.id == OutboxAttachment.outbox_id).where(
            *due, OutboxMessage.id <= rows[-1].id)
        return rows, set(session.exec(with_files))


async def _drain_claiming(engine: Engine, smtp: SmtpSettings, now: datetime, limit: int | None,
                          stop: Callable[[], bool] | None) -> DrainResult:
    """PostgreSQL, where several instances may drain at once: one transaction per row.

    It claims the next due row (FOR UPDATE SKIP LOCKED: a row another instance
    is sending is passed over, never waited for), sends it, records the outcome
    and commits. An instance that dies mid-send rolls back its claim: the row is
    pending again and another instance sends it (the same Message-ID: at worst
    the same mail twice, never a different one). SQLite keeps ``drain``'s way:
    a write transaction held over an SMTP send would stop every other writer.
    """
    result, client, lost, after, handled = DrainResult(), None, None, 0, 0
    while (limit is None or handled < limit) and not (stop is not None and stop()):
        with transaction(engine) as session:
            row = _claim(session, now, after)
            if row is None:
                break
            if client is None and lost is None:
                client, lost = await _open(smtp)
            outcome = await _attempt(client, row, attachments_of(session, row.id), smtp, lost)
            lost = _record(row, outcome, smtp, now, result)
        after, handled = row.id, handled + 1
    if client is not None:
        await _quit(client)
    return result


def _claim(session: Session, now: datetime, after: int) -> OutboxMessage | None:
    """The first due row past ``after`` that no other transaction holds, locked until commit."""
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now,
               OutboxMessage.id > after)
        .order_by(OutboxMessage.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return session.exec(query).first()


async def _open(smtp: SmtpSettings) -> tuple[aiosmtplib.SMTP | None, _Failure | None]:
    """(client, None), or (None, why) when the server cannot be reached: the rows wait."""
    try:
        return await _connect(smtp), None
    except _Failure as exc:
        return None, exc


async def _connect(smtp: SmtpSettings) -> aiosmtplib.SMTP:
    """One connection (TLS, STARTTLS or plain; ``ca_file`` for a private CA) and a login
    when a username is set: the password, or XOAUTH2 with an OAuth2 access token."""
    client = aiosmtplib.SMTP(
        hostname=smtp.host, port=smtp.port, timeout=smtp.timeout_seconds,
        use_tls=smtp.security == "tls", start_tls=smtp.security == "starttls",
        cert_bundle=smtp.ca_file or None,
    )
    try:
        await client.connect()
        if smtp.username:
            await _login(client, smtp)
    except (aiosmtplib.SMTPException, OSError, TransportError) as exc:
        # Refused, unreachable, TLS, login or token trouble: all of it may be fixed by
        # the time of the next try (a server back up, a secret corrected), so temporary.
        raise _Failure(f"connect {smtp.host}:{smtp.port}: {exc}", permanent=False,
                       connection_lost=True) from None
    return client


async def _login(client: aiosmtplib.SMTP, smtp: SmtpSettings) -> None:
    if smtp.auth != "oauth2":
        await client.login(smtp.username, smtp.password)
        return
    provider = provider_for(smtp.oauth2)
    # The token endpoint is plain blocking HTTP: keep it off the event loop.
    token = await asyncio.to_thread(provider.access_token)
    try:
        await client.auth_xoauth2(smtp.username, token)
    except aiosmtplib.SMTPAuthenticationError:
        provider.invalidate()  # revoked or expired early: the next drain asks for a new one
        raise


@dataclass(frozen=True)
class _Sent:
    """The server accepted the mail; ``refused``: the recipients it refused, if some were."""

    refused: str | None


async def _deliver(
    engine: Engine, client: aiosmtplib.SMTP | None, row: OutboxMessage, smtp: SmtpSettings,
    now: datetime, result: DrainResult, lost: _Failure | None, has_files: bool,
) -> _Failure | None:
    """Send one row (unless the connection is lost) and record the outcome; returns ``lost``.

    The send runs outside any write transaction; the outcome is recorded in
    its own small one (SQLite: a writer blocks every other writer). Its files
    are read only when it ``has_files``.
    """
    files = []
    if has_files:
        with reading(engine) as session:
            files = attachments_of(session, row.id)
    outcome = await _attempt(client, row, files, smtp, lost)
    with transaction(engine) as session:
        return _record(session.get(OutboxMessage, row.id), outcome, smtp, now, result)


async def _attempt(client: aiosmtplib.SMTP | None, row: OutboxMessage, files: list[OutgoingFile],
                   smtp: SmtpSettings, lost: _Failure | None) -> _Sent | _Failure:
    """Hand one message to the server; a lost connection fails it without trying."""
    if lost is not None:
        return lost
    try:
        return _Sent(await _send(client, row, files, smtp))
    except _Failure as exc:
        return exc


async def _send(client: aiosmtplib.SMTP, row: OutboxMessage, files: list[OutgoingFile],
                smtp: SmtpSettings) -> str | None:
    """Hand one message to the server; the refused recipients when only some were refused."""
    message = build_email(row, smtp, files)
    try:
        errors, _ = await client.send_message(
            message, sender=smtp.from_address, recipients=row.to_addrs)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [refusal.code for refusal in exc.recipients]
        raise _Failure(f"all recipients refused: {exc}", permanent=min(codes) >= 500) from None
    except aiosmtplib.SMTPResponseException as exc:
        raise _Failure(f"{exc.code} {exc.message}", permanent=exc.code >= 500) from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise _Failure(f"connection lost: {exc}", permanent=False, connection_lost=True) from None
    if errors:
        return "; ".join(f"{addr}: {resp.code} {resp.message}" for addr, resp in errors.items())
    return None


def _record(row: OutboxMessage, outcome: _Sent | _Failure, smtp: SmtpSettings, now: datetime,
            result: DrainResult) -> _Failure | None:
    """Write the outcome on the row (in the caller's transaction); the failure if the
    connection is lost (the rest of this drain waits for the next one)."""
    row.attempts += 1
    if isinstance(outcome, _Sent):
        row.status, row.sent_at = "sent", datetime.now(timezone.utc)
        row.last_error = f"some recipients refused: {outcome.refused}" if outcome.refused else None
        result.sent += 1
        return None
    row.last_error = str(outcome)
    if outcome.permanent or row.attempts >= smtp.max_attempts:
        row.status = "failed"
        result.failed += 1
    else:
        row.next_attempt_at = now + backoff(row.attempts)
        result.retried += 1
    result.errors.append(f"outbox {row.id}: {outcome}")
    return outcome if outcome.connection_lost else None


async def _quit(client: aiosmtplib.SMTP) -> None:
    if not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()  # the mail is already accepted; a rude goodbye changes nothing
