"""Steps 04 and 06: invitations with a calendar file, reschedule, cancel, completion (no servers).

The database is a real SQLite file, the templates and rules the shipped
ones; every .ics is parsed back with icalendar, every mail read from the
outbox as it will be sent.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from sqlmodel import select
from typer.testing import CliRunner

from mailbot import PROJECT_ROOT, config, schedule, workflow
from mailbot.cli import app as cli
from mailbot.db import transaction
from mailbot.errors import WorkflowError
from mailbot.models import Application, OutboxMessage, Transition
from mailbot.outbox import attachments_of
from mailbot.services import build
from mailbot.tables.schedule import Appointment

TOKYO = ZoneInfo("Asia/Tokyo")
FROM = "chizai@example.jp"
CONTACT = "tanaka@sample-seiki.co.jp"
APPLIED_FROM = "soumu@sample-seiki.co.jp"
NUMBER = "TS-2026-0007"
THREAD = "<apply-7@sample-seiki.co.jp>"


def make_services(tmp_path, **program):
    """Services on a throwaway database, the program open around today (no server is contacted)."""
    today = date.today()
    data = {
        "imap": {"host": "127.0.0.1", "port": 1, "username": "chizai", "security": "none"},
        "smtp": {"host": "127.0.0.1", "port": 1, "security": "none", "from_address": FROM,
                 "from_name": "ジェトロ知的財産課"},
        "database": {"url": f"sqlite:///{tmp_path / 'mailbot.db'}"},
        "program": {"opens": today - timedelta(days=60), "closes": today + timedelta(days=90), **program},
        "staff": {"digest_to": ["staff@example.jp"]},
        "service": {"rules_dir": str(PROJECT_ROOT / "rules"), "templates_dir": str(PROJECT_ROOT / "templates")},
    }
    return build(config.validate(data, base_dir=tmp_path, origin="test"))


@pytest.fixture
def services(tmp_path):
    return make_services(tmp_path)


def add_application(services, state="documents_received") -> None:
    with transaction(services.engine) as session:
        session.add(Application(reception_number=NUMBER, state=state, company_name="株式会社サンプル精機",
                                contact_email=CONTACT, sender=APPLIED_FROM, thread_message_id=THREAD,
                                fields={"contact_name": "田中 花子"}))


def in_days(days: int, hour: int = 14) -> str:
    """A Tokyo wall-clock time ``days`` from today, as staff type it."""
    day = datetime.now(TOKYO).date() + timedelta(days=days)
    return f"{day.isoformat()} {hour:02d}:00"


def run_schedule(services, step="interview", at=None, ref=NUMBER, **where):
    where = where or {"place": "ジェトロ本部 5階 会議室A"}
    with transaction(services.engine) as session:
        wanted = schedule.meeting(at or in_days(7), minutes=60, expert="山田 太郎", **where)
        return schedule.schedule(session, services, ref, step, wanted, actor="kawano")


def state_of(services) -> str:
    with transaction(services.engine) as session:
        return session.exec(select(Application.state).where(Application.reception_number == NUMBER)).one()


def mails(services) -> list[OutboxMessage]:
    with transaction(services.engine) as session:
        return list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)))


def ics_of(services, mail: OutboxMessage) -> tuple[str, Calendar]:
    with transaction(services.engine) as session:
        [file] = attachments_of(session, mail.id)
    return file.content_type, Calendar.from_ical(file.data)


def event_of(calendar: Calendar):
    [event] = calendar.walk("VEVENT")
    return event


# --- the invitation ---------------------------------------------------------------


def test_the_interview_invitation_carries_a_valid_ics_and_says_the_same_in_japanese(services):
    add_application(services)
    at = in_days(7)
    appointment, mail = run_schedule(services, at=at)
    content_type, cal = ics_of(services, mail)
    event = event_of(cal)
    starts = datetime.fromisoformat(at).replace(tzinfo=TOKYO)
    assert content_type == "text/calendar; method=REQUEST"
    assert str(cal["METHOD"]) == "REQUEST" and cal.walk("VTIMEZONE")[0]["TZID"] == "Asia/Tokyo"
    assert str(event["UID"]) == appointment.uid and event.decoded("SEQUENCE") == 0
    assert appointment.uid.endswith("@example.jp")
    assert event.decoded("DTSTART") == starts and str(event.decoded("DTSTART").tzinfo) == "Asia/Tokyo"
    assert event.decoded("DTEND") - event.decoded("DTSTART") == timedelta(minutes=60)
    assert event.decoded("DTSTAMP").tzinfo is not None
    assert str(event["ORGANIZER"]) == f"mailto:{FROM}"
    assert str(event["ATTENDEE"]) == f"mailto:{CONTACT}" and event["ATTENDEE"].params["CN"] == "田中 花子"
    assert str(event["LOCATION"]) == "ジェトロ本部 5階 会議室A"
    assert "専門家との面談" in str(event["SUMMARY"]) and "海外における営業秘密漏えい対策支援事業" in str(event["SUMMARY"])
    assert "山田 太郎" in str(event["DESCRIPTION"]) and NUMBER in str(event["DESCRIPTION"])
    weekday = "月火水木金土日"[starts.weekday()]
    assert f"{starts.year}年{starts.month}月{starts.day}日（{weekday}）" in mail.body
    assert "14:00〜15:00" in mail.body and "山田 太郎" in mail.body and "会議室A" in mail.body
    assert NUMBER in mail.subject and "専門家との面談のご案内" in mail.subject
    assert mail.to_addrs == [CONTACT, APPLIED_FROM] and mail.in_reply_to == THREAD
    assert "田中 花子 様" in mail.body
    assert state_of(services) == "interview_scheduled"


def test_an_online_meeting_gives_its_link_as_url_and_location(services):
    add_application(services)
    _, mail = run_schedule(services, url="https://meet.example.jp/abc-123")
    event = event_of(ics_of(services, mail)[1])
    assert str(event["URL"]) == "https://meet.example.jp/abc-123"
    assert str(event["LOCATION"]) == "https://meet.example.jp/abc-123"
    assert "https://meet.example.jp/abc-123" in mail.body


def test_the_history_says_who_scheduled_when_and_with_whom(services):
    add_application(services)
    run_schedule(services)
    with transaction(services.engine) as session:
        [row] = session.exec(select(Transition)).all()
    assert (row.from_state, row.to_state, row.actor) == ("documents_received", "interview_scheduled", "kawano")
    assert "山田 太郎" in row.reason and "14:00" in row.reason


# --- reschedule and cancel ---------------------------------------------------------------


def test_a_reschedule_keeps_the_uid_raises_the_sequence_and_says_what_changed(services):
    add_application(services)
    first, invite = run_schedule(services, at=in_days(7, 14))
    second, moved = run_schedule(services, at=in_days(8, 10))
    assert second.id == first.id
    old, new = event_of(ics_of(services, invite)[1]), event_of(ics_of(services, moved)[1])
    assert str(new["UID"]) == str(old["UID"]) and new.decoded("SEQUENCE") == 1
    assert new.decoded("DTSTART").hour == 10
    assert "日時変更" in moved.subject and NUMBER in moved.subject
    assert "変更前" in moved.body and "14:00〜15:00" in moved.body and "10:00〜11:00" in moved.body
    assert moved.in_reply_to == invite.message_id
    assert state_of(services) == "interview_scheduled"


def test_a_cancel_sends_method_cancel_with_the_same_uid_and_a_higher_sequence(services):
    add_application(services)
    appointment, _ = run_schedule(services)
    run_schedule(services, at=in_days(9))
    with transaction(services.engine) as session:
        cancelled, mail = schedule.cancel(session, services, NUMBER, "interview", actor="kawano",
                                          reason="専門家の都合")
    content_type, cal = ics_of(services, mail)
    event = event_of(cal)
    assert content_type == "text/calendar; method=CANCEL" and str(cal["METHOD"]) == "CANCEL"
    assert str(event["UID"]) == appointment.uid and event.decoded("SEQUENCE") == 2
    assert str(event["STATUS"]) == "CANCELLED"
    assert "取り消し" in mail.subject and NUMBER in mail.subject and "専門家の都合" in mail.body
    assert cancelled.state == "cancelled"
    assert state_of(services) == "documents_received"  # waiting for a new date again


def test_after_a_cancel_a_new_date_is_a_new_calendar_event(services):
    add_application(services)
    first, _ = run_schedule(services)
    with transaction(services.engine) as session:
        schedule.cancel(session, services, NUMBER, "interview", actor="kawano")
    second, mail = run_schedule(services, at=in_days(10))
    assert second.uid != first.uid and second.sequence == 0
    assert "のご案内" in mail.subject and state_of(services) == "interview_scheduled"


def test_cancelling_what_was_never_scheduled_is_refused_naming_the_state(services):
    add_application(services)
    with pytest.raises(WorkflowError, match="no interview is scheduled.*documents_received"):
        with transaction(services.engine) as session:
            schedule.cancel(session, services, NUMBER, "interview", actor="kawano")


# --- refused -------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["adopted", "documents_requested", "in_service", "completed"])
def test_an_interview_outside_documents_received_is_refused_naming_the_state(services, state):
    add_application(services, state=state)
    with pytest.raises(WorkflowError, match=f"'{state}'.*documents_received"):
        run_schedule(services)
    assert mails(services) == [] and state_of(services) == state


def test_a_followup_needs_in_service(services):
    add_application(services, state="interview_scheduled")
    with pytest.raises(WorkflowError, match="'interview_scheduled'.*in_service"):
        run_schedule(services, step="followup")


@pytest.mark.parametrize("words, expected", [
    ({"at": "2020-01-06 10:00"}, "in the past"),
    ({"place": None, "url": None}, "--place.*--url"),
    ({"url": "meet.example.jp/x"}, "not a web address"),
    ({"at": "来週の火曜"}, "not a date and time"),
    ({"at": "2026-12-03"}, "give the time too"),
    ({"expert": " "}, "--expert"),
])
def test_what_cannot_make_an_invitation_is_refused(services, words, expected):
    add_application(services)
    values = {"at": in_days(7), "minutes": 60, "expert": "山田 太郎", "place": "会議室A", "url": None, **words}
    with pytest.raises(WorkflowError, match=expected):
        with transaction(services.engine) as session:
            schedule.schedule(session, services, NUMBER, "interview", schedule.meeting(**values), actor="k")
    assert mails(services) == [] and state_of(services) == "documents_received"


def test_an_unknown_step_and_a_time_after_support_ends_are_refused(tmp_path):
    services = make_services(tmp_path, support_ends=date.today() + timedelta(days=5))
    add_application(services)
    with pytest.raises(WorkflowError, match="unknown step 'lunch'.*interview, followup, consultation"):
        run_schedule(services, step="lunch")
    with pytest.raises(WorkflowError, match="after the support period ends"):
        run_schedule(services, at=in_days(6))


# --- follow-up and completion -----------------------------------------------------------


def test_followup_then_complete_sends_the_closing_thank_you_with_the_publicity_request(services):
    add_application(services, state="in_service")
    followup, invite = run_schedule(services, step="followup")
    assert "フォローアップ面談" in invite.subject and state_of(services) == "followup_scheduled"
    assert "フォローアップ面談" in str(event_of(ics_of(services, invite)[1])["SUMMARY"])
    with transaction(services.engine) as session:
        _, mail = schedule.complete(session, services, NUMBER, actor="kawano")
        done = session.get(Appointment, followup.id)
    assert state_of(services) == "completed" and done.state == "done"
    assert NUMBER in mail.subject and "事例紹介等へのご協力のお願い" in mail.subject
    assert "ジェトロウェブサイト" in mail.body and "事例" in mail.body
    assert mail.to_addrs == [CONTACT, APPLIED_FROM] and mail.in_reply_to == invite.message_id


def test_complete_before_the_followup_is_refused_naming_the_state(services):
    add_application(services, state="in_service")
    with pytest.raises(WorkflowError, match="'in_service' to 'completed'"):
        with transaction(services.engine) as session:
            schedule.complete(session, services, NUMBER, actor="kawano")


# --- the command line ------------------------------------------------------------------


def write_config(tmp_path) -> str:
    """A config file for the CLI runner on this test's database."""
    today = date.today()
    path = tmp_path / "config.toml"
    path.write_text(f"""
[imap]
host = "127.0.0.1"
port = 1
username = "chizai"
security = "none"
[smtp]
host = "127.0.0.1"
port = 1
security = "none"
from_address = "{FROM}"
[database]
url = "sqlite:///{tmp_path / 'mailbot.db'}"
[program]
opens = {today - timedelta(days=60)}
closes = {today + timedelta(days=90)}
[service]
rules_dir = "{PROJECT_ROOT / 'rules'}"
templates_dir = "{PROJECT_ROOT / 'templates'}"
""", encoding="utf-8")
    return str(path)


def test_the_commands_schedule_cancel_and_refuse_with_exit_1(tmp_path):
    config_path = write_config(tmp_path)
    services = build(config.load(config_path))
    add_application(services)
    runner = CliRunner()
    ok = runner.invoke(cli, ["--config", config_path, "schedule", NUMBER, "--step", "interview",
                             "--at", in_days(7), "--place", "会議室A", "--expert", "山田 太郎", "--by", "kawano"])
    assert ok.exit_code == 0, ok.output
    assert "interview scheduled" in ok.output and CONTACT in ok.output
    refused = runner.invoke(cli, ["--config", config_path, "schedule", NUMBER, "--step", "followup",
                                  "--at", in_days(7), "--url", "https://meet.example.jp/x", "--expert", "山田"])
    assert refused.exit_code == 1 and "mailbot: " in refused.output and "'interview_scheduled'" in refused.output
    cancelled = runner.invoke(cli, ["--config", config_path, "cancel", NUMBER, "--step", "interview"])
    assert cancelled.exit_code == 0 and "sequence 1" in cancelled.output
    with transaction(services.engine) as session:
        [appointment] = session.exec(select(Appointment)).all()
    assert appointment.minutes == services.settings.workflow.meeting_minutes and appointment.actor == "kawano"


def test_the_interview_is_done_once_the_followup_is_set_and_cannot_be_cancelled_after_it(services):
    add_application(services)
    interview, _ = run_schedule(services)
    with transaction(services.engine) as session:
        app = session.exec(select(Application)).one()
        workflow.move(session, app, "in_service", actor="kawano", reason="interview held")
    with pytest.raises(WorkflowError, match="interview cannot be cancelled in state 'in_service'"):
        with transaction(services.engine) as session:
            schedule.cancel(session, services, NUMBER, "interview", actor="kawano")
    run_schedule(services, step="followup")
    with transaction(services.engine) as session:
        states = {a.step: a.state for a in session.exec(select(Appointment))}
    assert states == {"interview": "done", "followup": "scheduled"}


def test_applicant_text_cannot_break_the_calendar_file(services):
    with transaction(services.engine) as session:
        session.add(Application(reception_number=NUMBER, state="documents_received", sender=APPLIED_FROM,
                                company_name='株式会社"X"\r\nATTENDEE:mailto:evil@attacker.example',
                                contact_email=CONTACT, thread_message_id=THREAD,
                                fields={"contact_name": '田中";RSVP=TRUE\r\nORGANIZER:mailto:evil@attacker.example'}))
    _, mail = run_schedule(services)
    raw = ics_of(services, mail)[1].to_ical().decode()
    event = event_of(Calendar.from_ical(raw))
    people = [(k, str(v)) for k, v in event.property_items() if k in ("ATTENDEE", "ORGANIZER")]
    assert people == [("ATTENDEE", f"mailto:{CONTACT}"), ("ORGANIZER", f"mailto:{FROM}")]
    assert str(event["ATTENDEE"]) == f"mailto:{CONTACT}" and event["ATTENDEE"].params["RSVP"] == "FALSE"
    assert "\n" not in event["ATTENDEE"].params["CN"] and str(event["ORGANIZER"]) == f"mailto:{FROM}"
