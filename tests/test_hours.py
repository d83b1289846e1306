"""Step 05, the hours ledger: the cap at 22, 23 and 24 hours, shared per company and region,
the support period, the states, the 80% summary mailed once, and the two staff commands.

The database is a real SQLite file, the rules and templates the shipped ones;
the commands run through typer's CliRunner against a real config file.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from mailbot import PROJECT_ROOT, config, hours, workflow
from mailbot.cli import app as cli
from mailbot.db import transaction
from mailbot.errors import WorkflowError
from mailbot.models import Application, OutboxMessage, Transition
from mailbot.services import build
from mailbot.tables.hours import HoursSession

FROM = "chizai@example.jp"
CONTACT = "tanaka@sample-seiki.example.jp"
APPLIED_FROM = "soumu@sample-seiki.example.jp"
TODAY = date.today()
OPENS = TODAY - timedelta(days=120)
SUPPORT_ENDS = TODAY + timedelta(days=60)
DAY = TODAY - timedelta(days=7)  # a day inside the support period, in the past


def toml_value(value) -> str:
    """One TOML value (JSON string escapes are TOML's too)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, date)):
        return value.isoformat() if isinstance(value, date) else str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def write_config(path: Path, data: dict[str, dict]) -> Path:
    """``data`` ({section: {key: value}}) as a config.toml; None values are left out."""
    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items() if value is not None]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def config_data(tmp_path: Path, program: dict | None = None, workflow_: dict | None = None) -> dict:
    """A program open since OPENS with support until SUPPORT_ENDS; nothing is ever contacted."""
    return {
        "imap": {"host": "127.0.0.1", "port": 1, "username": "chizai", "security": "none"},
        "smtp": {"host": "127.0.0.1", "port": 1, "security": "none", "from_address": FROM},
        "database": {"url": f"sqlite:///{tmp_path / 'mailbot.db'}"},
        "program": {"opens": OPENS, "closes": SUPPORT_ENDS - timedelta(days=30), "cap": 18,
                    "support_ends": SUPPORT_ENDS, "signature": "ジェトロ知的財産課", **(program or {})},
        "workflow": {"hours_notice_percent": 80, **(workflow_ or {})},
        "staff": {"digest_to": ["staff@example.jp"]},
        "service": {"rules_dir": str(PROJECT_ROOT / "rules"), "templates_dir": str(PROJECT_ROOT / "templates")},
    }


def make_services(tmp_path: Path, **sections):
    return build(config.validate(config_data(tmp_path, **sections), base_dir=tmp_path, origin="test"))


@pytest.fixture
def services(tmp_path):
    return make_services(tmp_path)


def add_application(services, number="TS-2026-0001", state="interview_scheduled", country="CN",
                    company="株式会社サンプル精機", corporate="1234567890123") -> str:
    """An application already in ``state`` (its history starts there), committed."""
    with transaction(services.engine) as session:
        row = Application(reception_number=number, state=state, company_name=company,
                          corporate_number=corporate, country=country, contact_email=CONTACT,
                          sender=APPLIED_FROM, fields={"contact_name": "田中 花子"},
                          thread_message_id=f"<{number}@sample-seiki.example.jp>")
        session.add(row)
    return number


def log(services, number, held_on=DAY, kind="consultation", amount=1.0, today=TODAY) -> hours.Logged:
    with transaction(services.engine) as session:
        row = session.exec(select(Application).where(Application.reception_number == number)).one()
        return hours.log_session(session, services, row, held_on=held_on, kind=kind, hours=amount,
                                 by="izumi", today=today)


def used(services, number) -> float:
    with Session(services.engine) as session:
        row = session.exec(select(Application).where(Application.reception_number == number)).one()
        return hours.summary(session, services, row).used


def mails(services, kind="hours_summary") -> list[OutboxMessage]:
    with Session(services.engine) as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.kind == kind)
                                 .order_by(OutboxMessage.id)).all())


# --- the cap: 22, 23, 24 -----------------------------------------------------------


def test_22_plus_1_reaches_the_cap_and_half_an_hour_more_is_refused(services):
    number = add_application(services)
    log(services, number, amount=22)
    logged = log(services, number, amount=1)
    assert (logged.summary.used, logged.summary.left) == (23.0, 0.0)
    with pytest.raises(WorkflowError, match=r"23\.0 h used, 0\.0 h left"):
        log(services, number, amount=0.5)
    assert used(services, number) == 23.0


def test_22_plus_2_is_refused_with_the_hour_left(services):
    number = add_application(services)
    log(services, number, amount=22)
    with pytest.raises(WorkflowError, match=r"22\.0 h used, 1\.0 h left") as refused:
        log(services, number, amount=2)
    assert "TS-2026-0001" in str(refused.value) and "23.0 h" in str(refused.value)
    assert used(services, number) == 22.0


def test_24_hours_at_once_is_refused_on_an_empty_ledger(services):
    number = add_application(services)
    with pytest.raises(WorkflowError, match=r"0\.0 h used, 23\.0 h left"):
        log(services, number, amount=24)
    with Session(services.engine) as session:
        assert session.exec(select(HoursSession)).all() == []


@pytest.mark.parametrize("amount", [0, -1, 0.25, 1.3, float("nan"), float("inf")])
def test_hours_come_in_steps_of_half_an_hour(services, amount):
    number = add_application(services)
    with pytest.raises(WorkflowError, match="steps of 0.5"):
        log(services, number, amount=amount)


def test_an_unknown_kind_is_refused(services):
    number = add_application(services)
    with pytest.raises(WorkflowError, match="consultation, training"):
        log(services, number, kind="lecture")


# --- one cap per company and region --------------------------------------------------


def test_two_regions_are_two_caps(services):
    china = add_application(services, "TS-2026-0001", country="CN")
    thailand = add_application(services, "TS-2026-0002", country="TH")
    log(services, china, amount=20)
    log(services, thailand, amount=20)
    log(services, thailand, amount=3)
    assert (used(services, china), used(services, thailand)) == (20.0, 23.0)


@pytest.mark.parametrize("second", [
    {"company": "別名株式会社", "corporate": "1234567890123"},  # same corporate number
    {"company": "㈱ サンプル精機", "corporate": None},  # no number: the normalised name
])
def test_the_same_company_twice_in_one_region_shares_one_cap(services, second):
    first = add_application(services, "TS-2026-0001", company="株式会社サンプル精機")
    other = add_application(services, "TS-2026-0002", **second)
    log(services, first, amount=20)
    with pytest.raises(WorkflowError, match=r"20\.0 h used, 3\.0 h left"):
        log(services, other, amount=4)
    log(services, other, amount=3)
    with Session(services.engine) as session:
        row = session.exec(select(Application).where(Application.reception_number == other)).one()
        lines = hours.summary(session, services, row).sessions
    assert [(line.reception_number, line.hours) for line in lines] == [(first, 20.0), (other, 3.0)]


def test_another_company_in_the_same_region_has_its_own_cap(services):
    first = add_application(services, "TS-2026-0001")
    other = add_application(services, "TS-2026-0002", company="株式会社ほかの会社", corporate="9876543210987")
    log(services, first, amount=23)
    log(services, other, amount=23)
    assert used(services, other) == 23.0


def test_two_staff_logging_at_once_cannot_pass_the_cap_together(services, monkeypatch):
    """Each session is checked and written in one BEGIN IMMEDIATE transaction: the second
    staff member's check waits for the first one's row, so 12 h + 12 h cannot both pass."""
    number = add_application(services, state="in_service")
    slow_check = hours.summary

    def summary_then_pause(*args, **kwargs):  # widen the gap between reading the ledger and writing to it
        result = slow_check(*args, **kwargs)
        time.sleep(0.3)
        return result

    monkeypatch.setattr(hours, "summary", summary_then_pause)
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def staff_member():
        start.wait()
        try:
            log(services, number, amount=12)
            outcomes.append("logged")
        except WorkflowError as exc:
            outcomes.append(str(exc))

    workers = [threading.Thread(target=staff_member) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert len(outcomes) == 2 and outcomes.count("logged") == 1, outcomes
    [refusal] = [outcome for outcome in outcomes if outcome != "logged"]
    assert "12.0 h used, 11.0 h left" in refusal
    monkeypatch.undo()
    assert used(services, number) == 12.0


# --- the support period ------------------------------------------------------------------


def test_the_last_day_of_support_is_allowed_the_next_is_not(services):
    number = add_application(services)
    log(services, number, held_on=SUPPORT_ENDS, today=SUPPORT_ENDS + timedelta(days=3))
    with pytest.raises(WorkflowError, match=f"after the support period ended \\({SUPPORT_ENDS}\\)"):
        log(services, number, held_on=SUPPORT_ENDS + timedelta(days=1), today=SUPPORT_ENDS + timedelta(days=3))


def test_without_support_ends_the_period_ends_when_applications_close(tmp_path):
    services = make_services(tmp_path, program={"support_ends": None})
    closes = services.settings.program.closes
    number = add_application(services)
    log(services, number, held_on=closes, today=closes + timedelta(days=5))
    with pytest.raises(WorkflowError, match=f"support period ended \\({closes}\\)"):
        log(services, number, held_on=closes + timedelta(days=1), today=closes + timedelta(days=5))


def test_before_the_program_opened_and_in_the_future_are_refused(services):
    number = add_application(services)
    with pytest.raises(WorkflowError, match="before the program opened"):
        log(services, number, held_on=OPENS - timedelta(days=1))
    with pytest.raises(WorkflowError, match="in the future"):
        log(services, number, held_on=TODAY + timedelta(days=1))
    assert used(services, number) == 0.0


# --- states --------------------------------------------------------------------------------


def test_the_first_session_starts_the_service_recorded_as_the_staff_member(services):
    number = add_application(services, state="interview_scheduled")
    first = log(services, number, amount=2)
    second = log(services, number, amount=1)
    assert (first.started_service, second.started_service) == (True, False)
    with Session(services.engine) as session:
        row = session.exec(select(Application).where(Application.reception_number == number)).one()
        moves = session.exec(select(Transition).where(Transition.application_id == row.id)).all()
    assert row.state == "in_service"
    assert [(t.from_state, t.to_state, t.actor) for t in moves] == [("interview_scheduled", "in_service", "izumi")]
    assert "first session" in moves[0].reason


@pytest.mark.parametrize("state", sorted(workflow.STATES - set(hours.LOGGABLE_STATES)))
def test_every_other_state_is_refused_naming_it(services, state):
    number = add_application(services, state=state)
    with pytest.raises(WorkflowError, match=f"not in state '{state}'"):
        log(services, number)


# --- the 80% summary ---------------------------------------------------------------------


def test_the_summary_is_mailed_once_when_80_percent_is_reached(services):
    number = add_application(services)
    assert log(services, number, amount=10).notice is None
    assert log(services, number, kind="training", amount=8).notice is None  # 18.0 < 18.4
    crossing = log(services, number, amount=0.5)  # 18.5 >= 80% of 23
    assert crossing.notice is not None
    assert log(services, number, amount=1).notice is None
    [mail] = mails(services)
    assert mail.to_addrs == [CONTACT, APPLIED_FROM] and number in mail.subject
    assert mail.in_reply_to == f"<{number}@sample-seiki.example.jp>" and mail.automatic
    assert "上限の80%に達しました" in mail.body
    assert "ご利用時間：18.5時間（上限23時間）" in mail.body
    assert "うち管理職向けコンサルテーション：10.5時間" in mail.body
    assert "うち管理職・社員向け研修：8時間" in mail.body
    assert "残り時間：4.5時間" in mail.body and "田中 花子 様" in mail.body
    assert mail.body.count("時間\n") >= 3  # one line per session at the time of the mail


def test_one_big_session_past_80_percent_mails_once(services):
    number = add_application(services)
    log(services, number, amount=20)
    log(services, number, amount=3)
    assert len(mails(services)) == 1


def test_the_notice_percent_comes_from_config(tmp_path):
    services = make_services(tmp_path, workflow_={"hours_notice_percent": 50})
    number = add_application(services)
    assert log(services, number, amount=11).notice is None
    assert log(services, number, amount=0.5).notice is not None  # 11.5 = 50% of 23


def test_summary_as_json(services):
    number = add_application(services)
    log(services, number, amount=2)
    log(services, number, kind="training", amount=1.5)
    with Session(services.engine) as session:
        row = session.exec(select(Application).where(Application.reception_number == number)).one()
        data = hours.summary(session, services, row).as_json()
    assert (data["cap"], data["used"], data["left"], data["percent_used"]) == (23.0, 3.5, 19.5, 15)
    assert data["by_kind"] == {"consultation": 2.0, "training": 1.5}
    assert data["support_ends"] == SUPPORT_ENDS.isoformat() and data["region"] == "CN"
    assert data["sessions"][1] == {"held_on": DAY.isoformat(), "kind": "training", "hours": 1.5, "note": None,
                                   "recorded_by": "izumi", "reception_number": number}


# --- the commands -------------------------------------------------------------------------


@pytest.fixture
def cli_config(tmp_path):
    """A config file on disk and the services it gives (same database)."""
    path = write_config(tmp_path / "config.toml", config_data(tmp_path))
    return path, build(config.load(path, environ={}))


def invoke(path: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(path), *args])


def test_log_session_command_logs_and_refuses_with_exit_1(cli_config):
    path, services = cli_config
    number = add_application(services)
    ok = invoke(path, "log-session", number, "--date", DAY.isoformat(), "--kind", "training",
                "--hours", "22", "--note", "就業規則レビュー", "--by", "uehara")
    assert ok.exit_code == 0, ok.output
    assert "22.0 h used, 1.0 h left" in ok.output and "now in_service" in ok.output
    refused = invoke(path, "log-session", number, "--date", DAY.isoformat(), "--kind", "training",
                     "--hours", "1.5")
    assert refused.exit_code == 1
    assert "mailbot: application TS-2026-0001" in refused.output and "22.0 h used, 1.0 h left" in refused.output
    bad_date = invoke(path, "log-session", number, "--date", "2026/07/01", "--kind", "training", "--hours", "1")
    assert bad_date.exit_code == 1 and "YYYY-MM-DD" in bad_date.output
    with Session(services.engine) as session:
        [row] = session.exec(select(HoursSession)).all()
    assert (row.hours, row.kind, row.note, row.recorded_by) == (22.0, "training", "就業規則レビュー", "uehara")


def test_hours_command_json_and_send(cli_config):
    path, services = cli_config
    number = add_application(services)
    log(services, number, amount=3)
    shown = invoke(path, "hours", number, "--json")
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert (data["used"], data["left"], data["reception_number"], data["mailed"]) == (3.0, 20.0, number, False)
    assert mails(services) == []
    sent = invoke(path, "hours", number, "--send")
    assert sent.exit_code == 0, sent.output
    assert "3.0 h" in sent.output and f"mailed to {CONTACT}, {APPLIED_FROM}" in sent.output
    [mail] = mails(services)
    assert "ご依頼いただきました" in mail.body and "残り時間：20時間" in mail.body and not mail.automatic


def test_hours_send_is_refused_before_the_service_starts(cli_config):
    path, services = cli_config
    number = add_application(services, state="documents_received")
    refused = invoke(path, "hours", number, "--send")
    assert refused.exit_code == 1 and "not in state 'documents_received'" in refused.output
    assert invoke(path, "hours", number).exit_code == 0  # staff may still look
    assert mails(services) == []


def test_hours_command_unknown_application(cli_config):
    path, _ = cli_config
    result = invoke(path, "hours", "TS-2026-9999")
    assert result.exit_code == 1 and "mailbot: no application 'TS-2026-9999'" in result.output
