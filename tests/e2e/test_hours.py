"""Step 05 end to end: an application in a real Dovecot mailbox gets its receipt; staff set the
interview, log three sessions with `mailbot log-session`; the next cycle mails the 80% summary
through a real SMTP server.

GIVEN / WHEN / THEN; the mailbox, the SMTP server, the database and the
command line (typer's CliRunner on a real config file) are real.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from mailbot import PROJECT_ROOT, config, daemon, workflow
from mailbot.cli import app as cli
from mailbot.db import transaction
from mailbot.models import Application, Transition
from mailbot.render import japanese_date
from mailbot.services import build
from tests.e2e.conftest import PROGRAM_ADDRESS
from tests.e2e.test_step01 import (
    CONTACT,
    SENDER,
    application,
    applications,
    body,
    subject,
)
from tests.test_hours import write_config

TODAY = date.today()
#: Staff's steps 02-04, which other commands carry out; set up here through the workflow itself.
TO_INTERVIEW = ["adopted", "documents_requested", "documents_received", "interview_scheduled"]


@pytest.fixture
def config_path(imap_settings, smtp_sink, tmp_path):
    """One config file for the daemon and the commands: this test's mailbox, sink and database."""
    imap = {key: value for key, value in imap_settings.model_dump().items() if value is not None}
    return write_config(tmp_path / "config.toml", {
        "imap": imap,
        "smtp": {"host": "127.0.0.1", "port": smtp_sink.port, "security": "none",
                 "from_address": PROGRAM_ADDRESS, "from_name": "ジェトロ知的財産課"},
        "database": {"url": f"sqlite:///{tmp_path / 'mailbot.db'}"},
        "program": {"opens": TODAY - timedelta(days=30), "closes": TODAY + timedelta(days=60),
                    "support_ends": TODAY + timedelta(days=90), "cap": 18, "signature": "ジェトロ知的財産課"},
        "workflow": {"hours_notice_percent": 80},
        "service": {"rules_dir": str(PROJECT_ROOT / "rules"), "templates_dir": str(PROJECT_ROOT / "templates")},
    })


def log_session(config_path, number, day, kind, hours):
    result = CliRunner().invoke(cli, ["--config", str(config_path), "log-session", number, "--date", day.isoformat(),
                                      "--kind", kind, "--hours", str(hours), "--by", "hirooka"])
    assert result.exit_code == 0, result.output
    return result.output


def test_three_sessions_then_one_hours_summary_at_80_percent(config_path, mailbox, smtp_sink):
    """GIVEN an application answered with a receipt and brought to interview_scheduled
    WHEN staff log 8 h consultation, 6 h training and 5 h consultation, and a cycle runs
    THEN the application is in_service from the first session on, and the cycle sends exactly
    one hours summary (19 of 23 h, 4 h left) to the contact and the applicant, in the thread."""
    services = build(config.load(config_path, environ={}))
    mailbox.deliver(application())
    daemon.run_once(services)
    [receipt] = smtp_sink.messages
    [app] = applications(services)
    with transaction(services.engine) as session:
        row = session.get(Application, app.id)
        for state in TO_INTERVIEW:
            workflow.move(session, row, state, actor="kouno", reason="set up for step 05")

    days = [TODAY - timedelta(days=3), TODAY - timedelta(days=2), TODAY - timedelta(days=1)]
    first = log_session(config_path, app.reception_number, days[0], "consultation", 8)
    assert "8.0 h used, 15.0 h left" in first and "now in_service" in first
    log_session(config_path, app.reception_number, days[1], "training", 6)
    third = log_session(config_path, app.reception_number, days[2], "consultation", 5)
    assert "19.0 h used, 4.0 h left" in third and "82% used: hours summary mailed" in third

    report = daemon.run_once(services)
    assert report.sent == 1
    [summary] = smtp_sink.messages[1:]
    assert sorted(summary.rcpt_tos) == sorted([SENDER, CONTACT])
    assert app.reception_number in subject(summary) and "ご利用時間のお知らせ" in subject(summary)
    assert summary.message["In-Reply-To"] == receipt.message["Message-ID"]
    assert app.thread_message_id in summary.message["References"]
    assert summary.message["Auto-Submitted"] == "auto-generated"
    text = body(summary)
    assert "佐藤 花子 様" in text and "上限の80%に達しました" in text
    assert "ご利用時間：19時間（上限23時間）" in text and "残り時間：4時間" in text
    assert "うち管理職向けコンサルテーション：13時間" in text and "うち管理職・社員向け研修：6時間" in text
    assert f"{japanese_date(days[1])}　管理職・社員向け研修　6時間" in text
    assert f"支援期間：{japanese_date(TODAY + timedelta(days=90))}まで" in text

    assert daemon.run_once(services).sent == 0  # the notice goes once
    with Session(services.engine) as session:
        assert session.get(Application, app.id).state == "in_service"
        started = session.exec(select(Transition).where(Transition.to_state == "in_service")).one()
    assert (started.from_state, started.actor) == ("interview_scheduled", "hirooka")


def test_a_session_past_the_cap_is_refused_by_the_command(config_path, mailbox, smtp_sink):
    """GIVEN an application in interview_scheduled with 22 h logged
    WHEN staff log 1.5 h more
    THEN the command exits 1 naming the hours used and left; the only hours mail is the 80% notice."""
    services = build(config.load(config_path, environ={}))
    mailbox.deliver(application())
    daemon.run_once(services)
    [app] = applications(services)
    with transaction(services.engine) as session:
        row = session.get(Application, app.id)
        for state in TO_INTERVIEW:
            workflow.move(session, row, state, actor="kouno", reason="set up for step 05")
    log_session(config_path, app.reception_number, TODAY, "training", 22)
    refused = CliRunner().invoke(cli, ["--config", str(config_path), "log-session", app.reception_number,
                                       "--date", TODAY.isoformat(), "--kind", "training", "--hours", "1.5"])
    assert refused.exit_code == 1 and "22.0 h used, 1.0 h left" in refused.output
    daemon.run_once(services)
    [_, notice] = smtp_sink.messages  # the receipt, and the one 80% notice the 22 h caused
    assert "ご利用時間のお知らせ" in subject(notice) and "残り時間：1時間" in body(notice)
