"""Step 03 without mail servers: recognising the documents, the shipped blanks, receiving, reminding.

Receiving runs the real pipeline (parse, classify, handle) on mails stored
as raw rows in a real SQLite database, with the shipped rules and templates.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reportlab.pdfgen.canvas import Canvas
from sqlmodel import select
from typer.testing import CliRunner

from mailbot import config, documents, pipeline, workflow
from mailbot.cli import app as cli
from mailbot.db import transaction
from mailbot.errors import ConfigError, TemplateError
from mailbot.forms.blank_documents import held_info_list, self_check_sheet, write
from mailbot.forms.fill import MINCHO
from mailbot.models import Application, OutboxMessage, RawMessage, Transition
from mailbot.outbox import attachments_of
from mailbot.tables.documents import DocumentReminder, ReceivedDocument
from tests.test_adoption import make as make_adoption_services
from tests.test_staff import FROM, STAFF, make_services

NUMBER = "TS-2026-0007"
CONTACT, APPLIED_FROM = "tanaka@sample-seiki.co.jp", "soumu@sample-seiki.co.jp"
ADOPTION_ID = "<adoption-1@example.jp>"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HELD, CHECK = documents.HELD_INFO, documents.SELF_CHECK


def workbook(*rows, title="Sheet1") -> bytes:
    book = openpyxl.Workbook()
    book.active.title = title
    for row in rows:
        book.active.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def pdf_with(*lines: str) -> bytes:
    """A text PDF in reportlab's built-in Japanese CID font (no font file needed)."""
    out = io.BytesIO()
    page = Canvas(out)
    page.setFont(MINCHO, 12)
    for number, line in enumerate(lines):
        page.drawString(72, 760 - 20 * number, line)
    page.save()
    return out.getvalue()


# --- recognise ----------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "kind"), [
    ("保有情報リスト.xlsx", HELD),
    ("株式会社サンプル精機_保有情報一覧_20260601.xlsx", HELD),
    ("【サンプル精機】保有情報リスト（記入済）.pdf", HELD),
    ("ﾎﾕｳ情報リスト.xlsx", None),  # half-width katakana of a kanji word is not that word
    ("held_info_list.xlsx", HELD),
    ("ＨＥＬＤ－ＩＮＦＯ.XLSX", HELD),
    ("情報管理体制セルフチェックシート.xlsx", CHECK),
    ("ｾﾙﾌﾁｪｯｸｼｰﾄ_2026.xls", CHECK),
    ("Self-Check Sheet.pdf", CHECK),
    ("SELF_CHECK.xlsm", CHECK),
    ("情報管理体制チェック.xlsx", CHECK),
    ("申請書.xlsx", None),
    ("保有情報リスト兼セルフチェックシート.xlsx", None),  # names both: no evidence either way
    ("", None),
])
def test_recognised_by_name(name, kind):
    assert documents.by_name(name) == kind
    assert documents.recognise(name, b"not a readable file") == kind


def test_the_content_wins_over_an_odd_name():
    assert documents.recognise("回答.xlsx", held_info_list()) == HELD
    assert documents.recognise("回答(1).xlsx", self_check_sheet()) == CHECK
    # Named as the list but holding the sheet: the content is the better evidence.
    assert documents.recognise("保有情報リスト.xlsx", self_check_sheet()) == CHECK


def test_the_applicants_own_table_is_recognised_by_its_headers():
    their_list = workbook(("No", "情報の名称", "分類", "保管場所", "管理責任者"), (1, "製造図面", "技術情報", "本社", "部長"))
    their_check = workbook(("項番", "チェック項目", "はい", "いいえ", "該当なし"), title="回答")
    assert documents.recognise("book1.xlsx", their_list) == HELD
    assert documents.recognise("book2.xlsx", their_check) == CHECK


def test_a_workbook_that_is_neither_falls_back_to_its_name():
    other = workbook(("売上", "2025年度"), (1, 2))
    assert documents.recognise("売上.xlsx", other) is None
    assert documents.recognise("保有情報リスト.xlsx", other) == HELD  # the name is evidence enough


def test_a_pdf_is_recognised_by_its_text():
    data = pdf_with("海外における営業秘密漏えい対策支援事業", "情報管理体制セルフチェックシート", "方針・規程")
    assert documents.recognise("scan0001.pdf", data) == CHECK
    assert documents.recognise("scan0001.pdf", pdf_with("議事録", "出席者")) is None


@pytest.mark.parametrize("data", [
    b"", b"PK\x03\x04broken", b"%PDF-1.7\n%%EOF", b"\x00" * 64, held_info_list()[:2000],
    held_info_list()[:-40],
])
def test_broken_files_never_raise_and_fall_back_to_the_name(data):
    assert documents.recognise("保有情報リスト.xlsx", data) == HELD
    assert documents.recognise("保有情報リスト.pdf", data) == HELD
    assert documents.recognise("data.xlsx", data) is None


def test_a_zip_bomb_is_not_unpacked():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (documents.MAX_UNZIPPED + 1))
    assert documents.by_content("x.xlsx", out.getvalue()) is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=40))
def test_mangled_workbooks_never_raise(changes):
    data = bytearray(held_info_list())
    for offset, value in changes:
        data[offset % len(data)] = value
    assert documents.recognise("x.xlsx", bytes(data)) in (HELD, CHECK, None)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(['<row r="1">', "<c t=\"s\">", "</", "&#0;", "<!DOCTYPE x [", "\xff"]),
                max_size=8))
def test_hostile_sheet_xml_never_raises(pieces):
    source = zipfile.ZipFile(io.BytesIO(held_info_list()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for entry in source.infolist():
            data = source.read(entry.filename)
            if entry.filename.endswith("sheet1.xml"):
                data = data[:300] + "".join(pieces).encode("utf-8", "replace") + data[300:]
            target.writestr(entry.filename, data)
    assert documents.recognise("x.xlsx", out.getvalue()) in (HELD, CHECK, None)


# --- the shipped blanks ---------------------------------------------------------------------

def test_the_shipped_blanks_are_attached_under_their_japanese_names(tmp_path):
    files = documents.blank_files(make_services(tmp_path).settings)
    assert [f.filename for f in files] == ["保有情報リスト.xlsx", "情報管理体制セルフチェックシート.xlsx"]
    assert {f.content_type for f in files} == {XLSX}
    assert [documents.recognise("x.xlsx", f.data) for f in files] == [HELD, CHECK]


def test_the_shipped_blanks_are_real_tables_and_regenerate_byte_for_byte(tmp_path):
    written = write(tmp_path)
    shipped = documents.BLANK_DIR
    assert [p.read_bytes() for p in written] == [(shipped / p.name).read_bytes() for p in written]
    sheet = openpyxl.load_workbook(io.BytesIO(held_info_list())).active
    assert "海外における営業秘密漏えい対策支援事業" in sheet["A1"].value
    assert [c.value for c in sheet[4]][1:3] == ["情報の名称", "分類（技術情報／営業情報）"]
    check = openpyxl.load_workbook(io.BytesIO(self_check_sheet())).active
    groups = {row[0] for row in check.iter_rows(min_row=5, values_only=True) if row[1]}
    assert groups == {"方針・規程", "物理的管理", "技術的管理", "人的管理", "海外拠点"}
    assert [c.value for c in check[4]][3:6] == ["はい", "いいえ", "該当なし"]


def configured(tmp_path, **workflow_keys):
    data = {
        "imap": {"host": "127.0.0.1", "port": 1, "username": "chizai", "security": "none"},
        "smtp": {"host": "127.0.0.1", "port": 1, "security": "none", "from_address": FROM},
        "program": {"opens": "2026-05-27", "closes": "2027-01-31"},
        "workflow": workflow_keys,
    }
    return config.validate(data, base_dir=tmp_path, origin="test")


def test_configured_documents_are_read_relative_to_the_config_file(tmp_path):
    (tmp_path / "forms").mkdir()
    (tmp_path / "forms" / "保有情報リスト_2026.xls").write_bytes(b"\xd0\xcf\x11\xe0 old excel")
    (tmp_path / "check.pdf").write_bytes(b"%PDF-1.4 sheet")
    files = documents.blank_files(configured(tmp_path, held_info_list="forms/保有情報リスト_2026.xls",
                                             self_check_sheet=str(tmp_path / "check.pdf")))
    assert [(f.filename, f.content_type, f.data) for f in files] == [
        ("保有情報リスト_2026.xls", "application/vnd.ms-excel", b"\xd0\xcf\x11\xe0 old excel"),
        ("check.pdf", "application/pdf", b"%PDF-1.4 sheet")]


def test_a_configured_document_that_does_not_exist_names_the_key(tmp_path):
    settings = configured(tmp_path, self_check_sheet="forms/missing.xlsx")
    with pytest.raises(ConfigError, match=r"\[workflow\] self_check_sheet.*missing\.xlsx"):
        documents.blank_files(settings)


# --- receiving -------------------------------------------------------------------------------

@pytest.fixture
def services(tmp_path):
    return make_services(tmp_path)


def requested(services, at: datetime | None = None) -> int:
    """An adopted application whose documents were asked for (by our adoption mail ADOPTION_ID)."""
    with transaction(services.engine) as session:
        app = Application(reception_number=NUMBER, state="received", company_name="株式会社サンプル精機",
                          contact_email=CONTACT, sender=APPLIED_FROM, fields={"contact_name": "田中 花子"},
                          thread_message_id="<apply-1@sample-seiki.co.jp>")
        workflow.start(session, app, "received", actor="service", reason="test")
        for state in ("queued", "adopted", "documents_requested"):
            row = workflow.move(session, app, state, actor="staff1", reason="test")
        if at is not None:
            row.at = at
        session.add(OutboxMessage(kind="adopted", to_addrs=[CONTACT], subject=f"採択（受付番号：{NUMBER}）",
                                  body="", message_id=ADOPTION_ID, application_id=app.id))
        return app.id


def reply(*files: tuple[str, bytes], subject=f"Re: 【事業】採択のお知らせ（受付番号：{NUMBER}）",
          in_reply_to=ADOPTION_ID) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = f"田中 花子 <{CONTACT}>", FROM, subject
    msg["Message-ID"] = f"<reply-{hashlib.sha256(repr(files).encode()).hexdigest()[:12]}@sample-seiki.co.jp>"
    if in_reply_to:
        msg["In-Reply-To"] = msg["References"] = in_reply_to
    msg.set_content("書類を提出いたします。\n田中")
    for name, data in files:
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg.as_bytes()


def process(services, raw: bytes) -> RawMessage:
    with transaction(services.engine) as session:
        row = RawMessage(folder="INBOX", uidvalidity=1, uid=_next_uid(session), size=len(raw),
                         arrived_at=datetime.now(UTC), sha256=hashlib.sha256(raw).hexdigest(), raw=raw)
        session.add(row)
        session.flush()
        raw_id = row.id
    pipeline.process(services, raw_id)
    with transaction(services.engine) as session:
        return session.get(RawMessage, raw_id)


def _next_uid(session) -> int:
    return len(session.exec(select(RawMessage.id)).all()) + 1


def state(services, app_id) -> tuple[str, list[ReceivedDocument], list[OutboxMessage]]:
    with transaction(services.engine) as session:
        app = session.get(Application, app_id)
        docs = list(session.exec(select(ReceivedDocument).order_by(ReceivedDocument.id)))
        mails = list(session.exec(select(OutboxMessage).where(OutboxMessage.kind != "adopted")
                                  .order_by(OutboxMessage.id)))
        return app.state, docs, mails


BOTH = (("保有情報リスト.xlsx", held_info_list()), ("情報管理体制セルフチェックシート.xlsx", self_check_sheet()))


def test_both_documents_give_a_receipt_and_the_state_moves(services):
    app_id = requested(services)
    raw = process(services, reply(*BOTH))
    app_state, docs, mails = state(services, app_id)
    assert raw.mail_class == "documents" and "both documents received" in raw.reason
    assert app_state == "documents_received"
    assert [(d.kind, d.filename, d.size, d.raw_message_id) for d in docs] == [
        (HELD, "保有情報リスト.xlsx", len(BOTH[0][1]), raw.id),
        (CHECK, "情報管理体制セルフチェックシート.xlsx", len(BOTH[1][1]), raw.id)]
    assert docs[0].sha256 == hashlib.sha256(BOTH[0][1]).hexdigest()
    [mail] = mails
    assert mail.kind == "documents_received" and mail.to_addrs == [CONTACT]
    assert NUMBER in mail.subject and "受領" in mail.subject
    assert mail.in_reply_to == raw.message_id and mail.references[-1] == raw.message_id
    assert "保有情報リスト：保有情報リスト.xlsx" in mail.body
    assert "情報管理体制セルフチェックシート：情報管理体制セルフチェックシート.xlsx" in mail.body
    with transaction(services.engine) as session:
        last = session.exec(select(Transition).order_by(Transition.id.desc())).first()
    assert (last.from_state, last.to_state, last.actor, last.raw_message_id) == (
        "documents_requested", "documents_received", "service", raw.id)


def test_one_document_names_the_missing_one_then_the_second_completes(services):
    app_id = requested(services)
    first = process(services, reply(("回答_サンプル精機.xlsx", held_info_list())))
    app_state, docs, mails = state(services, app_id)
    assert app_state == "documents_requested" and [d.kind for d in docs] == [HELD]
    assert mails[-1].kind == "documents_missing" and NUMBER in mails[-1].subject
    assert mails[-1].in_reply_to == first.message_id
    body = mails[-1].body
    assert "保有情報リスト：回答_サンプル精機.xlsx" in body
    assert "・情報管理体制セルフチェックシート" in body and "・保有情報リスト" not in body
    process(services, reply(("セルフチェック.xlsx", self_check_sheet())))
    app_state, docs, mails = state(services, app_id)
    assert app_state == "documents_received" and [d.kind for d in docs] == [HELD, CHECK]
    assert [m.kind for m in mails] == ["documents_missing", "documents_received"]
    assert "回答_サンプル精機.xlsx" in mails[-1].body and "セルフチェック.xlsx" in mails[-1].body


def test_no_recognised_document_names_both_expected(services):
    app_id = requested(services)
    process(services, reply(("売上集計.xlsx", workbook(("売上",)))))
    app_state, docs, mails = state(services, app_id)
    assert app_state == "documents_requested" and docs == []
    [mail] = mails
    assert mail.kind == "documents_missing"
    assert "売上集計.xlsx" in mail.body and "確認できませんでした" in mail.body
    assert "・保有情報リスト" in mail.body and "・情報管理体制セルフチェックシート" in mail.body


def test_a_resend_of_the_same_file_is_not_a_second_document(services):
    app_id = requested(services)
    process(services, reply(BOTH[0]))
    process(services, reply(("保有情報リスト(再送).xlsx", BOTH[0][1])))
    app_state, docs, mails = state(services, app_id)
    assert app_state == "documents_requested" and len(docs) == 1
    assert "保有情報リスト(再送).xlsx" in mails[-1].body and "同じ内容" in mails[-1].body
    assert "・情報管理体制セルフチェックシート" in mails[-1].body


def test_excel_files_in_a_zip_count(services):
    app_id = requested(services)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("提出書類/保有情報リスト.xlsx", BOTH[0][1])
        archive.writestr("提出書類/check.xlsx", BOTH[1][1])
        archive.writestr("提出書類/readme.txt", "説明")
    process(services, reply(("提出書類.zip", out.getvalue())))
    app_state, docs, mails = state(services, app_id)
    assert app_state == "documents_received"
    assert [(d.kind, d.filename) for d in docs] == [(HELD, "保有情報リスト.xlsx"), (CHECK, "check.xlsx")]
    assert "check.xlsx" in mails[-1].body


def test_a_scanned_pdf_counts_by_its_text_and_a_broken_one_by_its_name(services):
    app_id = requested(services)
    sheet = pdf_with("海外における営業秘密漏えい対策支援事業", "情報管理体制セルフチェックシート", "チェック項目")
    process(services, reply(("scan0001.pdf", sheet), ("保有情報リスト.pdf", b"%PDF-1.4\n broken")))
    app_state, docs, mails = state(services, app_id)
    assert [(d.kind, d.filename) for d in docs] == [(CHECK, "scan0001.pdf"), (HELD, "保有情報リスト.pdf")]
    assert app_state == "documents_received" and mails[-1].kind == "documents_received"


def test_the_thread_is_found_by_in_reply_to_when_the_subject_lost_the_number(services):
    app_id = requested(services)
    process(services, reply(*BOTH, subject="Re: 書類送付"))
    assert state(services, app_id)[0] == "documents_received"


def test_an_application_not_waiting_for_documents_gets_no_automatic_reply(services):
    app_id = requested(services)
    process(services, reply(*BOTH))
    later = process(services, reply(("保有情報リスト_修正版.xlsx", workbook(("保有情報リスト",), ("情報の名称",)))))
    app_state, docs, mails = state(services, app_id)
    assert app_state == "documents_received" and len(docs) == 3  # recorded for staff
    assert [m.kind for m in mails] == ["documents_received"]  # nothing more sent
    assert "documents_received, not waiting for documents" in later.reason and "no automatic reply" in later.reason


def test_asked_again_only_documents_since_the_new_request_count(services):
    app_id = requested(services)
    process(services, reply(*BOTH))
    with transaction(services.engine) as session:
        workflow.move(session, session.get(Application, app_id), "documents_requested", actor="staff1",
                      reason="the list is empty")
    process(services, reply(("保有情報リスト_v2.xlsx", workbook(("保有情報リスト",)))))
    app_state, _, mails = state(services, app_id)
    assert app_state == "documents_requested"
    assert "・情報管理体制セルフチェックシート" in mails[-1].body


# --- reminders ---------------------------------------------------------------------------------

def outbox_kinds(services) -> list[str]:
    with transaction(services.engine) as session:
        return [m.kind for m in session.exec(select(OutboxMessage).where(OutboxMessage.kind != "adopted")
                                             .order_by(OutboxMessage.id))]


def test_one_reminder_and_one_staff_note_after_the_configured_days(services):
    asked = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)
    app_id = requested(services, at=asked)
    assert services.settings.workflow.documents_reminder_days == 7
    assert documents.remind_due(services, now=asked + timedelta(days=6, hours=23)) == 0
    assert outbox_kinds(services) == []
    assert documents.remind_due(services, now=asked + timedelta(days=7)) == 1
    assert documents.remind_due(services, now=asked + timedelta(days=30)) == 0  # once per request
    assert outbox_kinds(services) == ["documents_reminder", documents.DOCUMENTS_OVERDUE]
    with transaction(services.engine) as session:
        reminder, note = session.exec(select(OutboxMessage).where(OutboxMessage.kind != "adopted")
                                      .order_by(OutboxMessage.id)).all()
        [row] = session.exec(select(DocumentReminder)).all()
        assert row.outbox_id == reminder.id and row.application_id == app_id
    assert reminder.to_addrs == [CONTACT, APPLIED_FROM] and reminder.automatic
    assert NUMBER in reminder.subject and reminder.in_reply_to == ADOPTION_ID
    assert "2026年6月1日（月）" in reminder.body and "・保有情報リスト" in reminder.body
    assert note.to_addrs == STAFF and NUMBER in note.subject and "7日" in note.subject
    assert f"mailbot documents {NUMBER}" in note.body and CONTACT in note.body


def test_the_reminder_names_only_what_is_missing_and_stops_once_complete(services):
    asked = datetime.now(UTC) - timedelta(days=8)
    app_id = requested(services, at=asked)
    process(services, reply(BOTH[1]))
    assert documents.remind_due(services) == 1
    with transaction(services.engine) as session:
        reminder = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "documents_reminder")).one()
    assert "・保有情報リスト" in reminder.body and "・情報管理体制セルフチェックシート" not in reminder.body
    process(services, reply(BOTH[0]))
    assert state(services, app_id)[0] == "documents_received"
    assert documents.remind_due(services, now=datetime.now(UTC) + timedelta(days=30)) == 0


def test_a_new_request_gets_its_own_reminder(services):
    asked = datetime(2026, 6, 1, tzinfo=UTC)
    app_id = requested(services, at=asked)
    process(services, reply(*BOTH))
    assert documents.remind_due(services, now=asked + timedelta(days=8)) == 0  # complete: nothing due
    with transaction(services.engine) as session:
        row = workflow.move(session, session.get(Application, app_id), "documents_requested",
                            actor="staff1", reason="ask again")
        row.at = asked + timedelta(days=10)
    assert documents.remind_due(services, now=asked + timedelta(days=16)) == 0
    assert documents.remind_due(services, now=asked + timedelta(days=17)) == 1


# --- English ------------------------------------------------------------------------------------

def test_an_english_speaking_applicant_gets_the_english_mails(tmp_path):
    services = make_services(tmp_path)
    asked = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)
    app_id = requested(services, at=asked)
    with transaction(services.engine) as session:
        app = session.get(Application, app_id)
        app.fields = {**app.fields, "mail_language": "en"}
        session.add(app)
    process(services, reply(BOTH[1]))
    assert documents.remind_due(services, now=asked + timedelta(days=8)) == 1
    process(services, reply(BOTH[0]))
    with transaction(services.engine) as session:
        mails = {m.kind: m for m in session.exec(select(OutboxMessage))}
    assert "Documents still missing" in mails["documents_missing"].subject
    assert "- Held Information List (保有情報リスト)" in mails["documents_missing"].body
    assert "June 1, 2026" in mails["documents_reminder"].body or "1 June 2026" in mails["documents_reminder"].body
    assert "Reminder" in mails["documents_reminder"].subject and NUMBER in mails["documents_reminder"].subject
    received_mail = mails["documents_received"]
    assert "received" in received_mail.subject and NUMBER in received_mail.subject
    assert "Information Management Self-Check Sheet (情報管理体制セルフチェックシート): 情報管理体制セルフチェックシート.xlsx" \
        in received_mail.body
    assert "保有情報リスト：" not in received_mail.body  # no Japanese template slipped in


# --- the staff commands ----------------------------------------------------------------------------

def mailbot(tmp_path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(tmp_path / "config.toml"), *args], env={"COLUMNS": "220"})


def test_documents_lists_what_arrived_and_saves_the_files(tmp_path):
    services = make_adoption_services(tmp_path)
    requested(services)
    process(services, reply(("../../回答.xlsx", held_info_list())))
    result = mailbot(tmp_path, "documents", NUMBER)
    assert result.exit_code == 0, result.output
    assert "documents_requested" in result.stdout and "missing: 情報管理体制セルフチェックシート" in result.stdout
    assert "保有情報リスト" in result.stdout and "回答.xlsx" in result.stdout
    saved = mailbot(tmp_path, "documents", NUMBER, "--json", "--save", str(tmp_path / "out"))
    data = json.loads(saved.stdout)
    assert data["missing"] == [CHECK] and [d["kind"] for d in data["documents"]] == [HELD]
    assert data["documents"][0]["current_request"] is True
    assert data["saved"] == [str(tmp_path / "out" / "01-回答.xlsx")]  # never outside DIR
    assert (tmp_path / "out" / "01-回答.xlsx").read_bytes() == held_info_list()
    unknown = mailbot(tmp_path, "documents", "TS-2026-9999")
    assert unknown.exit_code == 1 and unknown.stderr.startswith("mailbot: ")


def test_request_documents_asks_again_only_after_receipt(tmp_path):
    services = make_adoption_services(tmp_path)
    app_id = requested(services)
    early = mailbot(tmp_path, "request-documents", NUMBER, "--reason", "x", "--by", "kawano")
    assert early.exit_code == 1 and "'documents_requested'" in early.stderr
    process(services, reply(*BOTH))
    result = mailbot(tmp_path, "request-documents", NUMBER, "--reason", "リストが空欄",
                     "--note", "保有情報リストの「保管場所」欄をご記入ください。", "--by", "kawano")
    assert result.exit_code == 0, result.output
    assert f"{NUMBER}: documents_requested again; mail queued to {CONTACT}, {APPLIED_FROM}" in result.stdout
    with transaction(services.engine) as session:
        app = session.get(Application, app_id)
        last = workflow.history(session, app)[-1]
        mail = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "documents_requested_again")).one()
        files = attachments_of(session, mail.id)
    assert app.state == "documents_requested" and (last.actor, last.reason) == ("kawano", "リストが空欄")
    assert NUMBER in mail.subject and "「保管場所」欄をご記入ください" in mail.body
    assert [f.filename for f in files] == ["保有情報リスト.xlsx", "情報管理体制セルフチェックシート.xlsx"]
    listing = json.loads(mailbot(tmp_path, "documents", NUMBER, "--json").stdout)
    assert listing["missing"] == [HELD, CHECK] and not any(d["current_request"] for d in listing["documents"])


def test_a_reminder_that_cannot_be_rendered_is_logged_and_the_cycle_goes_on(services, monkeypatch, caplog):
    asked = datetime(2026, 6, 1, tzinfo=UTC)
    requested(services, at=asked)
    render = services.renderer.render

    def broken(name, **context):
        if name == "documents_reminder":
            raise TemplateError("template ja/documents_reminder.txt.j2: boom")
        return render(name, **context)

    monkeypatch.setattr(services.renderer, "render", broken)
    assert documents.remind_due(services, now=asked + timedelta(days=8)) == 0
    assert "boom" in caplog.text and outbox_kinds(services) == []
    monkeypatch.setattr(services.renderer, "render", render)
    assert documents.remind_due(services, now=asked + timedelta(days=8)) == 1  # nothing half-done before


@pytest.mark.parametrize("language", ["ja", "en"])
@pytest.mark.parametrize("template", ["documents_received", "documents_missing", "documents_reminder",
                                      "documents_requested_again"])
def test_every_step_03_mail_renders_from_the_preview_context(services, template, language):
    app_id = requested(services)
    process(services, reply(BOTH[0]))
    with transaction(services.engine) as session:
        app = session.get(Application, app_id)
        context = documents.preview_context(session, services, app)
        mail = services.renderer.render(template, language=language, app=app, program=services.settings.program,
                                        **context)
    assert NUMBER in mail.subject and "株式会社サンプル精機" in mail.body
