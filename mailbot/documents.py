"""Step 03: the held-information list and the self-check sheet, sent and received.

``blank_files(settings)`` gives the two documents the adoption mail attaches:
the program's real files when [workflow] held_info_list / self_check_sheet
name them, else the simple versions shipped in mailbot/forms/blank/.

``receive`` handles a mail the pipeline classified "documents" (files in an
application's thread): each attachment is recognised (``recognise``: by
content first, then by name), recorded once per request (a resend of the
same bytes is no second document), and the applicant hears what arrived:
both documents -> a receipt and documents_requested -> documents_received;
otherwise which one is still missing. An application that is not waiting
for documents gets no automatic answer: the files are recorded and the mail
is left to staff with its reason saying so.

``remind_due`` (called every daemon cycle) sends ONE reminder per request to
an application still in documents_requested after ``[workflow]
documents_reminder_days``, naming what is missing, and tells staff once.
After that the follow-up is a person's call (a phone call usually works
better than a second robot mail); a new request (``mailbot
request-documents``) starts a new count.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import unicodedata
import zipfile
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree.ElementTree import ParseError as XmlParseError

import openpyxl
import pdfplumber
from lxml.etree import LxmlError
from openpyxl.utils.exceptions import InvalidFileException
from pdfminer.pdfexceptions import PDFException, PSException
from pdfplumber.utils.exceptions import PdfminerException
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from mailbot import letters, reception, replies, staff, workflow
from mailbot.config import Settings
from mailbot.db import transaction
from mailbot.errors import ConfigError, MailbotError, PdfError, WorkflowError
from mailbot.intake import archives
from mailbot.intake.message import Attachment
from mailbot.models import Application, Transition, utcnow
from mailbot.render import japanese_date
from mailbot.tables.documents import DocumentReminder, ReceivedDocument

if TYPE_CHECKING:
    from mailbot.intake.classify import Classification
    from mailbot.pipeline import Handling
    from mailbot.services import Services
from mailbot.forms.blank_documents import BLANK_DIR, HELD_INFO_FILE, SELF_CHECK_FILE
from mailbot.outbox import OutgoingFile

log = logging.getLogger(__name__)

HELD_INFO, SELF_CHECK = "held_info_list", "self_check"
#: What the applicant sees: the documents' Japanese names (also the attachment names of the shipped files).
TITLES = {HELD_INFO: "保有情報リスト", SELF_CHECK: "情報管理体制セルフチェックシート"}
_CONFIG_KEYS = {HELD_INFO: "held_info_list", SELF_CHECK: "self_check_sheet"}
_SHIPPED = {HELD_INFO: HELD_INFO_FILE, SELF_CHECK: SELF_CHECK_FILE}
CONTENT_TYPES = {
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".xls": "application/vnd.ms-excel",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".doc": "application/msword",
}


def blank_files(settings: Settings) -> list[OutgoingFile]:
    """The two documents to fill, held-information list first, ready to attach."""
    return [_blank_file(settings, kind) for kind in (HELD_INFO, SELF_CHECK)]


def _blank_file(settings: Settings, kind: str) -> OutgoingFile:
    key = _CONFIG_KEYS[kind]
    configured = getattr(settings.workflow, key)
    if not configured:
        # The shipped file has an ASCII name on disk; the applicant sees the Japanese one.
        path = BLANK_DIR / _SHIPPED[kind]
        return OutgoingFile(TITLES[kind] + path.suffix, content_type(path.name), path.read_bytes())
    path = settings.path(configured)
    if not path.is_file():
        raise ConfigError(f"[workflow] {key}: no such file: {path}")
    return OutgoingFile(path.name, content_type(path.name), path.read_bytes())


def content_type(filename: str) -> str:
    """The MIME type of a document by its extension (octet-stream when unknown)."""
    return CONTENT_TYPES.get(Path(filename).suffix.lower(), "application/octet-stream")


# --- recognising a document ----------------------------------------------------

KINDS = (HELD_INFO, SELF_CHECK)
#: Words in a file name or a title cell that name each document (compared after ``_squash``).
NAME_WORDS = {
    HELD_INFO: ("保有情報", "heldinfo", "heldinformation"),
    SELF_CHECK: ("セルフチェック", "情報管理体制", "selfcheck", "自己点検"),
}
#: Column headers that only each document's table has, all on one row.
HEADER_SETS = {
    HELD_INFO: (("情報の名称", "保管場所"), ("情報の名称", "管理責任者")),
    SELF_CHECK: (("チェック項目", "はい", "いいえ"),),
}
SCAN_ROWS, SCAN_COLUMNS, SCAN_SHEETS, SCAN_PAGES = 15, 15, 3, 2
#: An .xlsx that unzips to more than this is not opened (a zip bomb); its name still counts.
MAX_UNZIPPED = 50 * 1024 * 1024
#: What openpyxl / zipfile / lxml raise on a broken or hostile workbook (found by fuzzing real files).
_XLSX_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, InvalidFileException, XmlParseError,
                LxmlError, KeyError, IndexError, ValueError, TypeError, AttributeError, NotImplementedError,
                EOFError, OSError)
#: What pdfplumber / pdfminer raise on a broken or hostile PDF.
_PDF_ERRORS = (PdfminerException, PDFException, PSException, KeyError, IndexError, ValueError, TypeError,
               AttributeError, NotImplementedError, EOFError, OSError, RecursionError)
_SEPARATORS = re.compile(r"[\s\-_.・･,，、()\[\]【】「」『』]+")


def recognise(filename: str, data: bytes) -> str | None:
    """Which step-03 document this file is: "held_info_list", "self_check", or None.

    The content decides when it can be read and names one document (the
    title row or the table's headers), so a file named "回答.xlsx" holding
    the list is the list. When the content cannot be read (.xls, a scan, a
    broken file) or names neither, the file name decides: a name is
    acceptable evidence, as staff would take it, and the receipt names the
    file so the applicant sees what was taken for what.
    """
    return by_content(filename, data) or by_name(filename)


def by_name(filename: str) -> str | None:
    """The document a file name names (any width, case, separators, company or date around it)."""
    return _one_kind(_squash(Path(filename or "").stem))


def by_content(filename: str, data: bytes) -> str | None:
    """The document an .xlsx/.xlsm or PDF says it is in its first rows or lines; None when unreadable."""
    suffix = Path(filename or "").suffix.lower()
    if suffix in (".xlsx", ".xlsm") or (not suffix and data[:2] == b"PK"):
        lines = _xlsx_lines(data)
    elif suffix == ".pdf" or data[:5] == b"%PDF-":
        lines = _pdf_lines(data)
    else:
        return None
    for line in lines:  # the first line that names exactly one document decides
        kind = _one_kind(_squash(line)) or _by_headers(line)
        if kind:
            return kind
    return None


def _squash(text: str) -> str:
    """NFKC (full/half width), lower case, no spaces or separators: what names are compared on."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", text)).lower()


def _one_kind(squashed: str) -> str | None:
    found = [kind for kind in KINDS if any(word in squashed for word in NAME_WORDS[kind])]
    return found[0] if len(found) == 1 else None  # both named: the line is no evidence


def _by_headers(line: str) -> str | None:
    """The document whose table headers are all on this row (cells tab-separated)."""
    cells = [_squash(cell) for cell in line.split("\t")]
    found = [kind for kind in KINDS
             if any(all(_has_header(cells, _squash(h)) for h in headers) for headers in HEADER_SETS[kind])]
    return found[0] if len(found) == 1 else None


def _has_header(cells: list[str], header: str) -> bool:
    # Short headers (はい) must be the whole cell; longer ones may carry a note: 分類（技術情報／営業情報）.
    return any(cell == header or (len(header) >= 4 and header in cell) for cell in cells)


def _xlsx_lines(data: bytes) -> list[str]:
    """Sheet names and the first rows of the first sheets, cells joined by tabs; [] when unreadable."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(entry.file_size for entry in archive.infolist()) > MAX_UNZIPPED:
                return []
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            lines = []
            for sheet in book.worksheets[:SCAN_SHEETS]:
                lines.append(sheet.title)
                for row in sheet.iter_rows(max_row=SCAN_ROWS, max_col=SCAN_COLUMNS, values_only=True):
                    lines.append("\t".join(str(v) for v in row if v is not None))
            return lines
        finally:
            book.close()
    except _XLSX_ERRORS as exc:
        log.info("workbook not readable (%s): recognised by name only", type(exc).__name__)
        return []


def _pdf_lines(data: bytes) -> list[str]:
    """The text lines of the first pages; [] when unreadable.

    In-process: a mail's PDF comes here only after it opened in the
    sandboxed reader (``_kind_of``); only the first pages' text is asked for.
    """
    try:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            return [line for page in pdf.pages[:SCAN_PAGES] for line in (page.extract_text() or "").splitlines()]
    except _PDF_ERRORS as exc:
        log.info("PDF not readable (%s): recognised by name only", type(exc).__name__)
        return []


# --- receiving the applicant's reply --------------------------------------------------


def receive(handling: Handling, verdict: Classification) -> None:
    """Files in an application's thread: record the documents, answer what arrived or is missing."""
    session, raw = handling.session, handling.raw
    app = reception.by_thread(handling)
    if app is None:  # classified in the thread moments ago: the application must exist
        raw.reason = f"{raw.reason}; no application found for the thread: left for staff"
        return
    since = request_time(session, app)
    new, repeated, unknown = _record(handling, app, since)
    if app.state != "documents_requested":
        raw.reason = (f"{raw.reason}; application {app.reception_number} is {app.state}, not waiting for "
                      f"documents: {len(new)} recorded, no automatic reply, left for staff")
        return
    held = received(session, app, since)
    if {doc.kind for doc in held} >= set(KINDS):
        _all_received(handling, app, held)
    else:
        _still_missing(handling, app, held, repeated, unknown)


def _still_missing(handling: Handling, app: Application, held: list[ReceivedDocument],
                   repeated: list[str], unknown: list[str]) -> None:
    missing = [k for k in KINDS if k not in {doc.kind for doc in held}]
    replies.send(handling, "documents_missing", app=app, documents=_latest(held), titles=TITLES,
                 missing=[TITLES[k] for k in missing], missing_kinds=missing, repeated=repeated, unknown=unknown)
    handling.raw.reason = f"{handling.raw.reason}; still missing: {', '.join(missing)}"


def _all_received(handling: Handling, app: Application, held: list[ReceivedDocument]) -> None:
    names = "、".join(doc.filename for doc in _latest(held))
    workflow.move(handling.session, app, "documents_received", actor="service",
                  reason=f"both step-03 documents received: {names}", raw_message_id=handling.raw.id)
    replies.send(handling, "documents_received", app=app, documents=_latest(held), titles=TITLES)
    handling.raw.reason = f"{handling.raw.reason}; both documents received"


def _record(handling: Handling, app: Application, since: datetime | None):
    """Record this mail's recognised files; (new rows, resent file names, unrecognised file names)."""
    session = handling.session
    known = {doc.sha256 for doc in received(session, app, since)}
    new, repeated, unknown = [], [], []
    for file in document_files(handling):
        kind, digest = _kind_of(handling, file), hashlib.sha256(file.data).hexdigest()
        if kind is None:
            unknown.append(file.filename or "(名前なし)")
        elif digest in known:
            repeated.append(file.filename)
        else:
            known.add(digest)
            new.append(ReceivedDocument(
                application_id=app.id, kind=kind, filename=file.filename, content_type=file.content_type,
                sha256=digest, size=len(file.data), raw_message_id=handling.raw.id))
    session.add_all(new)
    session.flush()
    return new, repeated, unknown


def _kind_of(handling: Handling, file: Attachment) -> str | None:
    """``recognise``, but a PDF is read here only after it opened in the sandboxed reader.

    pdfplumber runs in this process; a PDF built to hang or exhaust it must
    first pass the reader's time and memory limits (services.read_form),
    else it is recognised by its name alone.
    """
    if file.is_pdf:
        try:
            handling.services.read_form(file.data)
        except PdfError as exc:
            log.info("PDF %r unreadable in the sandbox (%s): recognised by name only", file.filename, exc.code)
            return by_name(file.filename)
    return recognise(file.filename, file.data)


def document_files(handling: Handling) -> list[Attachment]:
    """The mail's files of the kinds rules/triage.toml counts as documents (no inline images).

    A zip counts by what is in it: its PDFs are already attachments of their
    own (intake.mime), its spreadsheets are taken out here.
    """
    endings = handling.services.triage.document_extensions
    files = []
    for attachment in handling.msg.attachments:
        if attachment.inline or not (attachment.filename or "").lower().endswith(endings):
            continue
        if archives.is_zip(attachment):
            files.extend(spreadsheets_in_zip(attachment))
        else:
            files.append(attachment)
    return files


SPREADSHEET_ENDINGS = (".xlsx", ".xlsm", ".xls")
_ENCRYPTED = 0x1  # zip flag bit 0: the member is encrypted


def spreadsheets_in_zip(attachment: Attachment) -> list[Attachment]:
    """The Excel files inside a zip, each read with a size cap; [] when none can be taken out."""
    try:
        with zipfile.ZipFile(io.BytesIO(attachment.data)) as archive:
            if len(archive.infolist()) > archives.MAX_MEMBERS:
                return []
            return [file for member in archive.infolist() if (file := _spreadsheet(archive, member))]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError, EOFError) as exc:
        log.info("zip %r left closed: %s", attachment.filename, exc)
        return []


def _spreadsheet(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> Attachment | None:
    name = archives.member_name(member).rsplit("/", 1)[-1]
    if member.is_dir() or member.flag_bits & _ENCRYPTED or not name.lower().endswith(SPREADSHEET_ENDINGS):
        return None
    with archive.open(member) as handle:
        data = handle.read(archives.MAX_PDF_BYTES + 1)  # the declared size of a bomb cannot be trusted
    if len(data) > archives.MAX_PDF_BYTES:
        return None
    return Attachment(filename=name, content_type=content_type(name), data=data)


def request_time(session: Session, app: Application) -> datetime | None:
    """When the application last entered documents_requested (a reminder's self-move does not count)."""
    query = (select(Transition.at).where(
        Transition.application_id == app.id, Transition.to_state == "documents_requested",
        Transition.from_state != "documents_requested").order_by(Transition.id.desc()).limit(1))
    return session.exec(query).first()


def received(session: Session, app: Application, since: datetime | None = None) -> list[ReceivedDocument]:
    """The application's recorded documents, oldest first; only those since ``since`` when given."""
    query = select(ReceivedDocument).where(ReceivedDocument.application_id == app.id)
    if since is not None:
        query = query.where(ReceivedDocument.received_at >= since)
    return list(session.exec(query.order_by(ReceivedDocument.id)))


def _latest(docs: list[ReceivedDocument]) -> list[ReceivedDocument]:
    """The newest file of each kind, in the documents' order (a later version replaces an earlier)."""
    newest = {doc.kind: doc for doc in docs}
    return [newest[kind] for kind in KINDS if kind in newest]


# --- reminders ------------------------------------------------------------------

DOCUMENTS_OVERDUE = "staff_documents_overdue"  # staff.notify template (and outbox kind)


def remind_due(services: Services, now: datetime | None = None) -> int:
    """Remind every application waiting for documents past the deadline, once per request; how many."""
    now = now or utcnow()
    days = services.settings.workflow.documents_reminder_days
    sent = 0
    for app_id in _waiting(services):
        try:
            with transaction(services.engine) as session:
                sent += _remind(session, services, session.get(Application, app_id), now, days)
        except IntegrityError:  # another process reminded it at the same moment: once is enough
            log.info("application id=%s already reminded", app_id)
        except MailbotError as exc:  # a broken template must not stop the cycle (nor the others)
            log.error("documents reminder for application id=%s failed: %s", app_id, exc)
    return sent


def _waiting(services: Services) -> list[int]:
    with Session(services.engine) as session:
        return list(session.exec(select(Application.id).where(Application.state == "documents_requested")))


def _remind(session: Session, services: Services, app: Application, now: datetime, days: int) -> int:
    """One reminder and one staff note when this request is ``days`` old and not yet reminded."""
    requested = _due(session, app, now, days)
    if requested is None:
        return 0
    context = _reminder_context(session, app, requested, days)
    mail = letters.send(session, services, app, "documents_reminder", automatic=True, **context)
    session.flush()  # the reminder row names the mail's id
    session.add(DocumentReminder(application_id=app.id, requested_at=requested, sent_at=now,
                                 outbox_id=mail.id if mail else None))
    staff.notify(session, services, DOCUMENTS_OVERDUE, topic=f"documents:{app.reception_number}",
                 application_id=app.id, reception_number=app.reception_number, company_name=app.company_name,
                 reminded_to=mail.to_addrs if mail else [], **context)
    session.flush()  # a second process reminding at the same moment fails here, on the unique key
    return 1


def _due(session: Session, app: Application, now: datetime, days: int) -> datetime | None:
    """The request's time when it is ``days`` old and has had no reminder yet, else None."""
    requested = request_time(session, app)
    if app.state != "documents_requested" or requested is None or now - requested < timedelta(days=days):
        return None
    reminded = session.exec(select(DocumentReminder.id).where(
        DocumentReminder.application_id == app.id, DocumentReminder.requested_at == requested)).first()
    return None if reminded else requested


def _reminder_context(session: Session, app: Application, requested: datetime, days: int) -> dict:
    held = _latest(received(session, app, requested))
    missing = [k for k in KINDS if k not in {doc.kind for doc in held}]
    local = requested.astimezone(staff.TOKYO)
    return {"documents": held, "titles": TITLES, "missing": [TITLES[k] for k in missing],
            "missing_kinds": missing, "days": days, "requested_on": japanese_date(local),
            "requested_date": local.date()}


# --- for staff ------------------------------------------------------------------------


def summary(session: Session, app: Application) -> dict:
    """What arrived and what is missing for the current request (for `mailbot documents`, JSON-ready)."""
    since = request_time(session, app)
    current = {doc.id for doc in received(session, app, since)} if since else set()
    files = [{"kind": doc.kind, "title": TITLES[doc.kind], "filename": doc.filename, "size": doc.size,
              "sha256": doc.sha256, "received_at": _iso(doc.received_at), "raw_message_id": doc.raw_message_id,
              "current_request": doc.id in current} for doc in received(session, app)]
    have = {f["kind"] for f in files if f["current_request"]}
    return {"reception_number": app.reception_number, "state": app.state, "requested_at": _iso(since),
            "missing": [k for k in KINDS if k not in have] if since else [], "documents": files}


def request_again(session: Session, services: Services, app: Application, *, actor: str, reason: str,
                  note: str | None = None):
    """Staff found a received document unusable: back to documents_requested, the applicant asked again.

    The mail attaches both blank documents again; ``note`` (optional) is
    quoted to the applicant, ``reason`` stays in the history.
    """
    if app.state != "documents_received":
        raise WorkflowError(f"application {app.reception_number}: documents can be asked for again only "
                            f"in 'documents_received', not in {app.state!r}")
    workflow.move(session, app, "documents_requested", actor=actor, reason=reason)
    return letters.send(session, services, app, "documents_requested_again",
                        attachments=blank_files(services.settings), note=note)


def preview_context(session: Session, services: Services, app: Application) -> dict:
    """The values the step-03 mails need, from the application's real documents (for `mailbot preview`).

    One context serves documents_received, documents_missing, documents_reminder
    and documents_requested_again; with no documents yet both show as missing.
    """
    requested = request_time(session, app) or utcnow()
    context = _reminder_context(session, app, requested, services.settings.workflow.documents_reminder_days)
    if not context["documents"]:  # documents_received lists files: show the sample names then
        context["documents"] = [ReceivedDocument(application_id=app.id or 0, kind=k, filename=TITLES[k] + ".xlsx",
                                                 content_type=CONTENT_TYPES[".xlsx"], sha256="", size=0)
                                for k in KINDS]
        context["missing"], context["missing_kinds"] = [TITLES[k] for k in KINDS], list(KINDS)
    return {**context, "repeated": [], "unknown": [], "note": None}


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.isoformat(timespec="seconds")
