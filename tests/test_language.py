"""English where the applicant asked for it: the twin templates, how the language is chosen,
replies and letters written in it, and the `language` and `preview` commands.

The database is a real SQLite file, the templates the shipped ones; the
commands run through typer's CliRunner against a real config file.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from mailbot import PROJECT_ROOT, config, language, letters, replies
from mailbot.cli import app as cli
from mailbot.commands.preview import SAMPLES, sample_context
from mailbot.db import transaction
from mailbot.errors import TemplateError, WorkflowError
from mailbot.intake.message import InboundMessage
from mailbot.models import Application, OutboxMessage, RawMessage
from mailbot.pipeline import Handling
from mailbot.services import build
from tests.test_hours import (
    APPLIED_FROM,
    CONTACT,
    add_application,
    config_data,
    log,
    make_services,
    write_config,
)

TEMPLATES = PROJECT_ROOT / "templates"

def names(folder: str) -> set[str]:
    return {path.name.removesuffix(".txt.j2") for path in (TEMPLATES / folder).glob("*.txt.j2")}


def test_every_applicant_template_has_an_english_twin():
    # A new applicant template comes with its templates/en twin: without it an applicant who
    # asked for English gets a TemplateError (staff can answer with `mailbot language ID ja`).
    applicant = {name for name in names("ja") if not name.startswith("staff_")}  # staff read Japanese
    assert applicant - names("en") == set()
    assert names("en") <= applicant  # no English template without its Japanese original


@pytest.mark.parametrize("name", sorted({n for n in names("en") if not n.startswith("_")}))
def test_every_english_template_keeps_the_blocks_and_the_reception_number(name):
    text = (TEMPLATES / "en" / f"{name}.txt.j2").read_text(encoding="utf-8")
    assert "{% block subject %}" in text and "{% block body %}" in text and "reception_number" in text
    assert '{% include "en/_greeting.txt.j2" %}' in text and '{% include "en/_signature.txt.j2" %}' in text
    assert '"ja/' not in text


# --- choosing the language ---------------------------------------------------------------


def application(services, number="TS-2026-0001", **fields) -> Application:
    add_application(services, number, state="queued")
    with transaction(services.engine) as session:
        row = session.exec(select(Application).where(Application.reception_number == number)).one()
        row.fields = {**row.fields, **fields}
        session.add(row)
    return row


def language_of(services, number="TS-2026-0001") -> str:
    with Session(services.engine) as session:
        row = session.exec(select(Application).where(Application.reception_number == number)).one()
        return language.of(session, services, row)


def choose(services, chosen, number="TS-2026-0001"):
    with transaction(services.engine) as session:
        row = session.exec(select(Application).where(Application.reception_number == number)).one()
        return language.choose(session, row, chosen, by="kawano")


def test_japanese_by_default_english_when_staff_record_it(tmp_path):
    services = make_services(tmp_path)
    application(services)
    assert language_of(services) == "ja"
    assert choose(services, "en").set_by == "kawano"
    assert language_of(services) == "en"
    choose(services, "ja")
    assert language_of(services) == "ja"


def test_the_config_default_and_a_form_field(tmp_path):
    services = make_services(tmp_path, workflow_={"language": "en"})
    application(services, "TS-2026-0001")
    application(services, "TS-2026-0002", mail_language="JA")
    application(services, "TS-2026-0003", mail_language="fr")  # not one we write: the default
    assert [language_of(services, f"TS-2026-000{i}") for i in (1, 2, 3)] == ["en", "ja", "en"]
    choose(services, "en", "TS-2026-0002")  # staff's word beats the form's
    assert language_of(services, "TS-2026-0002") == "en"


def test_a_language_without_templates_is_refused(tmp_path):
    services = make_services(tmp_path)
    application(services)
    with pytest.raises(WorkflowError, match="language must be one of ja, en, not 'fr'"):
        choose(services, "fr")


# --- replies and letters in the chosen language ---------------------------------------------


def outbox(services) -> list[OutboxMessage]:
    with Session(services.engine) as session:
        return list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all())


def test_a_letter_goes_in_english_to_an_applicant_who_asked(tmp_path):
    services = make_services(tmp_path)
    application(services)
    application(services, "TS-2026-0002", company="株式会社ほかの会社", corporate="9876543210987")
    choose(services, "en")
    with transaction(services.engine) as session:
        for number in ("TS-2026-0001", "TS-2026-0002"):
            row = session.exec(select(Application).where(Application.reception_number == number)).one()
            letters.send(session, services, row, "waitlisted", position=2)
    english, japanese = outbox(services)
    assert english.subject.endswith("You are on the waiting list (reception number TS-2026-0001)")
    assert "Dear 田中 花子," in english.body and "Place on the waiting list: 2" in english.body
    assert english.to_addrs == [CONTACT, APPLIED_FROM]
    assert "キャンセル待ち順位：2番目" in japanese.body and "TS-2026-0002" in japanese.subject


def handling(session, services, sender=APPLIED_FROM, uid=1) -> Handling:
    raw = RawMessage(folder="INBOX", uidvalidity=1, uid=uid, size=1, raw=b"x", sha256="0" * 64,
                     arrived_at=datetime.now(UTC))
    session.add(raw)
    session.flush()
    msg = InboundMessage(message_id="<m1@sample-seiki.example.jp>", sender=sender, sender_name="Tanaka",
                         to=("chizai@example.jp",), cc=(), subject="申請書", text="", attachments=(),
                         in_reply_to=None, references=())
    return Handling(services=services, session=session, raw=raw, msg=msg)


def test_a_reply_goes_in_the_applications_language_and_without_one_in_the_default(tmp_path):
    services = make_services(tmp_path)
    application(services)
    choose(services, "en")
    with transaction(services.engine) as session:
        row = session.exec(select(Application)).one()
        replies.send(handling(session, services), "receipt", app=row, position=1)
        replies.send(handling(session, services, sender="someone@example.co.jp", uid=2), "pdf_unreadable",
                     reason="PDFではありません。")
    english, japanese = outbox(services)
    assert "Your application has been received (reception number TS-2026-0001)" in english.subject
    assert "Place in the queue: 1" in english.body and english.in_reply_to == "<m1@sample-seiki.example.jp>"
    assert "添付ファイルを読み取れませんでした" in japanese.subject and japanese.to_addrs == ["someone@example.co.jp"]


def test_an_english_mail_without_its_template_is_refused_naming_the_file(tmp_path):
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    (templates / "ja" / "japanese_only.txt.j2").write_text(
        "{% block subject %}{{ reception_number }}{% endblock %}{% block body %}本文{% endblock %}")
    data = config_data(tmp_path)
    data["service"]["templates_dir"] = str(templates)
    services = build(config.validate(data, base_dir=tmp_path, origin="test"))
    application(services)
    choose(services, "en")
    missing = f"template not found: {templates / 'en' / 'japanese_only.txt.j2'}"
    with pytest.raises(TemplateError, match=missing), transaction(services.engine) as session:
        row = session.exec(select(Application)).one()
        letters.send(session, services, row, "japanese_only")
    assert outbox(services) == []


# --- the commands --------------------------------------------------------------------------


@pytest.fixture
def cli_config(tmp_path):
    path = write_config(tmp_path / "config.toml", config_data(tmp_path))
    return path, make_services(tmp_path)


def invoke(path, *args):
    return CliRunner().invoke(cli, ["--config", str(path), *args])


def test_language_command_shows_sets_and_refuses(cli_config):
    path, services = cli_config
    application(services)
    assert invoke(path, "language", "TS-2026-0001").output == "TS-2026-0001: mail in ja\n"
    assert invoke(path, "language", "ts-2026-0001", "en", "--by", "hirooka").output == "TS-2026-0001: mail in en\n"
    assert language_of(services) == "en"
    refused = invoke(path, "language", "TS-2026-0001", "de")
    assert refused.exit_code == 1 and "mailbot: application TS-2026-0001: language must be one of" in refused.output


def test_preview_prints_the_mail_in_the_applications_language_and_sends_nothing(cli_config):
    path, services = cli_config
    application(services)
    choose(services, "en")
    shown = invoke(path, "preview", "receipt", "TS-2026-0001")
    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith(f"To: {CONTACT}, {APPLIED_FROM}\nLanguage: en\nSubject: [")
    assert "(reception number TS-2026-0001)" in shown.output and "Dear 田中 花子," in shown.output
    japanese = invoke(path, "preview", "receipt", "TS-2026-0001", "--language", "ja")
    assert "申請書受付のお知らせ（受付番号：TS-2026-0001）" in japanese.output and "田中 花子 様" in japanese.output
    assert outbox(services) == []


def test_preview_of_the_hours_summary_shows_the_real_ledger(cli_config):
    path, services = cli_config
    add_application(services, "TS-2026-0005")
    log(services, "TS-2026-0005", amount=4.5)
    shown = invoke(path, "preview", "hours_summary", "TS-2026-0005")
    assert shown.exit_code == 0, shown.output
    assert "ご利用時間：4.5時間（上限23時間）" in shown.output and "残り時間：18.5時間" in shown.output
    assert outbox(services) == []


def test_preview_fails_clearly_without_sample_values_or_template(cli_config, tmp_path):
    path, services = cli_config
    application(services)
    unknown = invoke(path, "preview", "no_such_mail", "TS-2026-0001")
    assert unknown.exit_code == 1 and "template not found" in unknown.output
    staff_only = invoke(path, "preview", "staff_health_alert", "TS-2026-0001")
    assert staff_only.exit_code == 1
    assert "is undefined" in staff_only.output and "no sample values for 'staff_health_alert'" in staff_only.output
    missing = invoke(path, "preview", "receipt", "TS-2026-0404")
    assert missing.exit_code == 1 and "no application 'TS-2026-0404'" in missing.output


@pytest.mark.parametrize("lang", ["ja", "en"])
@pytest.mark.parametrize("template", sorted(SAMPLES))
def test_every_sample_context_renders_its_template(tmp_path, template, lang):
    services = make_services(tmp_path)
    add_application(services, state="in_service")
    with Session(services.engine) as session:
        row = session.exec(select(Application)).one()
        mail = services.renderer.render(template, language=lang, app=row, program=services.settings.program,
                                        **sample_context(session, services, template, row))
    assert "TS-2026-0001" in mail.subject and ("田中 花子 様" in mail.body or "Dear 田中 花子," in mail.body)


DESK_REQUEST = SimpleNamespace(fields={"preferred_dates": ["2026-12-03T14:00", "2026-12-04T10:00"]})
DESK_CONTEXTS = {
    "desk_received": {"request": DESK_REQUEST},
    "desk_fix_request": {"request": DESK_REQUEST,
                         "problems": [SimpleNamespace(message_ja="「企業名」欄をご記入ください。")]},
    "desk_already_used": {"request": DESK_REQUEST, "earlier_received": "2026年6月1日（月）",
                          "earlier": SimpleNamespace(number="TS-C-2026-0001", state="received")},
}


@pytest.mark.parametrize("template", sorted(DESK_CONTEXTS))
def test_the_desk_mails_in_english(tmp_path, template):
    """The desk writes in [workflow] language (its requests have no per-application setting)."""
    services = make_services(tmp_path, workflow_={"language": "en"})
    mail = services.renderer.render(template, language="en", program=services.settings.program,
                                    reception_number="TS-C-2026-0002", company_name="株式会社サンプル精機",
                                    contact_name="田中 花子", **DESK_CONTEXTS[template])
    assert mail.subject.endswith("(reception number TS-C-2026-0002)") and "consultation" in mail.subject
    assert mail.body.startswith("株式会社サンプル精機\nDear 田中 花子,\n") and "consultation desk" in mail.body
    if template == "desk_received":
        assert "1. 2026-12-03 14:00\n    2. 2026-12-04 10:00" in mail.body
    if template == "desk_already_used":
        assert "(reception number TS-C-2026-0001, received 2026年6月1日（月）)" in mail.body


def test_english_invitation_names_the_step_and_the_reschedule(tmp_path):
    services = make_services(tmp_path)
    add_application(services, state="in_service")
    with Session(services.engine) as session:
        row = session.exec(select(Application)).one()
        context = sample_context(session, services, "invitation", row)
        first = services.renderer.render("invitation", language="en", app=row, program=services.settings.program,
                                         **context)
        moved = services.renderer.render("invitation", language="en", app=row, program=services.settings.program,
                                         **{**context, "previous": context["meeting"]})
    assert "Invitation: follow-up meeting (reception number TS-2026-0001)" in first.subject
    assert "Japan time, 60 minutes" in first.body and "Expert: 山田 太郎（弁護士）" in first.body
    assert "New date for your follow-up meeting" in moved.subject and "\nBefore\n" in moved.body
