"""The staff digest: every section from a seeded database, the text and HTML, when it is due.

The database is a real SQLite file seeded with the real use cases: admission
and adoption (steps 01-02), the pipeline on real-shaped mails (documents by
reply, a question, an out-of-office reply, a mailing list, spam, a bounce of
one of our replies, a mail that cannot be parsed), the interview and the
hours ledger. The templates are the shipped ones; nothing is sent here
(tests/e2e/test_digest.py sends one to a real SMTP server).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from mailbot import PROJECT_ROOT, admission, adoption, config, digest, hours, outbox, pipeline, workflow
from mailbot import schedule as meetings
from mailbot.cli import app as cli
from mailbot.db import transaction
from mailbot.digest_facts import KIND_LABELS, Period, gather
from mailbot.models import Application, FolderState, OutboxMessage, RawMessage
from mailbot.services import Services, build
from mailbot.tables.digest import DigestRun
from tests.test_documents import workbook
from tests.test_hours import write_config

TOKYO = ZoneInfo("Asia/Tokyo")
FROM = "chizai@example.jp"
STAFF = ["staff1@example.jp", "staff2@example.jp"]
CORPUS = PROJECT_ROOT / "tests" / "corpus"
TODAY = date.today()
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
#: company n: (name, region code, hours asked, seal reading)
COMPANIES = {
    1: ("株式会社サンプル精機", "VN", 20, {"present": True, "near_field": True}),
    2: ("株式会社テスト化学", "CN", 23, {"present": True, "near_field": True}),
    3: ("有限会社山田製作所", "VN", 10, {"present": True, "near_field": True}),
    4: ("株式会社<b>北斗</b>&電子", "TH", 15, {"present": True, "near_field": False}),
    5: ("株式会社みなと商事", "EU:DE", None, {"present": False}),
    6: ("株式会社キャンセル待ち工業", "ID", 8, {"present": True, "near_field": True}),
}
BOUNCED_TO = "tanaka@old-domain.example.jp"  # the Final-Recipient of corpus 13
BOUNCED_ID = "<177241089812.4242.1234567890@example.jp>"  # the reply corpus 13 quotes


def config_data(tmp_path, **staff) -> dict:
    """Cap 5, open since 60 days, the shipped rules and templates; nothing is ever contacted."""
    return {
        "imap": {"host": "127.0.0.1", "port": 1, "username": "chizai", "security": "none"},
        "smtp": {"host": "127.0.0.1", "port": 1, "security": "none", "from_address": FROM},
        "database": {"url": f"sqlite:///{tmp_path / 'mailbot.db'}"},
        "program": {"opens": TODAY - timedelta(days=60), "closes": TODAY + timedelta(days=60), "cap": 5},
        "staff": {"digest_to": STAFF, **staff},
        "service": {"rules_dir": str(PROJECT_ROOT / "rules"), "templates_dir": str(PROJECT_ROOT / "templates")},
    }


def make_services(tmp_path, **staff):
    return build(config.validate(config_data(tmp_path, **staff), base_dir=tmp_path, origin="test"))


def number(n: int) -> str:
    return f"TS-2026-{n:04d}"


# --- seeding through the real use cases --------------------------------------------------


def apply(services, n: int) -> None:
    """Company n's complete application, arrived n minutes after T0: queued, or waitlisted past the cap."""
    name, region, asked, seal = COMPANIES[n]
    with transaction(services.engine) as session:
        app = Application(
            reception_number=admission.next_reception_number(session, "TS", 2026), state="received",
            company_name=name, country=region, contact_email=f"tanaka@company{n}.example.jp",
            sender=f"soumu@company{n}.example.jp", hours_requested=asked, seal=seal,
            fields={"contact_name": f"田中 {n}郎"}, thread_message_id=f"<apply-{n}@company{n}.example.jp>")
        workflow.start(session, app, "received", actor="service", reason="mail arrived")
        admission.admit(session, app, arrived_at=T0 + timedelta(minutes=n), uid=n,
                        program=services.settings.program)


def store(services, raw: bytes) -> int:
    """The poller's part: the mail as a raw row (then the pipeline processes it)."""
    with transaction(services.engine) as session:
        uid = len(session.exec(select(RawMessage.id)).all()) + 1
        row = RawMessage(folder="INBOX", uidvalidity=1, uid=uid, size=len(raw), arrived_at=datetime.now(UTC),
                         sha256=hashlib.sha256(raw).hexdigest(), raw=raw)
        session.add(row)
        session.flush()
        return row.id


def receive(services, raw: bytes) -> str:
    return pipeline.process(services, store(services, raw))


def documents_reply(services, n: int) -> bytes:
    """Company n answers the adoption mail with the two step-03 documents."""
    with Session(services.engine) as session:
        app = adoption.find(session, number(n))
        adopted = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "adopted",
                                                           OutboxMessage.application_id == app.id)).one()
    msg = EmailMessage()
    msg["From"], msg["To"] = f"tanaka@company{n}.example.jp", FROM
    msg["Subject"] = f"Re: 採択のお知らせ（受付番号：{number(n)}）"
    msg["Message-ID"] = f"<documents-{n}@company{n}.example.jp>"
    msg["In-Reply-To"] = msg["References"] = adopted.message_id
    msg.set_content("提出書類をお送りします。")
    for name in ("保有情報リスト.xlsx", "情報管理体制セルフチェックシート.xlsx"):
        msg.add_attachment(workbook(("項目", "内容"), (name, n)), maintype="application",
                           subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet", filename=name)
    return msg.as_bytes()


def our_reply_that_bounces(services, n: int) -> None:
    """A receipt to company n at the address corpus 13 reports as unknown, with the Message-ID it quotes."""
    with transaction(services.engine) as session:
        app = adoption.find(session, number(n))
        row = outbox.enqueue(session, kind="receipt", to=[BOUNCED_TO], subject="申請書受付のお知らせ",
                             body="…", from_address=FROM, application_id=app.id)
        row.message_id = BOUNCED_ID


def interview_and_hours(services, n: int, used: float) -> None:
    """Step 04/05 for company n: the interview set, then one session of ``used`` hours today."""
    at = (datetime.now(TOKYO) + timedelta(days=3)).strftime("%Y-%m-%d 14:00")
    with transaction(services.engine) as session:
        meetings.schedule(session, services, number(n), "interview",
                          meetings.meeting(at, minutes=60, expert="鈴木 専門家", place="ジェトロ本部"),
                          actor="izumi")
    with transaction(services.engine) as session:
        hours.log_session(session, services, adoption.find(session, number(n)), held_on=hours.tokyo_today(),
                          kind="consultation", hours=used, by="izumi")


def polled(services, at: datetime) -> None:
    """The poller's record of a good poll at ``at``."""
    with transaction(services.engine) as session:
        state = session.get(FolderState, "INBOX") or FolderState(folder="INBOX")
        state.last_poll_at = at
        session.add(state)


@dataclass(frozen=True)
class Seeded:
    """The seeded services, the period that holds all of it, and the id of the unparsable mail."""

    services: Services
    period: Period
    broken_id: int


@pytest.fixture
def seeded(tmp_path) -> Seeded:
    return seed(make_services(tmp_path))


def seed(services) -> Seeded:
    """Cap 5: 1-3 adopted (1 and 3 sent their documents, 3 is in service with 2.5 h), 4-5 queued,
    6 waitlisted; in the mailbox a question, an out-of-office, a list mail, spam, a bounce of a
    receipt to company 4, and a mail that cannot be parsed."""
    start = datetime.now(UTC)
    for n in COMPANIES:
        apply(services, n)
    with transaction(services.engine) as session:
        adoption.adopt_named(session, services, [number(1), number(2), number(3)], actor="izumi")
    assert receive(services, documents_reply(services, 1)) == "documents"
    assert receive(services, documents_reply(services, 3)) == "documents"
    interview_and_hours(services, 3, 2.5)
    our_reply_that_bounces(services, 4)
    for name, kind in [("16-question-no-attachment.eml", "question"),
                       ("12-outlook-out-of-office-ja.eml", "automatic"),
                       ("14-mailing-list-fml.eml", "automatic"), ("15-spam-mishodaku-kokoku.eml", "junk"),
                       ("13-postfix-bounce-of-our-reply.eml", "automatic")]:
        assert receive(services, (CORPUS / name).read_bytes()) == kind, name
    broken = store(services, b"Subject: no sender at all\r\n\r\nbody\r\n")
    assert pipeline.process(services, broken) == "quarantined"
    polled(services, datetime.now(UTC))
    return Seeded(services, Period(start, datetime.now(UTC) + timedelta(seconds=1)), broken)


def facts(seeded: Seeded, period: Period | None = None):
    with Session(seeded.services.engine) as session:
        return gather(session, seeded.services, period or seeded.period)


# --- every section, its items, counts and commands -------------------------------------------


def test_needs_a_person_lists_the_queue_in_order_with_everything_to_decide(seeded):
    d = facts(seeded)
    assert [(a.position, a.reception_number, a.company_name, a.region, a.hours_requested, a.seal)
            for a in d.awaiting] == [
        (1, number(4), "株式会社<b>北斗</b>&電子", "タイ", 15, "押印あり（位置要確認）"),
        (2, number(5), "株式会社みなと商事", "ドイツ", None, "押印なし")]
    assert d.awaiting[0].received_at == T0 + timedelta(minutes=4) and all(a.new for a in d.awaiting)
    assert d.awaiting[0].commands == (f"mailbot show {number(4)}", f"mailbot adopt {number(4)}")


def test_needs_a_person_lists_documents_questions_failures_and_bounces(seeded):
    d = facts(seeded)
    [docs] = d.documents  # company 3 sent them too, but is past that step (interview set)
    assert (docs.reception_number, docs.company_name, docs.new) == (number(1), "株式会社サンプル精機", True)
    assert docs.files == ("保有情報リスト", "情報管理体制セルフチェックシート")
    assert docs.commands[0] == f"mailbot documents {number(1)}"
    assert docs.commands[1].startswith(f"mailbot schedule {number(1)} --step interview --at ")
    [question] = d.questions
    assert question.sender == "kato.kato@gmail.example.com" and question.subject == "申請資格についての質問"
    assert question.commands == ("mailbot messages --class question",)
    [failed] = d.quarantined
    assert failed.raw_id == seeded.broken_id and "no sender address" in failed.note
    assert failed.commands == ("mailbot quarantined", f"mailbot reprocess {seeded.broken_id}")
    [held] = d.bounced
    assert (held.address, held.reception_number, held.new) == (BOUNCED_TO, number(4), True)
    assert held.commands[-1] == f"mailbot held --release {BOUNCED_TO}"
    assert d.needs_person == 2 + 1 + 1 + 1 + 1


def test_answered_and_filtered_are_counted_per_kind(seeded):
    d = facts(seeded)
    answered = {c.kind: (c.label, c.count) for c in d.answered}
    assert answered == {"receipt": ("申請書受付のお知らせ", 1), "documents_received": ("提出書類受領のお知らせ", 2)}
    assert {c.kind: (c.label, c.count) for c in d.by_staff} == {"adopted": ("採択のお知らせ", 3),
                                                                "invitation": ("面談のご案内", 1)}
    kinds = [c.kind for c in (*d.answered, *d.by_staff)]
    assert not any(kind.startswith("staff_") for kind in kinds)  # the bounce notice went to staff
    assert {c.kind: c.count for c in d.filtered} == {"out_of_office": 1, "list": 1, "bounce": 1, "junk": 1}
    assert (d.answered_total, d.filtered_total, d.is_empty) == (3, 4, False)


def test_the_program_shows_the_cap_regions_waiting_list_hours_and_days_left(seeded):
    p = facts(seeded).program
    assert (p.cap, p.adopted, p.queued, p.remaining) == (5, 3, 2, 0)
    assert [(c.label, c.count) for c in p.by_region] == [("ベトナム", 2), ("中国", 1)]
    assert [(w.position, w.reception_number, w.region) for w in p.waiting] == [(1, number(6), "インドネシア")]
    assert [(h.reception_number, h.region, h.used, h.left, h.cap) for h in p.hours] == [
        (number(3), "ベトナム", 2.5, 20.5, 23.0)]
    assert p.support_ends == TODAY + timedelta(days=60)
    assert p.support_days_left == (p.support_ends - datetime.now(TOKYO).date()).days


def test_a_later_period_still_shows_what_is_outstanding_but_counts_nothing_new(seeded):
    later = seeded.period.end + timedelta(hours=1)
    polled(seeded.services, later)
    d = facts(seeded, Period(seeded.period.end, later))
    assert [a.reception_number for a in d.awaiting] == [number(4), number(5)]
    assert not any(a.new for a in d.awaiting) and not d.bounced[0].new and not d.quarantined[0].new
    assert d.questions == () and d.answered == () and d.by_staff == () and d.filtered == ()
    assert d.needs_person == 5


def test_stuck_documents_and_a_silent_mailbox(seeded):
    days = seeded.services.settings.workflow.documents_reminder_days
    assert facts(seeded).stuck == ()
    late = seeded.period.end + timedelta(days=days, minutes=1)
    stuck = facts(seeded, Period(seeded.period.end, late)).stuck
    assert [s.command for s in stuck] == [f"mailbot documents {number(2)}", "mailbot health"]
    assert f"{number(2)} 株式会社テスト化学" in stuck[0].what and f"{days}日" in stuck[0].what
    assert "30分以上受信できていません" in stuck[1].what


# --- the words: text and HTML -----------------------------------------------------------------


class _Strict(HTMLParser):
    """Records the tags, and the src/href values, of an HTML document."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.links = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [value for name, value in attrs if name in ("src", "href") and value]


def test_the_text_digest_says_each_item_and_its_command(seeded):
    mail = digest.render(seeded.services, facts(seeded))
    day = seeded.period.end.astimezone(TOKYO).date().isoformat()
    assert mail.subject == f"【mailbot】日次ダイジェスト {day}：要対応 6件"
    text = mail.text
    order = ["1. 対応が必要なもの（6件）", "採択待ちの申請", "提出書類（Step 03）がそろった申請",
             "お申込者からの質問", "処理できなかったメール", "自動返信が届かなかったアドレス",
             "2. 自動で返信したメール（3通）", "3. 除外したメール（返信なし、4通）", "4. 事業の状況"]
    assert [text.index(part) for part in order] == sorted(text.index(part) for part in order)
    for words in [f"1. {number(4)}　株式会社<b>北斗</b>&電子【新着】", "地域：タイ　希望時間：15時間",
                  "押印：押印なし", f"→ mailbot adopt {number(5)}", f"→ mailbot documents {number(1)}",
                  "→ mailbot messages --class question", f"→ mailbot reprocess {seeded.broken_id}",
                  f"→ mailbot held --release {BOUNCED_TO}", "提出書類受領のお知らせ：2通", "不在通知（自動応答）：1通",
                  "ほかに、担当者の操作で送ったメール：採択のお知らせ 3通、面談のご案内 1通",
                  "迷惑メール・広告：1通", "採択：3 / 5社（採択待ち 2件、残り枠 0）",
                  "地域別の採択：ベトナム 2社、中国 1社", f"1. {number(6)}　株式会社キャンセル待ち工業（インドネシア）",
                  f"{number(3)}　有限会社山田製作所（ベトナム）：利用 2.5時間／残り 20.5時間（上限 23時間）",
                  f"残り{(TODAY + timedelta(days=60) - seeded.period.end.astimezone(TOKYO).date()).days}日"]:
        assert words in text, words
    assert "None" not in text and "{{" not in text and "新しいことはありませんでした" not in text


def test_the_html_digest_is_tables_escaped_and_self_contained(seeded):
    mail = digest.render(seeded.services, facts(seeded))
    parser = _Strict()
    parser.feed(mail.html)
    parser.close()
    assert parser.tags.count("table") >= 8 and "script" not in parser.tags and "img" not in parser.tags
    assert parser.links == [] and "http" not in mail.html.replace('http-equiv', '')
    assert '<meta charset="utf-8">' in mail.html and "<style" not in mail.html
    assert "株式会社&lt;b&gt;北斗&lt;/b&gt;&amp;電子" in mail.html and "<b>北斗</b>" not in mail.html
    for words in [number(4), number(5), f"mailbot adopt {number(4)}", f"mailbot reprocess {seeded.broken_id}",
                  "採択：3 / 5社", "キャンセル待ち", "利用時間", "配信エラー通知"]:
        assert words in mail.html, words


def test_every_mail_an_applicant_can_get_has_a_name_in_the_digest():
    applicant_mails = {p.name.removesuffix(".txt.j2") for p in (PROJECT_ROOT / "templates" / "ja").glob("*.txt.j2")
                       if not p.name.startswith(("_", "staff_"))}
    assert applicant_mails - set(KIND_LABELS) == set()


# --- when: the schedule, restarts, never twice -------------------------------------------------


def tokyo(text: str) -> datetime:
    """'2026-11-27 09:00' in Tokyo as UTC (2026-11-27 is a Friday)."""
    return datetime.fromisoformat(text).replace(tzinfo=TOKYO).astimezone(UTC)


def digests(services) -> list[DigestRun]:
    with Session(services.engine) as session:
        return list(session.exec(select(DigestRun).order_by(DigestRun.id)))


def digest_mails(services) -> list[OutboxMessage]:
    with Session(services.engine) as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.kind == digest.TEMPLATE)
                                 .order_by(OutboxMessage.id)))


def test_weekdays_at_nine_once_a_restart_after_nine_sends_at_once_weekends_nothing(tmp_path):
    services = make_services(tmp_path)
    due = lambda when: digest.send_if_due(services, now=tokyo(when))  # noqa: E731
    assert due("2026-11-27 08:00") is None and digests(services)[0].outcome == "baseline"
    assert due("2026-11-27 08:59") is None
    friday = due("2026-11-27 09:00")
    assert friday is not None and due("2026-11-27 09:00") is None and due("2026-11-27 17:00") is None
    assert due("2026-11-28 09:00") is None and due("2026-11-29 09:00") is None  # Saturday, Sunday
    assert due("2026-11-30 08:59") is None
    monday = due("2026-11-30 11:00")  # the daemon was down at 09:00
    assert monday is not None and due("2026-11-30 11:01") is None
    thursday = due("2026-12-03 10:00")  # down Tuesday to Thursday: one digest, not three
    assert thursday is not None and due("2026-12-03 10:30") is None
    runs = [r for r in digests(services) if r.outcome == "sent"]
    assert [r.fire_time for r in runs] == [tokyo("2026-11-27 09:00"), tokyo("2026-11-30 09:00"),
                                           tokyo("2026-12-01 09:00")]
    assert [r.outbox_id for r in runs] == [friday, monday, thursday]
    assert [(r.period_start, r.period_end) for r in runs[1:]] == [
        (tokyo("2026-11-27 09:00"), tokyo("2026-11-30 11:00")), (tokyo("2026-11-30 11:00"), tokyo("2026-12-03 10:00"))]


def test_the_schedule_and_time_zone_come_from_the_config(tmp_path):
    services = make_services(tmp_path, digest_schedule="30 17 * * *", digest_timezone="Europe/Berlin")
    start = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert digest.send_if_due(services, now=start) is None
    assert digest.send_if_due(services, now=datetime(2026, 11, 27, 16, 29, tzinfo=UTC)) is None
    assert digest.send_if_due(services, now=datetime(2026, 11, 27, 16, 30, tzinfo=UTC)) is not None  # 17:30 CET


def test_the_first_digest_owes_no_fire_time_from_before_the_database(tmp_path):
    services = make_services(tmp_path)
    with transaction(services.engine) as session:
        session.add(Application(reception_number="TS-2026-0001", state="received", sender="a@company.example.jp",
                                created_at=tokyo("2026-11-27 09:30")))
    assert digest.send_if_due(services, now=tokyo("2026-11-27 10:00")) is None
    assert digest.send_if_due(services, now=tokyo("2026-11-30 09:00")) is not None
    [run] = digests(services)
    assert run.period_start == tokyo("2026-11-27 09:30") and run.outcome == "sent"


def test_a_database_older_than_the_digest_gets_one_digest_at_once(tmp_path):
    services = make_services(tmp_path)
    with transaction(services.engine) as session:
        session.add(Application(reception_number="TS-2026-0001", state="received", sender="a@company.example.jp",
                                created_at=tokyo("2026-11-02 10:00")))
    assert digest.send_if_due(services, now=tokyo("2026-11-27 08:00")) is not None
    assert digest.send_if_due(services, now=tokyo("2026-11-27 08:30")) is None
    assert digest.send_if_due(services, now=tokyo("2026-11-27 09:00")) is not None


def test_send_now_ends_the_period_and_the_schedule_continues_from_there(tmp_path):
    services = make_services(tmp_path)
    digest.send_if_due(services, now=tokyo("2026-11-27 08:00"))  # the baseline
    by_hand = digest.send_now(services, now=tokyo("2026-11-27 08:30"))
    assert by_hand.outcome == "sent" and by_hand.fire_time is None
    assert digest.send_if_due(services, now=tokyo("2026-11-27 08:45")) is None
    scheduled = digest.send_if_due(services, now=tokyo("2026-11-27 09:00"))
    assert scheduled is not None
    assert digests(services)[-1].period_start == tokyo("2026-11-27 08:30")


def test_two_daemons_at_the_same_moment_send_one_digest(tmp_path):
    make_services(tmp_path)
    both = [make_services(tmp_path) for _ in range(2)]  # two processes' engines on one database
    digest.send_if_due(both[0], now=tokyo("2026-11-27 08:00"))
    results, barrier = [], threading.Barrier(2)

    def daemon(services):
        barrier.wait()
        results.append(digest.send_if_due(services, now=tokyo("2026-11-27 09:00")))

    threads = [threading.Thread(target=daemon, args=(s,)) for s in both]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results, key=lambda r: r is not None) == [None, results[0] or results[1]]
    assert len(digest_mails(both[0])) == 1


# --- an empty period ------------------------------------------------------------------------------


def test_an_empty_period_sends_nothing_new_with_the_program_state(tmp_path):
    services = make_services(tmp_path)
    digest.send_if_due(services, now=tokyo("2026-11-27 08:00"))
    polled(services, tokyo("2026-11-27 08:59"))
    outbox_id = digest.send_if_due(services, now=tokyo("2026-11-27 09:00"))
    [mail] = digest_mails(services)
    assert mail.id == outbox_id and mail.to_addrs == STAFF and mail.automatic and mail.html
    assert mail.subject == "【mailbot】日次ダイジェスト 2026-11-27：要対応 0件"
    left = max((TODAY + timedelta(days=60) - date(2026, 11, 27)).days, 0)
    for words in ["新しいことはありませんでした", "採択：0 / 5社", "支援期間", f"残り{left}日"]:
        assert words in mail.body and words in mail.html, words
    assert "キャンセル待ち：0件" in mail.body


def test_an_empty_period_is_skipped_when_the_config_says_so_but_not_a_full_one(tmp_path):
    services = make_services(tmp_path, digest_when_empty=False)
    digest.send_if_due(services, now=tokyo("2026-11-27 08:00"))
    polled(services, tokyo("2026-11-27 08:59"))
    assert digest.send_if_due(services, now=tokyo("2026-11-27 09:00")) is None
    assert digests(services)[-1].outcome == "empty" and digest_mails(services) == []
    assert digest.send_if_due(services, now=tokyo("2026-11-27 09:30")) is None  # that fire time is spent
    apply(services, 1)  # a complete application waits for adoption: not empty
    polled(services, tokyo("2026-11-30 08:59"))
    assert digest.send_if_due(services, now=tokyo("2026-11-30 09:00")) is not None
    [mail] = digest_mails(services)
    assert "要対応 1件" in mail.subject and number(1) in mail.body


def test_no_staff_address_records_the_period_and_sends_nothing(tmp_path, caplog):
    services = make_services(tmp_path, digest_to=[])
    digest.send_if_due(services, now=tokyo("2026-11-27 08:00"))
    assert digest.send_if_due(services, now=tokyo("2026-11-27 09:00")) is None
    assert digests(services)[-1].outcome == "no_recipients" and digest_mails(services) == []
    assert "not mailed" in caplog.text


# --- the command ----------------------------------------------------------------------------------


def test_preview_prints_the_digest_and_changes_nothing(seeded, tmp_path):
    path = write_config(tmp_path / "config.toml", config_data(tmp_path))
    runner = CliRunner()
    text = runner.invoke(cli, ["--config", str(path), "digest", "--preview"])
    assert text.exit_code == 0, text.output
    assert text.output.startswith("件名：【mailbot】日次ダイジェスト ") and f"mailbot adopt {number(4)}" in text.output
    html = runner.invoke(cli, ["--config", str(path), "digest", "--preview", "--html"])
    assert html.exit_code == 0 and html.output.startswith("<!DOCTYPE html>") and number(4) in html.output
    assert digests(seeded.services) == [] and digest_mails(seeded.services) == []
    neither = runner.invoke(cli, ["--config", str(path), "digest"])
    assert neither.exit_code == 2 and "--preview or --send" in neither.output


def test_send_says_when_nobody_can_get_it_or_the_mail_server_is_away(tmp_path):
    runner = CliRunner()
    nobody = write_config(tmp_path / "nobody.toml", config_data(tmp_path, digest_to=[]))
    refused = runner.invoke(cli, ["--config", str(nobody), "digest", "--send"])
    assert refused.exit_code == 1 and "digest NOT mailed (no_recipients)" in refused.output
    path = write_config(tmp_path / "config.toml", config_data(tmp_path))  # SMTP on port 1: nobody listens
    away = runner.invoke(cli, ["--config", str(path), "digest", "--send"])
    assert away.exit_code == 1 and "sent=0 retried=1 failed=0" in away.output
    services = make_services(tmp_path)
    [mail] = digest_mails(services)
    assert mail.status == "pending"  # the daemon's next cycle sends it
    assert [r.outcome for r in digests(services)] == ["no_recipients", "sent"]
    html_alone = runner.invoke(cli, ["--config", str(path), "digest", "--send", "--html"])
    assert html_alone.exit_code == 2 and "--html goes with --preview" in html_alone.output
