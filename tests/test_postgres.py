"""PostgreSQL as the production database: the schema, first starts, and the cap under concurrency.

These run with ``--database postgresql`` only, on the session's throwaway
server (tests/postgres.py), each on a database of its own. The rest of the
suite runs on PostgreSQL too with that option; here is what only PostgreSQL
can show: its own column types, processes that really run side by side
(SQLite's BEGIN IMMEDIATE lets one writer at a time, PostgreSQL does not).
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from collections import Counter
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import Session, SQLModel, select

from mailbot import admission, db, schema, workflow
from mailbot.config import ProgramSettings
from mailbot.db import make_engine, open_engine, transaction
from mailbot.models import Application, FolderState, OutboxMessage, RawMessage
from tests.test_migrations import described, short

pytestmark = pytest.mark.postgresql_only

T0 = datetime(2026, 6, 1, 0, 0, tzinfo=timezone.utc)


def program(cap: int) -> ProgramSettings:
    return ProgramSettings(opens=date(2026, 5, 27), closes=date(2027, 1, 31), cap=cap)


# --- the schema ------------------------------------------------------------------------------------


def test_the_migrations_build_what_a_first_start_builds(postgres):
    """GIVEN two empty PostgreSQL databases
    WHEN one is upgraded revision by revision and the other opened by make_engine (create_all + stamp)
    THEN both match the models and each other, with PostgreSQL's types: timestamptz, bytea, json."""
    upgraded_url, first_start_url = postgres.new_database("upgraded"), postgres.new_database("first")
    assert schema.upgrade(upgraded_url) == schema.head()
    upgraded, first_start = open_engine(upgraded_url), make_engine(first_start_url)
    with upgraded.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert [short(difference) for difference in compare_metadata(context, SQLModel.metadata)] == []
    assert described(upgraded) == described(first_start)
    with first_start.connect() as conn:
        types = dict(conn.exec_driver_sql(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public'").all())
    assert (types["raw_message.arrived_at"], types["raw_message.raw"], types["application.fields"]) == (
        "timestamp with time zone", "bytea", "json")
    assert schema.current(upgraded) == schema.current(first_start) == schema.head()
    for engine in (upgraded, first_start):
        engine.dispose()


def test_times_keep_their_instant_whatever_the_server_time_zone(postgres):
    """A naive time is UTC (as on SQLite), not the session's zone; every time reads back aware UTC."""
    engine = make_engine(postgres.new_database("zones"))
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER DATABASE " + engine.url.database + " SET timezone TO 'Asia/Tokyo'")
    engine.dispose()
    with transaction(engine) as session:
        naive, aware = _application(session, "TS-2026-0001"), _application(session, "TS-2026-0002")
        naive.queued_at = datetime(2026, 6, 1, 9, 0)
        aware.queued_at = datetime(2026, 6, 1, 18, 0, tzinfo=admission.TOKYO)
    with Session(engine) as session:
        times = [app.queued_at for app in session.exec(select(Application).order_by(Application.id))]
    assert times == [datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)] * 2
    assert all(moment.utcoffset() == timedelta(0) for moment in times)


def test_text_with_nul_is_stored_not_refused(postgres):
    """PostgreSQL text cannot hold NUL: a sender's NUL becomes U+FFFD instead of losing the reply."""
    engine = make_engine(postgres.new_database("nul"))
    with transaction(engine) as session:
        session.add(OutboxMessage(kind="receipt", to_addrs=["a@example.jp"], subject="件名\x00です",
                                  body="\x00 様", message_id="<n1@example.jp>"))
        app = _application(session, "TS-2026-0001")
        app.fields = {"company_name": "株式会社\x00テスト"}
    with Session(engine) as session:
        mail = session.exec(select(OutboxMessage)).one()
        app = session.exec(select(Application)).one()
    assert (mail.subject, mail.body) == ("件名\ufffdです", "\ufffd 様")
    assert app.fields == {"company_name": "株式会社\x00テスト"}  # JSON keeps it, escaped as \u0000


def test_imap_numbers_up_to_32_bits_unsigned_are_stored(postgres):
    """IMAP UIDs and UIDVALIDITY go up to 2**32 - 1, past PostgreSQL's INTEGER: stored and read back."""
    highest = 2**32 - 1
    url = postgres.new_database("uids")
    schema.upgrade(url)  # through the revisions, as a production database gets there
    engine = make_engine(url)
    with transaction(engine) as session:
        session.add(RawMessage(folder="INBOX", uidvalidity=highest, uid=highest, arrived_at=T0, size=3,
                               sha256="0" * 64, raw=b"abc"))
        session.add(FolderState(folder="INBOX", uidvalidity=highest, uidnext=highest))
        app = _application(session, "TS-2026-0001")
        app.queued_uid = highest
    with Session(engine) as session:
        raw, state = session.exec(select(RawMessage)).one(), session.exec(select(FolderState)).one()
        app = session.exec(select(Application)).one()
    assert (raw.uidvalidity, raw.uid, state.uidvalidity, state.uidnext, app.queued_uid) == (highest,) * 5
    engine.dispose()


def _application(session: Session, number: str) -> Application:
    app = Application(reception_number=number, state="received", sender="a@example.co.jp")
    session.add(app)
    session.flush()
    return app


# --- first starts ----------------------------------------------------------------------------------


def test_first_starts_at_once_create_the_database_once(postgres):
    """GIVEN an empty PostgreSQL database
    WHEN three processes open it at the same moment (the daemon, a staff command, a second instance)
    THEN all succeed (they queue on the schema lock) and the database records the head once."""
    url = postgres.new_database("first_starts")
    start_at = time.time() + 3  # after every child has imported mailbot
    code = ("import time; from mailbot.db import make_engine; "
            f"time.sleep(max(0, {start_at} - time.time())); make_engine({url!r}); print('ok')")
    starts = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for _ in range(3)]
    results = [start.communicate(timeout=120) for start in starts]
    assert [start.returncode for start in starts] == [0, 0, 0], results
    engine = open_engine(url)
    with engine.connect() as conn:
        versions = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    assert versions == [schema.head()]
    assert "application" in sa.inspect(engine).get_table_names()
    engine.dispose()


# --- the cap and the reception numbers under concurrency --------------------------------------------

PROCESSES, EACH, CAP = 3, 6, 5


def _apply_in_child(url: str, worker: int, start_at: float, results) -> None:
    """One process: EACH applications, each numbered and admitted in its own transaction."""
    counted = admission._count

    def count_then_pause(*args):  # widen the gap between counting the places and taking one
        found = counted(*args)
        time.sleep(0.02)
        return found

    admission._count = count_then_pause
    engine = db.open_engine(url)
    time.sleep(max(0.0, start_at - time.time()))
    for n in range(EACH):
        with transaction(engine) as session:
            app = Application(reception_number=admission.next_reception_number(session, "TS", 2026),
                              state="received", sender=f"w{worker}n{n}@example.co.jp")
            workflow.start(session, app, "received", actor="service", reason="arrived")
            admission.admit(session, app, arrived_at=T0 + timedelta(seconds=n), uid=worker * 100 + n,
                            program=program(CAP))
    engine.dispose()
    results.put(worker)


def test_processes_admitting_at_once_keep_the_numbers_and_the_cap(postgres):
    """GIVEN an empty database and a cap of 5
    WHEN three processes receive and admit six applications each at the same moment
    THEN every application has its own reception number 0001..0018, exactly five are queued at
    places 1..5, and the thirteen others are on the waiting list at 1..13."""
    url = postgres.new_database("admission")
    make_engine(url).dispose()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 4  # every child has imported mailbot and connected by then
    children = [context.Process(target=_apply_in_child, args=(url, worker, start_at, results))
                for worker in range(PROCESSES)]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
    assert [child.exitcode for child in children] == [0] * PROCESSES
    engine = open_engine(url)
    with Session(engine) as session:
        apps = session.exec(select(Application)).all()
    engine.dispose()
    total = PROCESSES * EACH
    assert sorted(app.reception_number for app in apps) == [f"TS-2026-{n:04d}" for n in range(1, total + 1)]
    assert Counter(app.state for app in apps) == {"queued": CAP, "waitlisted": total - CAP}
    assert sorted(app.position for app in apps if app.state == "queued") == list(range(1, CAP + 1))
    assert sorted(app.position for app in apps if app.state == "waitlisted") == list(range(1, total - CAP + 1))


# --- the test harness itself -----------------------------------------------------------------------


def test_a_sqlite_path_named_by_a_test_is_a_postgresql_database_of_its_own(tmp_path):
    """With --database postgresql the suite's sqlite:///… URLs open PostgreSQL, in this process and in
    the processes a test starts: the same path the same database, another path another one."""
    first, again, other = (make_engine(f"sqlite:///{tmp_path / name}") for name in ("a.db", "a.db", "b.db"))
    assert {first.dialect.name, other.dialect.name} == {"postgresql"}
    assert first.url.database == again.url.database != other.url.database
    code = f"from mailbot.db import make_engine; print(make_engine('sqlite:///{tmp_path / 'a.db'}').url.database)"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert child.stdout.strip() == first.url.database, child.stderr
    assert not (tmp_path / "a.db").exists()
    for engine in (first, again, other):
        engine.dispose()
