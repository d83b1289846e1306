"""Step 04 end to end: an application carried to documents_received, `mailbot schedule` through
the command line, one cycle, and the invitation with its .ics in a real SMTP server, in the
application's thread; a reschedule moves the same calendar event."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar
from sqlmodel import Session, select
from typer.testing import CliRunner

from mailbot import daemon, workflow
from mailbot.cli import app as cli
from mailbot.db import transaction
from mailbot.models import Application
from tests.e2e.test_step01 import CONTACT, SENDER, application, body, subject
from tests.test_schedule import in_days

TOKYO = ZoneInfo("Asia/Tokyo")


def write_config(settings, path) -> str:
    """The test's settings as the config file staff would point --config at."""
    sections = {
        "imap": {k: getattr(settings.imap, k) for k in ("host", "port", "username", "password", "security")},
        "smtp": {k: getattr(settings.smtp, k) for k in ("host", "port", "security", "from_address", "from_name")},
        "database": {"url": settings.database_url},
        "program": {"opens": settings.program.opens, "closes": settings.program.closes,
                    "cap": settings.program.cap, "signature": settings.program.signature},
        "service": {"rules_dir": str(settings.service.rules_dir), "templates_dir": str(settings.service.templates_dir)},
    }
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {value.isoformat() if hasattr(value, 'isoformat') else json.dumps(value)}"
                  for key, value in values.items() if value is not None]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def to_documents_received(services) -> Application:
    """Steps 02 and 03 as staff and the applicant would leave them (their own tests cover them)."""
    with transaction(services.engine) as session:
        app = session.exec(select(Application)).one()
        for state in ("adopted", "documents_requested", "documents_received"):
            workflow.move(session, app, state, actor="kawano", reason="test: carried to step 04")
        return app


def calendar_of(message) -> tuple[str | None, Calendar]:
    [part] = [p for p in message.message.iter_attachments() if p.get_content_type() == "text/calendar"]
    return part.get_param("method"), Calendar.from_ical(part.get_payload(decode=True))


def schedule(config_path: str, number: str, at: str):
    return CliRunner().invoke(cli, ["--config", config_path, "schedule", number, "--step", "interview",
                                    "--at", at, "--place", "ジェトロ本部 会議室A", "--expert", "山田 太郎",
                                    "--by", "kawano"])


def test_the_interview_invitation_arrives_with_a_valid_ics_in_the_application_thread(
        services, mailbox, smtp_sink, tmp_path):
    """GIVEN an application received and carried to documents_received
    WHEN staff run `mailbot schedule ID --step interview ...` and one cycle runs
    THEN the contact and the applicant get the invitation, threaded under our receipt, with an
    .ics (METHOD:REQUEST) whose event starts at the Tokyo time staff typed;
    WHEN staff schedule it again at another time
    THEN the next mail moves the same event (same UID, SEQUENCE 1) and says so."""
    mailbox.deliver(application())
    daemon.run_once(services)
    [receipt] = smtp_sink.messages
    app = to_documents_received(services)
    config_path = write_config(services.settings, tmp_path / "config.toml")

    at = in_days(7)
    result = schedule(config_path, app.reception_number, at)
    assert result.exit_code == 0, result.output
    assert daemon.run_once(services).sent == 1
    invite = smtp_sink.messages[-1]
    assert invite.rcpt_tos == [CONTACT, SENDER]
    assert app.reception_number in subject(invite) and "専門家との面談" in subject(invite)
    assert invite.message["In-Reply-To"] == receipt.message["Message-ID"]
    assert app.thread_message_id in str(invite.message["References"])
    assert "山田 太郎" in body(invite) and "会議室A" in body(invite)
    method, cal = calendar_of(invite)
    [event] = cal.walk("VEVENT")
    assert method == "REQUEST" and str(cal["METHOD"]) == "REQUEST"
    assert event.decoded("DTSTART") == datetime.fromisoformat(at).replace(tzinfo=TOKYO)
    assert str(event["ATTENDEE"]) == f"mailto:{CONTACT}"
    assert str(event["ORGANIZER"]) == f"mailto:{services.settings.smtp.from_address}"
    assert event.decoded("SEQUENCE") == 0

    assert schedule(config_path, app.reception_number, in_days(8)).exit_code == 0
    daemon.run_once(services)
    moved = smtp_sink.messages[-1]
    [again] = calendar_of(moved)[1].walk("VEVENT")
    assert str(again["UID"]) == str(event["UID"]) and again.decoded("SEQUENCE") == 1
    assert "日時変更" in subject(moved) and moved.message["In-Reply-To"] == invite.message["Message-ID"]
    with Session(services.engine) as session:
        assert session.get(Application, app.id).state == "interview_scheduled"
