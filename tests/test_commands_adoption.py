"""The step-02 staff commands through the real command line: adopt, decline, withdraw,
applications, show; every state against every command; two processes racing to adopt.

Each test has its own SQLite file and config (tests/test_adoption.py's helpers).
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from mailbot import admission, adoption, workflow
from mailbot.cli import app as cli
from mailbot.db import transaction
from mailbot.models import OutboxMessage, Transition
from tests.test_adoption import apply, contact, get, mails, make, moves, number, sender

STAFF = "kawano"


def mailbot(tmp_path, *args: str):
    """``mailbot --config <this test's config> ARGS`` in-process, on a wide terminal."""
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.toml"), *args],
                                env={"COLUMNS": "220"})
    return result


@pytest.fixture
def four(tmp_path):
    """Cap 3: companies 1-3 queued, company 4 first on the waiting list."""
    services = make(tmp_path)
    for n in range(1, 5):
        apply(services, n)
    return services


def force(services, reception_number: str, state: str) -> None:
    with transaction(services.engine) as session:
        row = adoption.find(session, reception_number)
        row.state = state
        session.add(row)


# --- adopt, decline, withdraw ---------------------------------------------------------


def test_adopt_without_ids_takes_the_queue_and_says_so(four, tmp_path):
    result = mailbot(tmp_path, "adopt", "--by", STAFF)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [number(1), number(2), number(3)]
    assert f"queued to {contact(1)}, {sender(1)}" in lines[0]
    assert moves(four, number(1))[-2][2:] == (STAFF, "next in queue order")
    again = mailbot(tmp_path, "adopt", "--by", STAFF)
    assert again.exit_code == 0 and "nothing to adopt" in again.stdout
    assert len(mails(four, "adopted")) == 3


def test_adopt_without_ids_records_the_reason_when_given(four, tmp_path):
    assert mailbot(tmp_path, "adopt", "--reason", "第1回審査会で承認", "--by", STAFF).exit_code == 0
    assert [moves(four, number(n))[-2][3] for n in (1, 2, 3)] == ["第1回審査会で承認"] * 3


def test_adopt_out_of_order_is_refused_without_a_reason(four, tmp_path):
    result = mailbot(tmp_path, "adopt", number(2), "--by", STAFF)
    assert result.exit_code == 1
    assert result.stderr.startswith("mailbot: application TS-2026-0002 ('queued') is out of queue order: "
                                    "TS-2026-0001 ('queued') comes first")
    assert mails(four) == []
    ok = mailbot(tmp_path, "adopt", number(2), "--reason", "先方の事情で至急", "--by", STAFF)
    assert ok.exit_code == 0, ok.output
    assert moves(four, number(2))[-2] == ("queued", "adopted", STAFF, "先方の事情で至急")


def test_decline_needs_a_reason_and_withdraw_offers_the_place(four, tmp_path):
    assert mailbot(tmp_path, "decline", number(4)).exit_code == 2  # --reason is required
    result = mailbot(tmp_path, "withdraw", number(1), "--reason", "メールで辞退", "--by", STAFF)
    assert result.exit_code == 0, result.output
    first, promoted = result.stdout.splitlines()
    assert first.startswith(f"{number(1)}  株式会社テスト1: withdrawn")
    assert promoted.startswith(f"{number(4)}  株式会社テスト4: moved up from the waiting list, now queued")
    declined = mailbot(tmp_path, "decline", number(4), "--reason", "要件不備", "--by", STAFF)
    assert declined.exit_code == 0, declined.output
    assert [m.kind for m in mails(four)] == ["withdrawn", "place_offered", "declined"]
    assert get(four, number(4)).state == "declined"


ADOPT_FROM = {"queued", "waitlisted"}
DECLINE_FROM = {"received", "needs_fix", "queued", "waitlisted"}


@pytest.mark.parametrize("state", sorted(workflow.STATES))
@pytest.mark.parametrize("command", ["adopt", "decline", "withdraw"])
def test_every_state_against_every_command(tmp_path, state, command):
    """Legal: the command moves it (exit 0). Illegal: exit 1, the message names the state, nothing changes."""
    services = make(tmp_path)
    apply(services, 1)
    force(services, number(1), state)
    legal = {"adopt": state in ADOPT_FROM, "decline": state in DECLINE_FROM,
             "withdraw": workflow.can_move(state, "withdrawn")}[command]
    result = mailbot(tmp_path, command, number(1), "--reason", "テスト", "--by", STAFF)
    after = get(services, number(1)).state
    if legal:
        expected = {"adopt": "documents_requested", "decline": "declined", "withdraw": "withdrawn"}[command]
        assert (result.exit_code, after) == (0, expected), result.output
        assert len(mails(services)) >= 1
    else:
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("mailbot: ") and f"'{state}'" in result.stderr
        assert (after, mails(services)) == (state, [])


def test_an_unknown_reception_number_exits_1(four, tmp_path):
    for command in (["adopt", "TS-2026-0404"], ["withdraw", "TS-2026-0404"], ["show", "TS-2026-0404"],
                    ["decline", "TS-2026-0404", "--reason", "x"]):
        result = mailbot(tmp_path, *command)
        assert (result.exit_code, result.stderr) == (1, "mailbot: no application 'TS-2026-0404'\n")


# --- applications and show --------------------------------------------------------------


def test_applications_lists_in_queue_order_with_live_positions(four, tmp_path):
    apply(four, 5)
    mailbot(tmp_path, "withdraw", number(2), "--by", STAFF)
    rows = json.loads(mailbot(tmp_path, "applications", "--json").stdout)
    assert [(r["reception_number"], r["state"], r["position"]) for r in rows] == [
        (number(1), "queued", 1), (number(2), "withdrawn", None), (number(3), "queued", 2),
        (number(4), "queued", 3), (number(5), "waitlisted", 1)]
    assert set(rows[0]) == {"reception_number", "state", "company_name", "country", "hours_requested",
                            "received_at", "queued_at", "position", "seal"}
    assert (rows[0]["company_name"], rows[0]["country"], rows[0]["seal"]) == ("株式会社テスト1", "VN", "ok")
    assert rows[0]["queued_at"] == "2026-06-01T00:01:00+00:00"
    waiting = json.loads(mailbot(tmp_path, "applications", "--state", "waitlisted", "--json").stdout)
    assert [r["reception_number"] for r in waiting] == [number(5)]
    text = mailbot(tmp_path, "applications")
    assert text.exit_code == 0 and text.stdout.rstrip().endswith("5 application(s)")
    table = [line for line in text.stdout.splitlines() if "TS-2026" in line]
    assert [line.split("│")[1].strip() for line in table] == [number(n) for n in (1, 2, 3, 4, 5)]
    assert "株式会社テスト4" in table[3] and "waitlisted" in table[4]
    assert "2026-06-01 09:01" in table[0]  # queued at 00:01 UTC, shown in Japan time


def test_applications_refuses_an_unknown_state(four, tmp_path):
    result = mailbot(tmp_path, "applications", "--state", "accepted")
    assert result.exit_code == 2 and "--state must be one of adopted," in result.stderr


def test_show_gives_fields_history_and_mails(four, tmp_path):
    mailbot(tmp_path, "adopt", "--by", STAFF)
    data = json.loads(mailbot(tmp_path, "show", number(1), "--json").stdout)
    assert (data["reception_number"], data["state"], data["sender"]) == (number(1), "documents_requested", sender(1))
    assert data["fields"] == {"contact_name": "田中 1郎"} and data["seal"] == "ok"
    assert data["seal_reading"] == {"present": True, "near_field": True}
    assert [(h["from"], h["to"], h["by"]) for h in data["history"]] == [
        (None, "received", "service"), ("received", "queued", "service"),
        ("queued", "adopted", STAFF), ("adopted", "documents_requested", STAFF)]
    [mail] = data["mails"]
    assert (mail["kind"], mail["status"], mail["to"]) == ("adopted", "pending", [contact(1), sender(1)])
    assert number(1) in mail["subject"]
    text = mailbot(tmp_path, "show", number(1)).stdout
    for words in ("documents_requested", "株式会社テスト1", "next in queue order", STAFF, "pending",
                  "田中 1郎", "採択のお知らせ"):
        assert words in text, words


def test_rich_markup_in_applicant_text_prints_as_written(tmp_path):
    services = make(tmp_path)
    apply(services, 1)
    with transaction(services.engine) as session:
        row = adoption.find(session, number(1))
        row.company_name = "[bold]株式会社[/] テスト"
        session.add(row)
    for args in (["applications"], ["show", number(1)]):
        result = mailbot(tmp_path, *args)
        assert result.exit_code == 0 and "[bold]株式会社[/] テスト" in result.stdout, result.output


# --- two processes racing ------------------------------------------------------------------


def _adopt_in_child(config_path: str, names: list[str], start_at: float, out) -> None:
    """A child process: its own services and engine; counting is slowed to widen the race."""
    from mailbot import config
    from mailbot.services import build

    real = admission._count

    def slow(session, states):
        value = real(session, states)
        time.sleep(0.2)
        return value

    admission._count = slow
    services = build(config.load(config_path, environ={}))
    time.sleep(max(0.0, start_at - time.time()))
    try:
        with transaction(services.engine) as session:
            done = (adoption.adopt_named(session, services, names, actor="p", reason="r") if names
                    else adoption.adopt_next(session, services, actor="p"))
            out.put([o.app.reception_number for o in done])
    except Exception as exc:  # noqa: BLE001 -- the parent asserts on what was refused
        out.put(f"{type(exc).__name__}: {exc}")


def _race(tmp_path, names: list[str]) -> list:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    start_at = time.time() + 4  # both children are built by then
    children = [context.Process(target=_adopt_in_child,
                                args=(str(tmp_path / "config.toml"), names, start_at, out))
                for _ in range(2)]
    for child in children:
        child.start()
    results = [out.get(timeout=120) for _ in children]
    for child in children:
        child.join(30)
    return results


@pytest.fixture
def one_left(tmp_path):
    """Cap 3: two adopted, the third queued: one last place, one last application."""
    services = make(tmp_path)
    for n in range(1, 4):
        apply(services, n)
    with transaction(services.engine) as session:
        adoption.adopt_named(session, services, [number(1), number(2)], actor=STAFF)
    return services


def _adopted_once(services) -> None:
    with transaction(services.engine) as session:
        app_id = adoption.find(session, number(3)).id
        adopted = session.exec(select(Transition).where(
            Transition.application_id == app_id, Transition.to_state == "adopted")).all()
        sent = session.exec(select(OutboxMessage).where(
            OutboxMessage.application_id == app_id, OutboxMessage.kind == "adopted")).all()
    assert (len(adopted), len(sent)) == (1, 1)
    assert get(services, number(3)).state == "documents_requested"


def test_two_processes_adopting_the_next_never_adopt_twice(one_left, tmp_path):
    results = _race(tmp_path, [])
    assert sorted(results, key=len) == [[], [number(3)]]
    _adopted_once(one_left)


def test_two_processes_adopting_the_same_application_one_is_refused(one_left, tmp_path):
    results = _race(tmp_path, [number(3)])
    refused = [r for r in results if isinstance(r, str)]
    assert [r for r in results if isinstance(r, list)] == [[number(3)]]
    assert refused == ["WorkflowError: application TS-2026-0003: cannot adopt from 'documents_requested' "
                       "(only from queued, waitlisted)"]
    _adopted_once(one_left)


def test_two_mailbot_adopt_commands_at_once(one_left, tmp_path):
    """The real command in two real processes, started together."""
    # The installed script: `python -m mailbot.cli` runs cli.py as __main__, whose app
    # lacks the area commands (they register on the imported mailbot.cli).
    command = [str(Path(sys.executable).parent / "mailbot"), "--config", str(tmp_path / "config.toml"),
               "adopt", "--by", STAFF]
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
    outputs = sorted(child.communicate(timeout=120)[0] for child in children)
    assert [child.returncode for child in children] == [0, 0]
    assert outputs[0].startswith(number(3)) and "nothing to adopt" in outputs[1]
    _adopted_once(one_left)


def test_show_gives_the_hours_used_and_left(four, tmp_path):
    """The company's ledger (mailbot.hours) appears in show: a logged session, used and left."""
    from datetime import date

    from mailbot import hours

    force(four, number(1), "interview_scheduled")
    with transaction(four.engine) as session:
        hours.log_session(session, four, adoption.find(session, number(1)), held_on=date(2026, 7, 1),
                          kind="training", hours=4.5, by=STAFF, note="工場の研修", today=date(2026, 7, 2))
    data = json.loads(mailbot(tmp_path, "show", number(1), "--json").stdout)
    ledger = data["hours"]
    assert (ledger["cap"], ledger["used"], ledger["left"]) == (23.0, 4.5, 18.5)
    assert ledger["by_kind"] == {"consultation": 0.0, "training": 4.5}
    assert [(s["held_on"], s["kind"], s["hours"]) for s in ledger["sessions"]] == [("2026-07-01", "training", 4.5)]
    text = mailbot(tmp_path, "show", number(1)).stdout
    assert "hours: 4.5 h used of 23.0 h, 18.5 h left (19%)" in text and "工場の研修" in text


def test_show_gives_the_documents_still_missing_and_the_meetings(four, tmp_path):
    """After adoption show names both step-03 documents as missing; once documents are in and an
    interview is set, it lists the meeting (when in Japan time, place, expert)."""
    from datetime import datetime, timezone

    from mailbot import schedule

    mailbot(tmp_path, "adopt", number(1), "--by", STAFF)
    data = json.loads(mailbot(tmp_path, "show", number(1), "--json").stdout)
    assert data["documents"]["missing"] == ["held_info_list", "self_check"] and data["meetings"] == []
    assert "still missing: 保有情報リスト" in mailbot(tmp_path, "show", number(1)).stdout
    force(four, number(1), "documents_received")
    with transaction(four.engine) as session:
        wanted = schedule.meeting("2026-07-10 14:00", minutes=90, expert="山本 専門家", place="ジェトロ本部 5階")
        schedule.schedule(session, four, number(1), "interview", wanted, actor=STAFF,
                          now=datetime(2026, 7, 1, tzinfo=timezone.utc))
    [meeting] = json.loads(mailbot(tmp_path, "show", number(1), "--json").stdout)["meetings"]
    assert (meeting["step"], meeting["state"], meeting["minutes"], meeting["expert"]) == (
        "interview", "scheduled", 90, "山本 専門家")
    assert meeting["starts_at"] == "2026-07-10T05:00:00+00:00" and "14:00〜15:30" in meeting["when"]
    text = mailbot(tmp_path, "show", number(1)).stdout
    assert "ジェトロ本部 5階" in text and "14:00〜15:30" in text
