"""The whole program end to end, through the command line staff use and the mail the applicant gets:
apply -> adopt -> the two documents by reply -> interview invitation (.ics) -> three sessions ->
follow-up -> completed. Real Dovecot, real aiosmtpd, real database, one config file."""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, select
from typer.testing import CliRunner

from mailbot import daemon, workflow
from mailbot.cli import app as cli
from mailbot.models import Application
from tests.e2e.test_documents import answer, blanks, filled
from tests.e2e.test_schedule import calendar_of, write_config
from tests.e2e.test_step01 import CONTACT, SENDER, application, body, subject
from tests.test_schedule import in_days

STAFF = "kawano"


def staff(config_path: str, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--config", config_path, *args, "--by", STAFF],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def the_application(services) -> Application:
    with Session(services.engine) as session:
        return session.exec(select(Application)).one()


def cycle(services, smtp_sink) -> list:
    """One daemon cycle; the mails it sent."""
    before = len(smtp_sink.messages)
    daemon.run_once(services)
    return smtp_sink.messages[before:]


def in_thread(mail, earlier) -> bool:
    """The mail answers the applicant's thread: In-Reply-To one of ours, References carry the chain."""
    ids = {m.message["Message-ID"] for m in earlier}
    return mail.message["In-Reply-To"] in ids and earlier[0].message["Message-ID"] in mail.message["References"]


def test_apply_adopt_documents_interview_sessions_followup_completed(services, mailbox, smtp_sink, tmp_path):
    config_path = write_config(services.settings, tmp_path / "config.toml")
    mailbox.deliver(application())
    [receipt] = cycle(services, smtp_sink)
    number = the_application(services).reception_number
    assert number in subject(receipt) and sorted(receipt.rcpt_tos) == sorted([SENDER, CONTACT])

    staff(config_path, "adopt")
    [adoption_mail] = cycle(services, smtp_sink)
    assert "採択" in subject(adoption_mail) and number in subject(adoption_mail)
    assert adoption_mail.message["In-Reply-To"] == receipt.message["Message-ID"]
    files = blanks(adoption_mail.message)
    assert len(files) == 2 and all(name.endswith(".xlsx") for name in files)

    raw, _ = answer(adoption_mail.message, {name: filled(data, "顧客名簿") for name, data in files.items()})
    mailbox.deliver(raw)
    [documents_receipt] = cycle(services, smtp_sink)
    assert number in subject(documents_receipt) and the_application(services).state == "documents_received"
    assert all(name in body(documents_receipt) for name in files)

    staff(config_path, "schedule", number, "--step", "interview", "--at", in_days(7),
          "--place", "ジェトロ本部 会議室A", "--expert", "山田 太郎")
    [invitation] = cycle(services, smtp_sink)
    method, calendar = calendar_of(invitation)
    assert method == "REQUEST" and number in subject(invitation) and "山田 太郎" in body(invitation)
    assert CONTACT in invitation.rcpt_tos and in_thread(invitation, [receipt, adoption_mail, documents_receipt])
    [event] = calendar.walk("VEVENT")
    assert "ジェトロ本部 会議室A" in str(event["LOCATION"])

    for kind, hours in (("consultation", "8"), ("training", "6"), ("consultation", "5")):
        staff(config_path, "log-session", number, "--date", date.today().isoformat(), "--kind", kind,
              "--hours", hours)
    assert the_application(services).state == "in_service"
    [summary] = cycle(services, smtp_sink)  # 19 of 23 hours: past 80%, one summary
    assert number in subject(summary) and in_thread(summary, [receipt, adoption_mail, documents_receipt, invitation])
    for words in ("ご利用時間：19時間（上限23時間）", "残り時間：4時間", "うち管理職・社員向け研修：6時間"):
        assert words in body(summary), words

    staff(config_path, "schedule", number, "--step", "followup", "--at", in_days(14),
          "--url", "https://meet.example.jp/ts", "--expert", "山田 太郎")
    [followup] = cycle(services, smtp_sink)
    assert calendar_of(followup)[0] == "REQUEST" and "https://meet.example.jp/ts" in body(followup)
    staff(config_path, "complete", number)
    [thanks] = cycle(services, smtp_sink)
    assert number in subject(thanks) and "事例" in body(thanks)
    assert the_application(services).state == "completed"

    with Session(services.engine) as session:
        steps = [t.to_state for t in workflow.history(session, the_application(services))]
    assert steps == ["received", "queued", "adopted", "documents_requested", "documents_received",
                     "interview_scheduled", "in_service", "followup_scheduled", "completed"]
    assert all(sorted(m.rcpt_tos) == sorted([SENDER, CONTACT]) for m in smtp_sink.messages)
