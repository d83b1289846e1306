"""The log of one real cycle: one "processed" line per message, nothing a company wrote, no password.

Real Dovecot, real SMTP server, real PDFs; the log is configured as the
daemon configures it (``logs.configure`` with the settings' secrets) and read
from stderr, line by line, as journald would take it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from sqlmodel import Session, select

from mailbot import daemon, logs, pipeline, samples
from mailbot.errors import MailError
from mailbot.forms.fill import corporate_number, render_application, sample_values
from mailbot.models import Application, RawMessage
from mailbot.tables.desk import ConsultationRequest
from tests.test_logs import parse_keyvalue

CORPUS = Path(__file__).parent.parent / "corpus"
SEIKI = sample_values(contact_email="tanaka@sample-seiki.example.jp")
KOGYO = sample_values(company_name="サンプル工業株式会社", corporate_number=corporate_number("030401077703"),
                      address="大阪府大阪市北区梅田3-3-3", representative_name="鈴木 一郎",
                      contact_email="kato@sample-kogyo.example.jp")
#: What a company wrote in its form: none of it may reach the log.
CONTENTS = [SEIKI[k] for k in ("company_name", "corporate_number", "address", "representative_name",
                               "contact_phone", "current_issues", "base_name")] + \
           [KOGYO[k] for k in ("company_name", "corporate_number", "address", "representative_name")]


@pytest.fixture(autouse=True)
def root_logger():
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if isinstance(h.formatter, (logs.KeyValueFormatter, logs.JsonFormatter))]:
        root.removeHandler(handler)
    root.setLevel(level)


def deliver_four(mailbox) -> None:
    mailbox.deliver(samples.application_mail(render_application(SEIKI), sender=SEIKI["contact_email"]))
    mailbox.deliver(samples.application_mail(render_application(KOGYO, seal="none"), sender=KOGYO["contact_email"]))
    mailbox.deliver(samples.out_of_office_mail(sender="suzuki@example.co.jp"))
    mailbox.deliver(samples.attachment_mail(b"PK\x03\x04 not a pdf", "申請書.docx", "application",
                                            "vnd.openxmlformats-officedocument.wordprocessingml.document",
                                            sender="yamada@example.co.jp"))


def records(stderr: str, log_format: str) -> list[dict]:
    """Every line of the log as fields; a line that does not parse fails the test."""
    parse = json.loads if log_format == "json" else parse_keyvalue
    return [parse(line) for line in stderr.splitlines()]


@pytest.mark.parametrize("log_format", ["json", "keyvalue"])
def test_one_processed_line_per_message_with_class_verdict_and_reception_number(
        services, mailbox, smtp_sink, capsys, log_format):
    logs.configure(log_format, secrets=logs.secrets_of(services.settings))
    deliver_four(mailbox)
    daemon.run_once(services)
    stderr = capsys.readouterr().err
    lines = records(stderr, log_format)
    processed = [r for r in lines if r["msg"] == "processed"]
    with Session(services.engine) as session:
        raw_ids = {str(r.id): r.uid for r in session.exec(select(RawMessage))}
        numbers = {a.state: a.reception_number for a in session.exec(select(Application))}
    assert sorted(str(r["message"]) for r in processed) == sorted(raw_ids)  # exactly one line each
    by_verdict = {r["verdict"]: r for r in processed}
    assert set(by_verdict) == {"queued", "needs_fix", "ignored", "for_staff"}
    queued, needs_fix = by_verdict["queued"], by_verdict["needs_fix"]
    assert (queued["class"], queued["reception_number"], _list(queued["reply"])) == (
        "application", numbers["queued"], ["receipt"])
    assert (needs_fix["reception_number"], _list(needs_fix["reply"]), _list(needs_fix["problems"])) == (
        numbers["needs_fix"], ["fix_request"], ["seal_missing"])
    assert (by_verdict["ignored"]["class"], by_verdict["ignored"]["kind"]) == ("automatic", "out_of_office")
    assert "reply" not in by_verdict["ignored"] and "reception_number" not in by_verdict["ignored"]
    assert (by_verdict["for_staff"]["class"], _list(by_verdict["for_staff"]["reply"])) == (
        "question", ["pdf_unreadable"])
    assert all(str(r["uid"]) == str(raw_ids[str(r["message"])]) for r in processed)
    [poll] = [r for r in lines if r["msg"] == "poll"]
    assert (str(poll["stored"]), str(poll["processed"]), str(poll["moved"])) == ("4", "4", "4")
    _nothing_a_company_wrote(stderr, services)


def _list(value) -> list[str]:
    """JSON keeps a list; key=value joins it with commas."""
    return value if isinstance(value, list) else value.split(",")


def _nothing_a_company_wrote(stderr: str, services) -> None:
    for value in CONTENTS:
        assert str(value) not in stderr, value
    assert services.settings.imap.password and services.settings.imap.password not in stderr


def test_a_desk_request_and_a_quarantined_mail_each_get_their_line(services, mailbox, smtp_sink, capsys):
    logs.configure("json", secrets=logs.secrets_of(services.settings))
    mailbox.deliver((CORPUS / "18-consultation-form.eml").read_bytes())
    daemon.run_once(services)
    with Session(services.engine) as session:
        request = session.exec(select(ConsultationRequest)).one()
        raw_id = session.exec(select(RawMessage.id)).one()
    # The same mail again, as `mailbot reprocess` would after a failure: kept for staff with its error.
    pipeline.quarantine(services, raw_id, MailError("the PDF reader is not installed"))
    lines = records(capsys.readouterr().err, "json")
    desk_line, quarantined = [r for r in lines if r["msg"] == "processed"]
    assert (desk_line["class"], desk_line["verdict"], desk_line["reception_number"]) == (
        "consultation", request.state, request.number)
    assert request.number.startswith("TS-C-") and desk_line["reply"] == ["desk_received"]
    assert (quarantined["level"], quarantined["message"], quarantined["verdict"], quarantined["error"]) == (
        "warning", raw_id, "quarantined", "MailError")
    assert "PDF reader" not in json.dumps(quarantined, ensure_ascii=False)  # the text stays in the database
