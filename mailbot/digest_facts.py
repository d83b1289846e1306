"""The staff digest's facts: what one period left for staff, read from the database.

``gather`` reads everything the digest shows into plain dataclasses, so the
templates only lay it out and the tests assert on facts, not on text. The
sections, in the order staff read them (../shared/spec/workflow.md):

1. needs a person — complete applications awaiting adoption (queue order),
   step-03 documents complete and waiting to be checked, applicants'
   questions of the period, mails that failed to process (quarantined),
   addresses held after a bounce. Each item names the command to run next.
   What is outstanding is shown until staff act on it, not only in the
   period it arrived: a queued application still needs adopting tomorrow.
2. answered by the service in the period — the mails it sent by itself, counted
   per kind (and, for the record, those staff commands sent).
3. filtered in the period — out-of-office, lists, bounces, spam, as counts.
4. the program — adopted n / cap and per region, the waiting list, hours
   used and left per company, support days left, anything stuck.

The period is [start, end): a mail processed exactly at ``end`` belongs to
the next digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, select

from mailbot import admission, documents, hours
from mailbot.admission import ADOPTED_STATES, as_utc
from mailbot.db import WITHOUT_RAW
from mailbot.models import Application, FolderState, HeldAddress, OutboxMessage, RawMessage, Transition
from mailbot.staff import duration

#: Outbox kinds as staff call them; a kind not listed shows as it is.
KIND_LABELS = {
    "receipt": "申請書受付のお知らせ", "fix_request": "申請書の修正のお願い",
    "waitlisted": "キャンセル待ちのお知らせ", "closed": "受付終了のお知らせ",
    "pdf_unreadable": "添付ファイルを読み取れなかった旨のお知らせ",
    "adopted": "採択のお知らせ", "declined": "不採択のお知らせ",
    "withdrawn": "辞退の受付のお知らせ", "place_offered": "繰り上げのご案内",
    "documents_received": "提出書類受領のお知らせ", "documents_missing": "提出書類のご確認のお願い",
    "documents_reminder": "提出書類のご提出のお願い", "documents_requested_again": "提出書類の再提出のお願い",
    "invitation": "面談のご案内", "invitation_cancelled": "面談の取り消しのお知らせ",
    "hours_summary": "ご利用時間のお知らせ", "completed": "支援終了のご挨拶",
    "desk_received": "個別相談の受付のお知らせ", "desk_already_used": "個別相談（1社1回）のお知らせ",
    "desk_fix_request": "個別相談申込書の修正のお願い",
}

#: What the service filtered and never answered: the kind (from the stored reason) and its name.
FILTERED_LABELS = {
    "out_of_office": "不在通知（自動応答）", "list": "メーリングリスト・メールマガジン",
    "bounce": "配信エラー通知", "robot": "その他の自動送信メール",
    "loop": "当サービス自身のメール", "junk": "迷惑メール・広告",
}

#: The seal reading (Application.seal) in the words of the 押印 check.
SEAL_VERDICTS = {"ok": "押印あり", "away": "押印あり（位置要確認）", "missing": "押印なし", "unread": "未確認"}

#: States in which a company may have used expert hours (interview set and after).
SERVICE_STATES = hours.SUMMARY_STATES


@dataclass(frozen=True)
class Period:
    """From the last digest (inclusive) to now (exclusive), UTC."""

    start: datetime
    end: datetime

    def holds(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= as_utc(moment) < self.end


@dataclass(frozen=True)
class Awaiting:
    """A complete application waiting for staff to adopt it, in queue order."""

    position: int
    reception_number: str
    company_name: str | None
    region: str
    hours_requested: int | None
    received_at: datetime | None  # the arrival of the mail that made it complete
    seal: str  # SEAL_VERDICTS value
    new: bool  # arrived in this period
    commands: tuple[str, ...]
    #: What staff should know before adopting: the reading's warnings (a field a scan could
    #: not read, a seal not red, a PDF that carries a script ...), in the rules' words.
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DocumentsIn:
    """An application whose two step-03 documents are in: check them, then set the interview."""

    reception_number: str
    company_name: str | None
    received_at: datetime
    files: tuple[str, ...]
    new: bool
    commands: tuple[str, ...]


@dataclass(frozen=True)
class InboundItem:
    """A mail a person must read: a question, or one that failed to process."""

    raw_id: int
    arrived_at: datetime
    sender: str | None
    subject: str | None
    note: str | None  # why it was sorted so, or the error
    new: bool
    commands: tuple[str, ...]


@dataclass(frozen=True)
class Bounced:
    """An address held after one of our replies bounced from it."""

    address: str
    held_at: datetime
    reason: str
    reception_number: str | None
    new: bool
    commands: tuple[str, ...]


@dataclass(frozen=True)
class Count:
    """How many of one kind, and its name for staff."""

    kind: str
    label: str
    count: int


@dataclass(frozen=True)
class Waitlisted:
    """One application on the waiting list, at its place today."""

    position: int
    reception_number: str
    company_name: str | None
    region: str


@dataclass(frozen=True)
class HoursLine:
    """Expert hours of one company in one region."""

    reception_number: str
    company_name: str | None
    region: str
    used: float
    left: float
    cap: float


@dataclass(frozen=True)
class Stuck:
    """Something that stopped moving, and the command to look at it."""

    what: str
    command: str


@dataclass(frozen=True)
class Program:
    """Where the program stands today."""

    cap: int
    adopted: int
    queued: int
    remaining: int
    by_region: tuple[Count, ...]
    waiting: tuple[Waitlisted, ...]
    hours: tuple[HoursLine, ...]
    support_ends: date
    support_days_left: int


@dataclass(frozen=True)
class Digest:
    """Everything one digest says."""

    period: Period
    awaiting: tuple[Awaiting, ...]
    documents: tuple[DocumentsIn, ...]
    questions: tuple[InboundItem, ...]
    quarantined: tuple[InboundItem, ...]
    bounced: tuple[Bounced, ...]
    answered: tuple[Count, ...]
    by_staff: tuple[Count, ...]  # mails staff commands sent (adoption, invitations…), for the record
    filtered: tuple[Count, ...]
    program: Program
    stuck: tuple[Stuck, ...]

    @property
    def needs_person(self) -> int:
        """The items of section 1 (the number in the subject)."""
        return sum(len(part) for part in (self.awaiting, self.documents, self.questions,
                                          self.quarantined, self.bounced))

    @property
    def answered_total(self) -> int:
        return sum(c.count for c in self.answered)

    @property
    def filtered_total(self) -> int:
        return sum(c.count for c in self.filtered)

    @property
    def is_empty(self) -> bool:
        """Nothing needs a person, nothing stuck, no mail in or out in the period."""
        return not (self.needs_person or self.stuck or self.answered_total or self.by_staff
                    or self.filtered_total)


def gather(session: Session, services, period: Period) -> Digest:
    """Read the digest of ``period`` from the database (read-only)."""
    return Digest(
        period=period,
        awaiting=awaiting(session, services, period),
        documents=documents_in(session, period),
        questions=questions(session, period),
        quarantined=quarantined(session, period),
        bounced=bounced(session, period),
        answered=answered(session, period),
        by_staff=answered(session, period, automatic=False),
        filtered=filtered(session, period),
        program=program(session, services, period.end),
        stuck=stuck(session, services, period.end),
    )


# --- 1. needs a person ------------------------------------------------------------------


def awaiting(session: Session, services, period: Period) -> tuple[Awaiting, ...]:
    """Queued applications in queue order: staff decide on adoption (step 02)."""
    return tuple(
        Awaiting(position=rank, reception_number=app.reception_number, company_name=app.company_name,
                 region=region_name(services, app.country), hours_requested=app.hours_requested,
                 received_at=app.queued_at, seal=seal_verdict(app.seal), new=period.holds(_queued(session, app)),
                 commands=(f"mailbot show {app.reception_number}", f"mailbot adopt {app.reception_number}"),
                 notes=warnings(app))
        for rank, app in enumerate(admission.queue(session), start=1))


def warnings(app: Application) -> tuple[str, ...]:
    """The warnings recorded when the application was checked (problems that did not send it back)."""
    return tuple(problem["message_ja"] for problem in app.problems or ()
                 if problem.get("severity") == "warning" and problem.get("message_ja"))


def _queued(session: Session, app: Application) -> datetime | None:
    """When the application last joined the queue (the processing, not the mail's arrival)."""
    query = (select(Transition.at).where(Transition.application_id == app.id, Transition.to_state == "queued")
             .order_by(Transition.id.desc()).limit(1))
    return session.exec(query).first()


def documents_in(session: Session, period: Period) -> tuple[DocumentsIn, ...]:
    """Applications with both documents in (documents_received), oldest first."""
    query = select(Application).where(Application.state == "documents_received").order_by(Application.id)
    found = []
    for app in session.exec(query):
        docs = documents.received(session, app, since=documents.request_time(session, app))
        if not docs:
            continue
        last = max(as_utc(doc.received_at) for doc in docs)
        found.append(DocumentsIn(
            reception_number=app.reception_number, company_name=app.company_name, received_at=last,
            files=tuple(dict.fromkeys(documents.TITLES.get(d.kind, d.kind) for d in docs)),
            new=period.holds(last),
            commands=(f"mailbot documents {app.reception_number}",
                      f"mailbot schedule {app.reception_number} --step interview --at \"YYYY-MM-DD HH:MM\" "
                      f"--place \"…\" --expert \"…\"")))
    return tuple(sorted(found, key=lambda item: item.received_at))


def questions(session: Session, period: Period) -> tuple[InboundItem, ...]:
    """Mails from applicants the service could not answer itself, processed in the period."""
    rows = _raw_in_period(session, period, RawMessage.status == "processed", RawMessage.mail_class == "question")
    return tuple(_inbound(row, period, "mailbot messages --class question") for row in rows)


def quarantined(session: Session, period: Period) -> tuple[InboundItem, ...]:
    """Every mail still kept aside after processing failed (until staff reprocess it)."""
    query = (select(RawMessage).options(WITHOUT_RAW).where(RawMessage.status == "quarantined")
             .order_by(RawMessage.arrived_at))
    return tuple(_inbound(row, period, "mailbot quarantined", f"mailbot reprocess {row.id}")
                 for row in session.exec(query))


def bounced(session: Session, period: Period) -> tuple[Bounced, ...]:
    """Every address held after a bounce, with the application whose reply bounced."""
    found = []
    for held in session.exec(select(HeldAddress).order_by(HeldAddress.held_at)):
        reply = session.get(OutboxMessage, held.outbox_id) if held.outbox_id else None
        app = session.get(Application, reply.application_id) if reply and reply.application_id else None
        found.append(Bounced(address=held.address, held_at=as_utc(held.held_at), reason=held.reason,
                             reception_number=app.reception_number if app else None,
                             new=period.holds(held.held_at),
                             commands=("mailbot held", f"mailbot held --release {held.address}")))
    return tuple(found)


def _inbound(row: RawMessage, period: Period, *commands: str) -> InboundItem:
    return InboundItem(raw_id=row.id, arrived_at=as_utc(row.arrived_at), sender=row.sender,
                       subject=row.subject, note=row.error or row.reason,
                       new=period.holds(row.processed_at), commands=commands)


def _raw_in_period(session: Session, period: Period, *conditions) -> list[RawMessage]:
    # Without the bytes: a day's digest lists thousands of mails after an opening day.
    query = (select(RawMessage).options(WITHOUT_RAW)
             .where(RawMessage.processed_at >= period.start, RawMessage.processed_at < period.end, *conditions)
             .order_by(RawMessage.arrived_at, RawMessage.id))
    return list(session.exec(query))


# --- 2. answered, 3. filtered -------------------------------------------------------------


def answered(session: Session, period: Period, *, automatic: bool = True) -> tuple[Count, ...]:
    """Mails to applicants queued in the period, per kind: those the service sent by itself
    (``automatic``), or those a staff command sent. Staff notices and digests are left out."""
    query = (select(OutboxMessage.kind, func.count())
             .where(OutboxMessage.created_at >= period.start, OutboxMessage.created_at < period.end,
                    OutboxMessage.automatic == automatic,
                    OutboxMessage.kind.not_like("staff\\_%", escape="\\"))
             .group_by(OutboxMessage.kind))
    counts = dict(session.exec(query).all())
    order = [*KIND_LABELS, *sorted(set(counts) - set(KIND_LABELS))]
    return tuple(Count(kind, KIND_LABELS.get(kind, kind), counts[kind]) for kind in order if kind in counts)


def filtered(session: Session, period: Period) -> tuple[Count, ...]:
    """Automatic mail (by kind) and junk processed in the period: recorded, never answered."""
    rows = _raw_in_period(session, period, RawMessage.status == "processed",
                          RawMessage.mail_class.in_(("automatic", "junk")))
    counts: dict[str, int] = {}
    for row in rows:
        # The stored reason starts with the kind: "out_of_office: Auto-Submitted: auto-replied".
        kind = "junk" if row.mail_class == "junk" else (row.reason or "robot").partition(":")[0]
        kind = kind if kind in FILTERED_LABELS else "robot"
        counts[kind] = counts.get(kind, 0) + 1
    return tuple(Count(kind, label, counts[kind]) for kind, label in FILTERED_LABELS.items() if kind in counts)


# --- 4. the program -------------------------------------------------------------------------


def program(session: Session, services, now: datetime) -> Program:
    """The cap, the regions, the waiting list, the hours and the days of support left."""
    cap = admission.cap_status(session, services.settings.program)
    ends = hours.support_ends(services)
    today = as_utc(now).astimezone(hours.TOKYO).date()
    return Program(
        cap=cap["limit"], adopted=cap["adopted"], queued=cap["queued"], remaining=cap["remaining"],
        by_region=adopted_by_region(session, services),
        waiting=tuple(Waitlisted(rank, app.reception_number, app.company_name, region_name(services, app.country))
                      for rank, app in enumerate(admission.waiting_list(session), start=1)),
        hours=hours_lines(session, services), support_ends=ends,
        support_days_left=max((ends - today).days, 0),
    )


def adopted_by_region(session: Session, services) -> tuple[Count, ...]:
    """Adopted applications per region, most first."""
    query = (select(Application.country, func.count()).where(Application.state.in_(ADOPTED_STATES))
             .group_by(Application.country))
    counts = session.exec(query).all()
    return tuple(Count(code or "-", region_name(services, code), n)
                 for code, n in sorted(counts, key=lambda pair: (-pair[1], pair[0] or "")))


def hours_lines(session: Session, services) -> tuple[HoursLine, ...]:
    """Hours used and left, once per company and region (a shared ledger shows once)."""
    query = select(Application).where(Application.state.in_(SERVICE_STATES)).order_by(Application.id)
    lines, seen = [], set()
    for app in session.exec(query):
        if app.id in seen:
            continue
        seen.update(other.id for other in hours.sharing_applications(session, app))
        ledger = hours.summary(session, services, app)
        lines.append(HoursLine(app.reception_number, app.company_name, region_name(services, app.country),
                               ledger.used, ledger.left, ledger.cap))
    return tuple(lines)


def stuck(session: Session, services, now: datetime) -> tuple[Stuck, ...]:
    """Documents overdue, the mailbox not polled, mail the outbox gave up on."""
    return (*overdue_documents(session, services, now), *_poll(session, services, now),
            *_outbox_failed(session))


def overdue_documents(session: Session, services, now: datetime) -> list[Stuck]:
    """Applications still without both documents [workflow] documents_reminder_days after the request."""
    days = services.settings.workflow.documents_reminder_days
    query = select(Application).where(Application.state == "documents_requested").order_by(Application.id)
    found = []
    for app in session.exec(query):
        asked = documents.request_time(session, app)
        if asked is not None and as_utc(now) - as_utc(asked) >= timedelta(days=days):
            waited = (as_utc(now) - as_utc(asked)).days
            found.append(Stuck(f"{app.reception_number} {app.company_name or ''}：書類の依頼から{waited}日、"
                               f"提出書類がそろっていません", f"mailbot documents {app.reception_number}"))
    return found


def _poll(session: Session, services, now: datetime) -> list[Stuck]:
    folder = services.settings.imap.folder
    minutes = services.settings.service.health_alert_minutes
    state = session.get(FolderState, folder)
    last = as_utc(state.last_poll_at) if state is not None and state.last_poll_at else None
    if last is not None and as_utc(now) - last <= timedelta(minutes=minutes):
        return []
    since = f"最後に受信できたのは {_minutes(as_utc(now) - last)}前" if last else "まだ一度も受信できていません"
    return [Stuck(f"メールボックス {folder}：{minutes}分以上受信できていません（{since}）", "mailbot health")]


def _outbox_failed(session: Session) -> list[Stuck]:
    failed = session.exec(select(func.count()).select_from(OutboxMessage)
                          .where(OutboxMessage.status == "failed")).one()
    return [Stuck(f"送信をあきらめたメールが {failed}通あります", "mailbot health")] if failed else []


def _minutes(span: timedelta) -> str:
    return duration(span.total_seconds())


# --- words --------------------------------------------------------------------------------------


def region_name(services, code: str | None) -> str:
    """中国 for CN, ドイツ for EU:DE; "-" when the form gave none."""
    if not code:
        return "-"
    return services.rules.region_name(code)


def seal_verdict(seal: dict | None) -> str:
    """The seal reading in the words staff use: 押印あり, 位置要確認, 押印なし, 未確認."""
    if not seal:
        return SEAL_VERDICTS["unread"]
    if not seal.get("present"):
        return SEAL_VERDICTS["missing"]
    return SEAL_VERDICTS["ok" if seal.get("near_field") else "away"]
