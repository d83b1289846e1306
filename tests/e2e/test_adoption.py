"""Step 02 end to end: apply by mail to a real Dovecot mailbox, one cycle, a staff command
through the real command line, the next cycle sends the mail to a real SMTP server.

Each scenario is GIVEN / WHEN / THEN; the mails are checked for recipients,
subject (reception number), threading headers, content and attachments.
"""

from __future__ import annotations

from sqlmodel import Session, select
from typer.testing import CliRunner

from mailbot import daemon, documents
from mailbot.cli import app as cli
from mailbot.forms.fill import corporate_number
from mailbot.models import OutboxMessage
from mailbot.services import build
from tests.e2e.test_step01 import CONTACT, SENDER, application, applications, body, subject
from tests.test_adoption import write_config

OTHER = "suzuki@other-kogyo.example.jp"
OTHER_CONTACT = "contact@other-kogyo.example.jp"


def mailbot(tmp_path, *args: str):
    """The staff command on this test's database (a config file naming the same SQLite file)."""
    return CliRunner().invoke(cli, ["--config", str(tmp_path / "config.toml"), *args])


def files_of(message) -> list[tuple[str, str, bytes]]:
    return [(part.get_filename(), part.get_content_type(), part.get_payload(decode=True))
            for part in message.message.iter_attachments()]


def our_ids(services, kind: str) -> list[str]:
    with Session(services.engine) as session:
        return list(session.exec(select(OutboxMessage.message_id).where(OutboxMessage.kind == kind)).all())


def expected_files(services) -> list[tuple[str, str, bytes]]:
    return [(f.filename, f.content_type, f.data) for f in documents.blank_files(services.settings)]


def test_apply_then_adopt_sends_the_two_documents_in_the_thread(services, mailbox, smtp_sink, tmp_path):
    """GIVEN a complete application answered with a receipt
    WHEN staff run `mailbot adopt` and the next cycle runs
    THEN contact and applicant get the adoption mail, in the receipt's thread, with the
    held-information list and the self-check sheet attached byte for byte."""
    write_config(tmp_path, cap=18)
    mailbox.deliver(application())
    daemon.run_once(services)
    [receipt] = smtp_sink.messages
    [app] = applications(services)
    result = mailbot(tmp_path, "adopt", "--by", "hirooka")
    assert result.exit_code == 0 and result.stdout.startswith(app.reception_number), result.output
    report = daemon.run_once(services)
    assert report.sent == 1
    [_, adopted] = smtp_sink.wait_for(2)
    assert sorted(adopted.rcpt_tos) == sorted([CONTACT, SENDER])
    assert app.reception_number in subject(adopted) and "採択" in subject(adopted)
    assert adopted.message["In-Reply-To"] == receipt.message["Message-ID"]
    references = str(adopted.message["References"]).split()
    assert references[-1] == receipt.message["Message-ID"] and len(references) == 2
    assert adopted.message["Auto-Submitted"] is None  # a staff decision, not a robot's reply
    text = body(adopted)
    assert "採択させていただくこととなりました" in text and "保有情報リスト" in text and "本メールへのご返信" in text
    assert files_of(adopted) == expected_files(services)
    assert [f[0] for f in files_of(adopted)] == ["保有情報リスト.xlsx", "情報管理体制セルフチェックシート.xlsx"]
    [app] = applications(services)
    assert app.state == "documents_requested"


def test_auto_adopt_answers_the_application_with_the_adoption_mail(make_settings, mailbox, smtp_sink):
    """GIVEN [workflow] auto_adopt = true
    WHEN a complete application arrives and one cycle runs
    THEN one mail answers it: the adoption mail that confirms receipt, with the two documents."""
    settings = make_settings()
    settings = settings.model_copy(update={"workflow": settings.workflow.model_copy(update={"auto_adopt": True})})
    services = build(settings)
    mailbox.deliver(application())
    daemon.run_once(services)
    [mail] = smtp_sink.wait_for(1)
    [app] = applications(services)
    assert (app.state, app.position) == ("documents_requested", 1)
    assert sorted(mail.rcpt_tos) == sorted([CONTACT, SENDER])
    assert app.reception_number in subject(mail) and "採択" in subject(mail)
    assert mail.message["In-Reply-To"] == app.thread_message_id  # their application mail
    assert mail.message["Auto-Submitted"] == "auto-generated"
    assert "申請書を受け付け、審査の結果、採択となりました" in body(mail)
    assert files_of(mail) == expected_files(services)


def test_a_withdrawal_offers_the_place_to_the_waiting_list(make_settings, mailbox, smtp_sink, tmp_path):
    """GIVEN a cap of 1: one application queued, one on the waiting list
    WHEN staff record the first one's withdrawal and the next cycle runs
    THEN the first gets an acknowledgement and the second a 繰り上げ mail in its own thread."""
    services = build(make_settings(cap=1))
    write_config(tmp_path, cap=1)
    mailbox.deliver(application())
    mailbox.deliver(application(sender=OTHER, contact_email=OTHER_CONTACT, company_name="株式会社アザー工業",
                                corporate_number=corporate_number("010401012345")))
    daemon.run_once(services)
    first, second = applications(services)
    assert (first.state, second.state) == ("queued", "waitlisted")
    result = mailbot(tmp_path, "withdraw", first.reception_number, "--reason", "電話で辞退", "--by", "uehara")
    assert result.exit_code == 0, result.output
    daemon.run_once(services)
    ack, offer = smtp_sink.wait_for(4)[2:]
    assert sorted(ack.rcpt_tos) == sorted([CONTACT, SENDER])
    assert first.reception_number in subject(ack) and "辞退" in subject(ack)
    assert sorted(offer.rcpt_tos) == sorted([OTHER_CONTACT, OTHER])
    assert second.reception_number in subject(offer) and "繰り上げ" in subject(offer)
    [waitlisted_reply] = our_ids(services, "waitlisted")
    assert offer.message["In-Reply-To"] == waitlisted_reply
    assert second.thread_message_id in str(offer.message["References"]).split()
    assert "受付順位：1番目" in body(offer) and "株式会社アザー工業" in body(offer)
    first, second = applications(services)
    assert (first.state, second.state, second.position) == ("withdrawn", "queued", 1)
