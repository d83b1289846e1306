"""The consultation desk: one request per company per program year, its answers, its meeting (no servers).

Each request goes through ``desk.receive`` exactly as the pipeline calls it:
a stored raw message, the parsed mail, and the form's reading (built here
rather than read from a PDF: reading is tests/forms' business).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta, timezone
from itertools import count

import pytest
from icalendar import Calendar
from sqlmodel import select
from typer.testing import CliRunner

from mailbot import desk, samples, schedule
from mailbot.cli import app as cli
from mailbot.db import transaction
from mailbot.errors import WorkflowError
from mailbot.forms.consultation import sample_consultation_values
from mailbot.forms.reading import FormReading
from mailbot.intake import mime
from mailbot.intake.classify import Classification
from mailbot.models import Application, OutboxMessage, RawMessage
from mailbot.outbox import attachments_of
from mailbot.pipeline import Handling
from tests.test_schedule import in_days, make_services, write_config

SENDER = "sato@sample-seiki.co.jp"
CONTACT = "hanako.sato@sample-seiki.co.jp"
_uids = count(1)


@pytest.fixture
def services(tmp_path):
    return make_services(tmp_path)


def send_request(services, subject="個別相談の申し込み", sender=SENDER, **overrides) -> OutboxMessage | None:
    """One consultation-form mail handled as the pipeline would; the reply it caused, if any."""
    fields = sample_consultation_values(contact_email=CONTACT, **overrides)
    raw_bytes = samples.application_mail(b"%PDF-1.4 form", sender=sender, subject=subject)
    msg = mime.parse(raw_bytes)
    reading = FormReading(form="consultation", source="text", pages=1, form_page=1, fields=fields)
    verdict = Classification("consultation", "consultation-desk form", reading=reading)
    with transaction(services.engine) as session:
        raw = RawMessage(folder="INBOX", uidvalidity=1, uid=next(_uids), arrived_at=datetime.now(timezone.utc),
                         size=len(raw_bytes), sha256=hashlib.sha256(raw_bytes).hexdigest(), raw=raw_bytes,
                         mail_class="consultation", reason="consultation-desk form")
        session.add(raw)
        session.flush()
        desk.receive(Handling(services, session, raw, msg), verdict)
        session.flush()
        return session.exec(select(OutboxMessage).where(OutboxMessage.raw_message_id == raw.id,
                                                         ~OutboxMessage.kind.startswith("staff_"))).first()


def requests(services):
    with transaction(services.engine) as session:
        return desk.listing(session)


def notices(services) -> list[OutboxMessage]:
    with transaction(services.engine) as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.kind == "staff_desk_repeat")))


def test_a_complete_request_gets_its_own_number_and_a_receipt(services):
    reply = send_request(services)
    [request] = requests(services)
    year = datetime.now(timezone.utc).astimezone(schedule.TOKYO).year
    assert request.number == f"TS-C-{year}-0001" and request.state == "received"
    assert request.corporate_number == "8010401099887" and request.contact_email == CONTACT
    assert request.program_year == desk.program_year(services.settings.program.opens)
    assert reply.kind == "desk_received" and reply.to_addrs == [SENDER, CONTACT]
    assert request.number in reply.subject and "個別相談" in reply.subject
    assert "佐藤 花子 様" in reply.body and "1社1回" in reply.body and "2026-12-03 14:00" in reply.body
    assert reply.in_reply_to == request.thread_message_id and reply.in_reply_to is not None


@pytest.mark.parametrize("first, second", [
    ("株式会社サンプル精機", "㈱サンプル精機"),
    ("株式会社サンプル精機", "株式会社　サンプル精機"),
    ("株式会社サンプル精機", "株式会社ｻﾝﾌﾟﾙ精機"),
    ("（株）サンプル精機", "株式会社 サンプル精機"),
    ("有限会社ＡＢＣ工業", "㈲abc工業"),
])
def test_the_same_company_under_another_spelling_is_answered_once_per_company(services, first, second):
    send_request(services, company_name=first, corporate_number=None)
    reply = send_request(services, company_name=second, corporate_number=None, sender="other@sample-seiki.co.jp")
    earlier, again = requests(services)
    assert (earlier.state, again.state, again.repeat_of) == ("received", "refused", earlier.id)
    assert reply.kind == "desk_already_used" and again.number in reply.subject
    assert "1社1回限り" in reply.body and earlier.number in reply.body
    [notice] = notices(services)
    assert notice.to_addrs == ["staff@example.jp"] and again.number in notice.subject
    assert earlier.number in notice.body and second in notice.body and "mailbot consultations" in notice.body


def test_the_same_corporate_number_under_a_different_name_is_the_same_company(services):
    send_request(services)
    reply = send_request(services, company_name="サンプル精機ホールディングス株式会社")
    assert [r.state for r in requests(services)] == ["received", "refused"]
    assert reply.kind == "desk_already_used"


def test_different_corporate_numbers_are_different_companies_whatever_the_name(services):
    send_request(services, corporate_number="8010401099887")
    reply = send_request(services, corporate_number="1010401089234")
    assert [r.state for r in requests(services)] == ["received", "received"] and notices(services) == []
    assert reply.kind == "desk_received"


def test_a_new_program_year_is_a_new_chance(tmp_path):
    this_year = make_services(tmp_path)
    send_request(this_year)
    opens = this_year.settings.program.opens
    next_year = make_services(tmp_path, opens=date(opens.year + 1, opens.month, opens.day),
                              closes=date(opens.year + 2, 1, 31))
    reply = send_request(next_year)
    assert [(r.program_year, r.state) for r in requests(next_year)] == [
        (desk.program_year(opens), "received"), (desk.program_year(opens) + 1, "received")]
    assert reply.kind == "desk_received"


def test_missing_fields_are_listed_and_the_corrected_form_keeps_the_number(services):
    reply = send_request(services, topic=None, contact_phone=None)
    [request] = requests(services)
    assert request.state == "needs_fix" and reply.kind == "desk_fix_request"
    assert "「相談内容」" in reply.body and "「電話番号」" in reply.body and request.number in reply.subject
    fixed = send_request(services, subject=f"Re: {reply.subject}")
    [request] = requests(services)
    assert (request.state, fixed.kind, request.problems) == ("received", "desk_received", [])
    assert notices(services) == []


def test_a_done_consultation_gets_the_polite_answer_saying_it_was_used(services):
    send_request(services)
    with transaction(services.engine) as session:
        [request] = desk.listing(session)
        desk.move(request, "scheduled")
        desk.move(request, "done")
        session.add(request)
    reply = send_request(services, company_name="㈱サンプル精機")
    assert "ご利用いただいております" in reply.body


def test_program_year_is_the_fiscal_year_the_program_opens_in():
    assert desk.program_year(date(2024, 5, 27)) == 2024
    assert desk.program_year(date(2025, 3, 31)) == 2024
    assert desk.program_year(date(2025, 4, 1)) == 2025


# --- the desk meeting -----------------------------------------------------------------


def test_a_desk_request_is_scheduled_with_an_invitation_in_its_thread_and_cancelled(services):
    receipt = send_request(services)
    [request] = requests(services)
    with transaction(services.engine) as session:
        wanted = schedule.meeting(in_days(5), minutes=60, expert="鈴木 一郎", url="https://meet.example.jp/d")
        appointment, invite = schedule.schedule(session, services, request.number, "consultation", wanted,
                                                actor="izumi")
        [file] = attachments_of(session, invite.id)
    [event] = Calendar.from_ical(file.data).walk("VEVENT")
    assert str(event["UID"]) == appointment.uid and str(event["ATTENDEE"]) == f"mailto:{CONTACT}"
    assert "個別相談" in str(event["SUMMARY"]) and request.number in str(event["DESCRIPTION"])
    assert invite.to_addrs == [CONTACT, SENDER] and invite.in_reply_to == receipt.message_id
    assert request.number in invite.subject and "鈴木 一郎" in invite.body and "佐藤 花子 様" in invite.body
    assert requests(services)[0].state == "scheduled"
    with transaction(services.engine) as session:
        _, cancelled = schedule.cancel(session, services, f"C-{request.id}", "consultation", actor="izumi")
    assert requests(services)[0].state == "received" and "取り消し" in cancelled.subject


def test_steps_belong_to_their_kind_of_request(services):
    send_request(services)
    [request] = requests(services)
    with transaction(services.engine) as session:
        session.add(Application(reception_number="TS-2026-0001", state="documents_received", sender=SENDER))
    wanted = schedule.meeting(in_days(5), minutes=60, expert="鈴木", place="会議室B")
    for ref, step in ((request.number, "interview"), ("TS-2026-0001", "consultation")):
        with pytest.raises(WorkflowError, match=f"the {step} step is for"):
            with transaction(services.engine) as session:
                schedule.schedule(session, services, ref, step, wanted, actor="izumi")


def test_a_refused_request_cannot_be_scheduled(services):
    send_request(services)
    send_request(services, company_name="㈱サンプル精機")
    refused = requests(services)[1]
    wanted = schedule.meeting(in_days(5), minutes=60, expert="鈴木", place="会議室B")
    with pytest.raises(WorkflowError, match="state 'refused'"):
        with transaction(services.engine) as session:
            schedule.schedule(session, services, refused.number, "consultation", wanted, actor="izumi")


def test_the_consultations_command_lists_requests_as_json(tmp_path):
    config_path = write_config(tmp_path)
    services = make_services(tmp_path)
    send_request(services)
    send_request(services, company_name="㈱サンプル精機")
    result = CliRunner().invoke(cli, ["--config", config_path, "consultations", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["state"], r["company_name"]) for r in rows] == [
        ("received", "株式会社サンプル精機"), ("refused", "㈱サンプル精機")]
    assert rows[1]["repeat_of"] == rows[0]["id"]
    table = CliRunner().invoke(cli, ["--config", config_path, "consultations", "--state", "refused"])
    assert table.exit_code == 0 and "（1件）" in table.output and "refused" in table.output


def test_complete_marks_a_held_desk_meeting_done_and_refuses_one_never_scheduled(services):
    send_request(services)
    [request] = requests(services)
    with pytest.raises(WorkflowError, match="from 'received' to 'done'"):
        with transaction(services.engine) as session:
            schedule.complete(session, services, request.number, actor="izumi")
    with transaction(services.engine) as session:
        wanted = schedule.meeting(in_days(5), minutes=60, expert="鈴木", place="会議室B")
        appointment, _ = schedule.schedule(session, services, request.number, "consultation", wanted, actor="izumi")
    with transaction(services.engine) as session:
        owner, mail = schedule.complete(session, services, request.number, actor="izumi")
        held = session.get(type(appointment), appointment.id)
    assert (owner.state, mail, held.state) == ("done", None, "done")
