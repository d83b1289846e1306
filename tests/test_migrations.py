"""Schema migrations: the revisions build the models' schema, and an old database is refused until upgraded.

The first test is the one that catches a model changed without a revision
(mailbot.schema's docstring says how to write one). Tests that need an
"older" database than this mailbot's copy the shipped migrations and add a
revision of their own (9002: a column on outbox), so they hold whatever
number of real revisions there is.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import Session, SQLModel, select
from typer.testing import CliRunner

from mailbot import schema
from mailbot.cli import app as cli
from mailbot.db import make_engine, open_engine
from mailbot.errors import SchemaError
from mailbot.admission import find_duplicate
from mailbot.models import Application, OutboxAttachment, OutboxMessage, ReplyRecipient

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = schema.SCRIPT_LOCATION

EXTRA_REVISION = '''"""outbox priority (a test's revision, on top of the shipped ones)"""

import sqlalchemy as sa
from alembic import op

revision = "9002"
down_revision = {down!r}


def upgrade():
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("priority")
'''


def sqlite_url(tmp_path: Path, name: str = "mailbot.db") -> str:
    return f"sqlite:///{tmp_path / name}"


def described(engine: sa.Engine) -> dict:
    """Everything create_all or a revision decides, per table: columns, keys, indexes, constraints."""
    inspector = sa.inspect(engine)
    return {
        table: {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "foreign_keys": sorted((tuple(fk["constrained_columns"]), fk["referred_table"],
                                    tuple(fk["referred_columns"])) for fk in inspector.get_foreign_keys(table)),
            "indexes": sorted((ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                              for ix in inspector.get_indexes(table)),
            "unique": sorted(tuple(uq["column_names"]) for uq in inspector.get_unique_constraints(table)),
        }
        for table in inspector.get_table_names()
    }


def short(difference) -> str:
    """('add_table', Table('digest_run', ...)) as 'add_table digest_run'; column changes as a list."""
    if isinstance(difference, list):  # modify_* of one column: [(op, schema, table, column, ...)]
        return "; ".join(f"{op} {table}.{column}" for op, _schema, table, column, *_ in difference)
    kind, *rest = difference
    return " ".join([kind, *(str(getattr(item, "name", item)) for item in rest)])


@pytest.fixture
def newer_scripts(tmp_path) -> str:
    """The shipped migrations plus revision 9002 (adds outbox.priority), in a folder of the test's own."""
    scripts = tmp_path / "migrations"
    shutil.copytree(SHIPPED, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9002_outbox_priority.py").write_text(
        EXTRA_REVISION.format(down=schema.head(SHIPPED)), encoding="utf-8")
    return str(scripts)


def write_config(tmp_path: Path, url: str) -> Path:
    """This checkout's config.toml on the test's database (rules and templates from the checkout)."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///data/mailbot.db"', f'url = "{url}"')
    text = text.replace('rules_dir = "rules"', f'rules_dir = "{ROOT / "rules"}"')
    text = text.replace('templates_dir = "templates"', f'templates_dir = "{ROOT / "templates"}"')
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def mailbot(config: Path, *args: str) -> subprocess.CompletedProcess:
    """The real command line, as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "mailbot.cli", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def store_a_reply(engine: sa.Engine) -> None:
    """An outbox mail with an attachment: rows in a table the revisions re-create, and one pointing at it.

    Written with plain INSERTs of the columns every revision has: the models'
    own writes (models.ReplyRecipient's) need the tables of the head.
    """
    now = datetime(2026, 11, 27, 6, 0, tzinfo=timezone.utc)
    with engine.begin() as conn:
        mail_id = conn.execute(OutboxMessage.__table__.insert().values(
            kind="receipt", to_addrs=["Tanaka@example.co.jp"], subject="受付のお知らせ",
            body="受付番号 TS-2026-0001", message_id="<r1@mailbot.example.jp>", automatic=True,
            status="pending", attempts=0, next_attempt_at=now, created_at=now, references=[],
        )).inserted_primary_key[0]
        conn.execute(OutboxAttachment.__table__.insert().values(
            outbox_id=mail_id, filename="申請書.pdf", content_type="application/pdf", data=b"%PDF-1.7"))


def reply_kept(engine: sa.Engine) -> bool:
    with Session(engine) as session:
        mail = session.exec(select(OutboxMessage)).one()
        attachment = session.exec(select(OutboxAttachment)).one()
    return (mail.subject == "受付のお知らせ" and attachment.outbox_id == mail.id
            and attachment.data == b"%PDF-1.7")


def made_before_migrations(url: str) -> None:
    """A database as mailbot made it before migrations: the baseline's tables, no alembic_version.

    The baseline revision is what create_all made then (the first test held
    them equal while it was the head); the models have moved on since.
    """
    schema.upgrade(url, to=schema.baseline())
    engine = open_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE alembic_version")
    engine.dispose()


# --- the revisions build what the models declare ---------------------------------------------


def test_the_revisions_build_exactly_the_models_schema(tmp_path):
    """GIVEN an empty database upgraded to the head by the shipped revisions
    WHEN alembic compares it with every mailbot table (models.py, tables/*.py)
    THEN there is no difference: a model changed without a revision fails here."""
    url = sqlite_url(tmp_path)
    assert schema.upgrade(url) == schema.head()
    engine = open_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    assert [short(difference) for difference in differences] == [], (
        'the models differ from the revisions: write one with python -m mailbot.schema revision "..."')
    assert schema.current(engine) == schema.head()


def test_a_first_start_and_db_upgrade_make_the_same_database(tmp_path):
    """GIVEN two empty databases
    WHEN one is opened by make_engine (create_all at the head) and the other upgraded revision by revision
    THEN both have the same tables, columns, keys, indexes and constraints, and are at the head."""
    first_start = make_engine(sqlite_url(tmp_path, "first.db"))
    upgraded_url = sqlite_url(tmp_path, "upgraded.db")
    schema.upgrade(upgraded_url)
    upgraded = open_engine(upgraded_url)
    assert described(first_start) == described(upgraded)
    assert "raw_message" in described(first_start) and "alembic_version" in described(first_start)
    assert schema.current(first_start) == schema.current(upgraded) == schema.head()


def test_a_database_at_the_head_is_accepted_and_keeps_its_data(tmp_path):
    url = sqlite_url(tmp_path)
    store_a_reply(make_engine(url))
    assert reply_kept(make_engine(url))


# --- an older revision --------------------------------------------------------------------------


def test_an_older_database_is_refused_until_db_upgrade(tmp_path, newer_scripts, monkeypatch):
    """GIVEN a database with a reply at the shipped head, and a mailbot whose migrations have 9002 on top
    WHEN that mailbot opens it, runs `run --once`, then `db upgrade`, then opens it again
    THEN it is refused naming both revisions and `mailbot db upgrade`, exit 1 without a traceback;
         the upgrade brings it to 9002 with the new column, and it is accepted with the reply kept."""
    url = sqlite_url(tmp_path)
    store_a_reply(make_engine(url))
    config = write_config(tmp_path, url)
    monkeypatch.setattr(schema, "SCRIPT_LOCATION", newer_scripts)

    with pytest.raises(SchemaError) as refused:
        make_engine(url)
    assert f"at schema {schema.head(SHIPPED)} (" in str(refused.value)
    assert "needs schema 9002 (outbox priority" in str(refused.value)
    assert "mailbot --config <path> db upgrade" in str(refused.value)

    run = CliRunner().invoke(cli, ["--config", str(config), "run", "--once"])
    assert run.exit_code == 1 and isinstance(run.exception, SystemExit), run.exception
    assert f"mailbot --config {config} db upgrade" in run.output and "9002" in run.output

    upgraded = CliRunner().invoke(cli, ["--config", str(config), "db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"{schema.head(SHIPPED)} -> 9002" in upgraded.output
    engine = make_engine(url)
    assert schema.current(engine) == "9002"
    assert "priority" in [column["name"] for column in sa.inspect(engine).get_columns("outbox")]
    assert reply_kept(engine)


def test_db_current_says_where_the_database_is_and_what_is_needed(tmp_path, newer_scripts, monkeypatch):
    url = sqlite_url(tmp_path)
    config = write_config(tmp_path, url)
    empty = CliRunner().invoke(cli, ["--config", str(config), "db", "current"])
    assert empty.exit_code == 0 and "empty: the first start creates it at the head" in empty.output
    make_engine(url)
    at_head = CliRunner().invoke(cli, ["--config", str(config), "db", "current"])
    assert at_head.exit_code == 0 and "up to date" in at_head.output

    monkeypatch.setattr(schema, "SCRIPT_LOCATION", newer_scripts)
    behind = CliRunner().invoke(cli, ["--config", str(config), "db", "current"])
    assert behind.exit_code == 1
    assert f"current: {schema.head(SHIPPED)}\nhead:    9002\n" in behind.output
    assert f"mailbot --config {config} db upgrade" in behind.output


@pytest.mark.sqlite_only(reason="SQLite migrates with foreign keys off; PostgreSQL refuses the DELETE itself")
def test_an_upgrade_that_would_leave_a_dangling_reference_changes_nothing(tmp_path, newer_scripts):
    """GIVEN a reply with an attachment, and a faulty 9002 that deletes the reply (SQLite migrates with
         foreign keys off, so nothing stops it as it runs)
    WHEN `db upgrade` runs
    THEN it is refused naming the table, and the database is still at its revision with the reply."""
    url = sqlite_url(tmp_path)
    store_a_reply(make_engine(url))
    faulty = Path(newer_scripts) / "versions" / "9002_outbox_priority.py"
    faulty.write_text(faulty.read_text(encoding="utf-8").replace(
        'batch.add_column(sa.Column("priority", sa.Integer(), nullable=True))',
        'batch.add_column(sa.Column("priority", sa.Integer(), nullable=True))\n'
        '    op.execute("DELETE FROM outbox")'), encoding="utf-8")
    with pytest.raises(SchemaError, match="outbox_attachment.*nothing was changed"):
        schema.upgrade(url, newer_scripts)
    engine = open_engine(url)
    assert schema.current(engine) == schema.head(SHIPPED)
    assert reply_kept(engine)


# --- made before migrations -----------------------------------------------------------------------


def test_a_database_made_before_migrations_is_refused_then_adopted_by_db_upgrade(tmp_path):
    """GIVEN a database with mailbot's tables and a reply but no schema revision
    WHEN make_engine opens it, the real `mailbot run --once` starts, then `mailbot db upgrade` runs
    THEN both refuse naming `mailbot db upgrade` (exit 1, no traceback); the upgrade records the
         baseline and upgrades to the head; then it is accepted with the reply kept."""
    url = sqlite_url(tmp_path)
    made_before_migrations(url)
    store_a_reply(open_engine(url))
    config = write_config(tmp_path, url)

    with pytest.raises(SchemaError, match="made before schema migrations.*db upgrade"):
        make_engine(url)
    run = mailbot(config, "run", "--once")
    assert run.returncode == 1
    assert "made before schema migrations" in run.stderr and "db upgrade" in run.stderr
    assert "Traceback" not in run.stderr, run.stderr

    upgraded = mailbot(config, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"none -> {schema.head()}" in upgraded.stdout
    engine = make_engine(url)
    assert schema.current(engine) == schema.head()
    assert reply_kept(engine)
    with Session(engine) as session:  # 0004 counted the stored reply for the loop guard
        assert [r.address for r in session.exec(select(ReplyRecipient))] == ["tanaka@example.co.jp"]


def test_db_upgrade_refuses_pre_migration_tables_that_are_not_the_baseline(tmp_path):
    """GIVEN a database without a revision whose outbox lacks a baseline column and has an unknown table
    WHEN `db upgrade` runs
    THEN it refuses naming both, and the database is left as it was (no revision recorded)."""
    url = sqlite_url(tmp_path)
    made_before_migrations(url)
    engine = open_engine(url, foreign_keys=False)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE outbox DROP COLUMN last_error")
        conn.exec_driver_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    with pytest.raises(SchemaError) as refused:
        schema.upgrade(url)
    assert "column outbox.last_error is missing" in str(refused.value)
    assert "table notes is not in the baseline" in str(refused.value)
    assert schema.current(engine) is None


# --- a newer revision -------------------------------------------------------------------------------


def test_a_database_upgraded_by_a_newer_mailbot_is_refused(tmp_path, newer_scripts):
    """GIVEN a database upgraded to 9002 by a mailbot that has that revision
    WHEN this mailbot (the shipped revisions) opens it, or is asked to upgrade it
    THEN both refuse: the database is at a revision it does not know, and nothing is downgraded."""
    url = sqlite_url(tmp_path)
    schema.upgrade(url, newer_scripts)
    with pytest.raises(SchemaError, match="at schema revision 9002, which this mailbot does not know"):
        make_engine(url)
    with pytest.raises(SchemaError, match="a database is never downgraded"):
        schema.upgrade(url)
    assert schema.current(open_engine(url)) == "9002"


def test_upgrading_to_0004_gives_stored_applications_their_company_keys(tmp_path):
    """GIVEN a database at 0003 holding a queued application (㈱, a full-width corporate number)
    WHEN it is upgraded to the head
    THEN the application has its company keys, and a new form from the same company finds it."""
    url = sqlite_url(tmp_path)
    schema.upgrade(url, to="0003")
    engine = open_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO application (reception_number, state, company_name, corporate_number, country, sender, "
            "fields, problems, created_at, updated_at) VALUES ('TS-2026-0001', 'queued', '㈱ テスト工業', "
            "'７０００－０１２０５０００２', 'VN', 'a@example.co.jp', '{}', '[]', '2026-11-01', '2026-11-01')")
    engine.dispose()
    schema.upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        stored = session.exec(select(Application)).one()
        assert (stored.company_key, stored.corporate_digits) == ("株式会社テスト工業", "7000012050002")
        assert find_duplicate(session, corporate_number=None, company_name="株式会社 テスト工業",
                              country="VN").id == stored.id


# --- first starts -----------------------------------------------------------------------------------


def test_two_first_starts_at_once_create_the_database_once(tmp_path):
    """GIVEN an empty database path
    WHEN two processes open it at the same moment (the daemon and a staff command)
    THEN both succeed and the database records the head once."""
    url = sqlite_url(tmp_path)
    code = f"from mailbot.db import make_engine; make_engine({url!r}); print('ok')"
    starts = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for _ in range(2)]
    results = [start.communicate(timeout=120) for start in starts]
    assert [start.returncode for start in starts] == [0, 0], results
    with open_engine(url).connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == [schema.head()]


#: Each process opens each new database at the same instant (the start times are shared).
_RACE = """
import sys, time
from mailbot.db import open_engine
start, paths = float(sys.argv[1]), sys.argv[2:]
for number, path in enumerate(paths):
    while time.time() < start + number * 0.25:
        time.sleep(0.001)
    with open_engine("sqlite:///" + path).connect() as conn:
        print(conn.exec_driver_sql("PRAGMA journal_mode").scalar())
"""


@pytest.mark.sqlite_only(reason="the switch of a new SQLite file to WAL")
def test_processes_opening_a_new_sqlite_file_at_the_same_instant_all_get_it_in_wal(tmp_path):
    """GIVEN 12 new SQLite paths
    WHEN 4 processes open each of them at the same instant
    THEN every open succeeds and reads WAL (SQLite answers the racing switch
    "database is locked" without waiting: one open in five failed before)."""
    paths = [str(tmp_path / f"new-{number}.db") for number in range(12)]
    start = time.time() + 3  # after the four interpreters have imported mailbot
    racers = [subprocess.Popen([sys.executable, "-c", _RACE, str(start), *paths], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [racer.communicate(timeout=120) for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * 4, [err[-600:] for _, err in results]
    assert [out.split() for out, _ in results] == [["wal"] * 12] * 4


def test_a_new_revision_is_written_from_the_models(tmp_path):
    """GIVEN a copy of the shipped migrations (the models at their head)
    WHEN `python -m mailbot.schema revision` writes the next one into it
    THEN it is numbered after the head, revises it, and has nothing to do (no model changed)."""
    scripts = tmp_path / "migrations"
    shutil.copytree(SHIPPED, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    path = schema.new_revision("nothing changed", str(scripts))
    text = path.read_text(encoding="utf-8")
    assert path.parent == scripts / "versions" and path.name.endswith("_nothing_changed.py")
    assert f"down_revision = {schema.head(SHIPPED)!r}" in text
    assert "op." not in text.split("def upgrade()")[1], text  # no operation: the models are the head
    assert schema.head(str(scripts)) == path.name.split("_")[0]
