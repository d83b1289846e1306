"""Admission: reception numbers, the period, first come first served within the cap, duplicates."""

from __future__ import annotations

import threading
import time
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlmodel import select

from mailbot import admission, workflow
from mailbot.admission import (
    admit,
    cap_status,
    find_duplicate,
    is_open,
    next_reception_number,
)
from mailbot.config import ProgramSettings
from mailbot.db import make_engine, transaction
from mailbot.errors import WorkflowError
from mailbot.models import Application, Transition

T0 = datetime(2024, 6, 3, 1, 0, tzinfo=timezone.utc)


def program(cap: int = 3) -> ProgramSettings:
    return ProgramSettings(opens=date(2024, 5, 27), closes=date(2025, 1, 31), cap=cap)


@pytest.fixture
def engine(tmp_path):
    return make_engine(f"sqlite:///{tmp_path / 'mailbot.db'}")


def received(session, name: str, *, country: str = "VN", number: str | None = None) -> Application:
    app = Application(
        reception_number=next_reception_number(session, "TS", 2024), state="received",
        sender="a@example.co.jp", company_name=name, corporate_number=number, country=country,
    )
    workflow.start(session, app, "received", actor="service", reason="arrived")
    return app


def test_reception_numbers_count_per_prefix_and_year(engine):
    with transaction(engine) as session:
        got = [next_reception_number(session, "TS", 2026) for _ in range(3)]
        other = next_reception_number(session, "TS", 2027)
    with transaction(engine) as session:
        later = next_reception_number(session, "TS", 2026)
    assert got == ["TS-2026-0001", "TS-2026-0002", "TS-2026-0003"]
    assert (other, later) == ("TS-2027-0001", "TS-2026-0004")


@pytest.mark.parametrize("moment, expected", [
    (datetime(2024, 5, 26, 14, 59, tzinfo=timezone.utc), False),  # 23:59 on 5/26 in Tokyo
    (datetime(2024, 5, 26, 15, 0, tzinfo=timezone.utc), True),  # 00:00 on 5/27 in Tokyo
    (datetime(2025, 1, 31, 14, 59), True),  # naive = UTC: 23:59 on 1/31 in Tokyo
    (datetime(2025, 1, 31, 15, 0, tzinfo=timezone.utc), False),
])
def test_is_open_uses_the_tokyo_date(moment, expected):
    assert is_open(program(), moment) is expected


def test_first_come_first_served_then_waiting_list(engine):
    results = []
    with transaction(engine) as session:
        for n in range(5):
            app = received(session, f"会社{n}")
            results.append(admit(session, app, arrived_at=T0 + timedelta(minutes=n), uid=100 + n,
                                 program=program(3)))
    assert [(r.state, r.position) for r in results] == [
        ("queued", 1), ("queued", 2), ("queued", 3), ("waitlisted", 1), ("waitlisted", 2)]
    with transaction(engine) as session:
        assert [a.company_name for a in admission.queue(session)] == ["会社0", "会社1", "会社2"]
        assert [a.queued_uid for a in admission.waiting_list(session)] == [103, 104]
        assert cap_status(session, program(3)) == {
            "limit": 3, "adopted": 0, "queued": 3, "waitlisted": 2, "taken": 3, "remaining": 0}
        kinds = [(t.from_state, t.to_state) for t in session.exec(select(Transition))]
        assert kinds.count(("received", "queued")) == 3 and kinds.count(("received", "waitlisted")) == 2


def test_adopted_and_later_hold_places_withdrawn_and_declined_do_not(engine):
    with transaction(engine) as session:
        apps = [received(session, f"会社{n}") for n in range(4)]
        for n, app in enumerate(apps):
            admit(session, app, arrived_at=T0, uid=n, program=program(3))
        workflow.move(session, apps[0], "adopted", actor="泉", reason="screened")
        workflow.move(session, apps[0], "documents_requested", actor="service", reason="x")
        workflow.move(session, apps[1], "withdrawn", actor="service", reason="辞退")
        assert cap_status(session, program(3))["adopted"] == 1
        promoted = admission.promote_next(session, program(3), actor="service", reason="place freed")
        assert promoted is apps[3] and (apps[3].state, apps[3].position) == ("queued", 3)
        assert admission.promote_next(session, program(3), actor="service", reason="x") is None
        late = received(session, "会社9")
        assert admit(session, late, arrived_at=T0, uid=9, program=program(3)) == admission.Admission(
            "waitlisted", 1)


def test_first_ahead_and_live_positions_after_a_withdrawal(engine):
    """The queue's head is ahead of everyone else; live positions close the gap a withdrawal leaves,
    while ``position`` keeps what each applicant was told."""
    with transaction(engine) as session:
        apps = [received(session, f"会社{n}") for n in range(5)]
        for n, app in enumerate(apps):
            admit(session, app, arrived_at=T0 + timedelta(minutes=n), uid=n, program=program(3))
        assert admission.first_ahead(session, apps[0]) is None
        assert admission.first_ahead(session, apps[2]) is apps[0]
        assert admission.first_ahead(session, apps[3]) is apps[0]  # waitlisted: the queue comes first
        workflow.move(session, apps[1], "withdrawn", actor="service", reason="辞退")
        ranks = admission.live_positions(session)
        assert [ranks.get(a.id) for a in apps] == [1, None, 2, 1, 2]
        assert [a.position for a in apps] == [1, 2, 3, 1, 2]
        assert (admission.places_taken(session), admission.adopted_count(session)) == (2, 0)
        for app in (apps[0], apps[2]):
            workflow.move(session, app, "adopted", actor="泉", reason="screened")
        assert admission.first_ahead(session, apps[4]) is apps[3]  # queue empty: the waiting list's head
        assert admission.first_ahead(session, apps[3]) is None
        assert (admission.places_taken(session), admission.adopted_count(session)) == (2, 2)


def test_needs_fix_holds_no_place_and_queues_when_complete(engine):
    with transaction(engine) as session:
        first = received(session, "先に届いた会社")
        workflow.move(session, first, "needs_fix", actor="service", reason="seal_missing")
        second = received(session, "後から届いた会社")
        assert admit(session, second, arrived_at=T0, uid=2, program=program(1)).state == "queued"
        fixed = admit(session, first, arrived_at=T0 + timedelta(hours=1), uid=3, program=program(1))
    assert fixed == admission.Admission("waitlisted", 1)
    assert first.queued_uid == 3  # queues at the time it became complete


def test_admit_refuses_an_application_already_in_the_queue(engine):
    with transaction(engine) as session:
        app = received(session, "会社")
        admit(session, app, arrived_at=T0, uid=1, program=program())
        with pytest.raises(WorkflowError, match="cannot admit from 'queued'"):
            admit(session, app, arrived_at=T0, uid=2, program=program())


def test_find_duplicate_same_company_same_region(engine):
    with transaction(engine) as session:
        by_number = received(session, "株式会社サンプル精機", number="7000012050002")
        admit(session, by_number, arrived_at=T0, uid=1, program=program())
        by_name = received(session, "㈱ テスト工業", country="TH")
        admit(session, by_name, arrived_at=T0, uid=2, program=program())
        received(session, "株式会社まだ不備", country="CN")  # received only: not active
    with transaction(engine) as session:
        same = find_duplicate(session, corporate_number="７０００－０１２０５０００２",
                              company_name="別名", country="VN")
        assert same is not None and same.id == by_number.id
        assert find_duplicate(session, corporate_number=None, company_name="株式会社テスト工業",
                              country="TH").id == by_name.id
        assert find_duplicate(session, corporate_number=None, company_name="株式会社 テスト工業",
                              country="VN") is None  # other region: another application
        assert find_duplicate(session, corporate_number="1180301018771",
                              company_name="株式会社サンプル精機", country="VN") is None
        assert find_duplicate(session, corporate_number=None, company_name="株式会社まだ不備",
                              country="CN") is None
        assert find_duplicate(session, corporate_number="7000012050002", company_name="x",
                              country="VN", exclude_id=by_number.id) is None
        # The stored one left its corporate number blank: a form with a number matches it by name.
        assert find_duplicate(session, corporate_number="1180301018771", company_name="(株)テスト工業",
                              country="TH").id == by_name.id
        assert find_duplicate(session, corporate_number=None, company_name="   ", country="TH") is None


def test_the_company_keys_follow_every_change_of_name_and_number(engine):
    """GIVEN an application whose company name and corporate number a corrected form changed
    WHEN it is written
    THEN the stored keys are the new ones: the old name no longer finds it, the new one does."""
    with transaction(engine) as session:
        app = received(session, "旧社名株式会社", number="7000012050002")
        admit(session, app, arrived_at=T0, uid=1, program=program())
    with transaction(engine) as session:
        app = session.get(type(app), app.id)
        app.company_name, app.corporate_number = "㈱ 新社名", None
    with transaction(engine) as session:
        assert (app.company_key, app.corporate_digits) == ("株式会社新社名", None)
        assert find_duplicate(session, corporate_number=None, company_name="旧社名株式会社", country="VN") is None
        assert find_duplicate(session, corporate_number=None, company_name="株式会社新社名",
                              country="VN").id == app.id


def _slow_count(monkeypatch):
    """Widen the race: every count sleeps, so unserialised admissions would both see a free place."""
    real = admission._count

    def slow(session, states):
        value = real(session, states)
        time.sleep(0.05)
        return value

    monkeypatch.setattr(admission, "_count", slow)


def _apply(engine, name: str, uid: int, cap: int, barrier: threading.Barrier, out: list) -> None:
    barrier.wait()
    with transaction(engine) as session:
        app = received(session, name)
        out.append((name, admit(session, app, arrived_at=T0, uid=uid, program=program(cap))))


def test_two_sessions_racing_for_the_last_place(engine, monkeypatch):
    with transaction(engine) as session:
        for n in range(17):
            admit(session, received(session, f"先行{n}"), arrived_at=T0, uid=n, program=program(18))
    _slow_count(monkeypatch)
    barrier, out = threading.Barrier(2), []
    threads = [threading.Thread(target=_apply, args=(engine, f"競合{n}", 100 + n, 18, barrier, out))
               for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted((a.state, a.position) for _, a in out) == [("queued", 18), ("waitlisted", 1)]
    with transaction(engine) as session:
        assert cap_status(session, program(18))["queued"] == 18


def test_many_threads_never_exceed_the_cap(engine, monkeypatch):
    _slow_count(monkeypatch)
    barrier, out = threading.Barrier(8), []
    threads = [threading.Thread(target=_apply, args=(engine, f"会社{n}", n, 3, barrier, out))
               for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    queued = sorted(a.position for _, a in out if a.state == "queued")
    waiting = sorted(a.position for _, a in out if a.state == "waitlisted")
    assert (queued, waiting) == ([1, 2, 3], [1, 2, 3, 4, 5])
    with transaction(engine) as session:
        numbers = [a.reception_number for a in session.exec(select(Application))]
    assert len(set(numbers)) == 8
