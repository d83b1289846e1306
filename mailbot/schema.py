"""The database schema's revision: what a database is at, what this mailbot needs, the upgrade.

The revisions are alembic scripts in mailbot/migrations/versions/ (0001 is
the baseline: the schema as it was when migrations began). What
``db.make_engine`` does with a database, through ``ensure_current``:

    no tables at all (a first start, the demo, a test)  create every table and record the head
    at this mailbot's head                              nothing (one query)
    at an older revision                                refuse: SchemaError, run `db upgrade`
    tables but no revision (made before migrations)     refuse: SchemaError, run `db upgrade`
    at a revision this mailbot does not know (newer)    refuse: SchemaError (the code went back)

``upgrade`` (``mailbot db upgrade``) brings a database to the head; a
database made before migrations is first checked against the baseline's
tables and columns, then recorded at the baseline and upgraded from there.

A new revision, after changing a model: ``python -m mailbot.schema revision
"what changed"`` writes versions/NNNN_*.py by comparing the models with a
database at the head; read it, tidy it, commit it with the model change.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from mailbot import db
from mailbot.errors import SchemaError

#: The migrations shipped in the package. Tests point this elsewhere to have more revisions.
SCRIPT_LOCATION = str(Path(__file__).parent / "migrations")
VERSION_TABLE = "alembic_version"
UPGRADE_COMMAND = "mailbot --config <path> db upgrade"


class _OnlyRevisionsRun(logging.Filter):
    """alembic names its dialect at every check of every engine; only a revision run is news."""

    quiet = False  # set while the baseline is rebuilt in memory: it runs revisions too

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.quiet or str(record.msg).startswith(("Context impl", "Will assume")))


_alembic_log = _OnlyRevisionsRun()
logging.getLogger("alembic.runtime.migration").addFilter(_alembic_log)


def head(script_location: str | None = None) -> str:
    """The revision this mailbot's models need (the newest script)."""
    return _script(script_location or SCRIPT_LOCATION).get_current_head()


def current(engine: Engine) -> str | None:
    """The revision the database is at, or None (empty, or made before migrations)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def ensure_current(engine: Engine, script_location: str | None = None) -> None:
    """Create an empty database at the head; accept one at the head; refuse any other."""
    script = _script(script_location or SCRIPT_LOCATION)
    needed = script.get_current_head()
    # One transaction, one at a time: two first starts cannot both create the tables.
    with engine.begin() as conn:
        _one_at_a_time(conn)
        found = MigrationContext.configure(conn).get_current_revision()
        if found == needed:
            return
        if found is None and not _mailbot_tables(conn):
            SQLModel.metadata.create_all(conn)  # faster than replaying every revision
            MigrationContext.configure(conn).stamp(script, needed)
            return
    raise SchemaError(_refusal(engine, found, script))


def baseline(script_location: str | None = None) -> str:
    """The first revision: the schema as it was when migrations began."""
    return _script(script_location or SCRIPT_LOCATION).get_base()


def upgrade(engine_or_url: Engine | str, script_location: str | None = None, *, to: str = "head") -> str:
    """Bring the database to the head, or ``to`` (from empty, older, or the pre-migration tables)."""
    location = script_location or SCRIPT_LOCATION
    script = _script(location)
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else engine_or_url
    engine = db.open_engine(url, foreign_keys=False)  # SQLite: batch mode copies tables that others reference
    try:
        with engine.begin() as conn:  # all or nothing: a failed revision leaves the database as it was
            _one_at_a_time(conn)
            found = MigrationContext.configure(conn).get_current_revision()
            if found is not None and not _knows(script, found):
                raise SchemaError(_refusal(engine, found, script))
            if found is None and _mailbot_tables(conn):
                _adopt_baseline(conn, location)
            command.upgrade(_config(location, conn), to)
            _check_references(conn)
    finally:
        engine.dispose()
    return script.get_current_head() if to == "head" else to


def _one_at_a_time(conn: Connection) -> None:
    """Hold the schema lock until this transaction ends: a first start or upgrade at a time.

    SQLite's BEGIN IMMEDIATE (db.py) already is that lock. PostgreSQL runs
    transactions side by side: two first starts would both find no table and
    the second's CREATE TABLE would fail, so they queue on db.serialise's
    advisory lock; the second then finds the database at the head.
    """
    db.serialise(conn, "schema")


def is_empty(engine: Engine) -> bool:
    """No mailbot table yet: the first start creates the database at the head."""
    with engine.connect() as conn:
        return not _mailbot_tables(conn)


def _check_references(conn: Connection) -> None:
    """SQLite migrates with foreign keys off (batch copies): refuse to commit a dangling reference."""
    if conn.dialect.name != "sqlite":
        return  # PostgreSQL checks every reference as the revision runs
    dangling = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if dangling:
        raise SchemaError("the upgrade would leave rows referring to rows that do not exist "
                          f"(table, rowid, referred table): {[tuple(row[:3]) for row in dangling[:10]]}; "
                          "nothing was changed")


def baseline_differences(conn: Connection, script_location: str | None = None) -> list[str]:
    """How a database's tables and columns differ from the baseline revision's (empty: they match)."""
    expected = _baseline_columns(script_location or SCRIPT_LOCATION)
    inspector = sa.inspect(conn)
    found = {name: {column["name"] for column in inspector.get_columns(name)}
             for name in inspector.get_table_names() if name != VERSION_TABLE}
    problems = [f"table {name} is missing" for name in sorted(expected.keys() - found.keys())]
    problems += [f"table {name} is not in the baseline" for name in sorted(found.keys() - expected.keys())]
    for name in sorted(expected.keys() & found.keys()):
        problems += [f"column {name}.{column} is missing" for column in sorted(expected[name] - found[name])]
        problems += [f"column {name}.{column} is not in the baseline"
                     for column in sorted(found[name] - expected[name])]
    return problems


def _adopt_baseline(conn: Connection, location: str) -> None:
    """Record a pre-migration database at the baseline, once its tables are the baseline's."""
    script = _script(location)
    problems = baseline_differences(conn, location)
    if problems:
        raise SchemaError("the database has tables but no schema revision, and they are not the "
                          f"baseline {script.get_base()}'s, so it cannot be upgraded safely: "
                          + "; ".join(problems))
    MigrationContext.configure(conn).stamp(script, script.get_base())


@cache
def _baseline_columns(location: str) -> dict[str, set[str]]:
    """The tables and columns the baseline revision creates, from an in-memory database."""
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        _alembic_log.quiet = True
        try:
            command.upgrade(_config(location, conn), _script(location).get_base())
        finally:
            _alembic_log.quiet = False
        inspector = sa.inspect(conn)
        columns = {name: {column["name"] for column in inspector.get_columns(name)}
                   for name in inspector.get_table_names() if name != VERSION_TABLE}
    engine.dispose()
    return columns


def _refusal(engine: Engine, found: str | None, script: ScriptDirectory) -> str:
    """Why this database is refused: what it is at, what this mailbot needs, what to run."""
    database = engine.url.render_as_string(hide_password=True)
    needed = _describe(script, script.get_current_head())
    if found is None:
        return (f"the database {database} was made before schema migrations (it has tables but no "
                f"schema revision); this mailbot needs schema {needed}. Back it up, then run "
                f"`{UPGRADE_COMMAND}`")
    if not _knows(script, found):
        return (f"the database {database} is at schema revision {found}, which this mailbot does not "
                f"know (a newer mailbot upgraded it); this mailbot needs schema {needed}. "
                "Run the newer mailbot: a database is never downgraded")
    return (f"the database {database} is at schema {_describe(script, found)}; this mailbot needs "
            f"schema {needed}. Back it up, then run `{UPGRADE_COMMAND}`")


def _describe(script: ScriptDirectory, revision: str) -> str:
    """'0002 (outbox priority)': the revision and the first line of its message."""
    return f"{revision} ({script.get_revision(revision).doc.rstrip('.')})"


def knows(revision: str, script_location: str | None = None) -> bool:
    """Whether ``revision`` is one of this mailbot's (False: a newer mailbot made it)."""
    return _knows(_script(script_location or SCRIPT_LOCATION), revision)


def _knows(script: ScriptDirectory, revision: str) -> bool:
    return revision in {known.revision for known in script.walk_revisions()}


def _mailbot_tables(conn: Connection) -> list[str]:
    return [name for name in sa.inspect(conn).get_table_names() if name != VERSION_TABLE]


@cache
def _script(location: str) -> ScriptDirectory:
    """The revision scripts, read once per process (every engine asks for the head)."""
    return ScriptDirectory.from_config(_config(location))


def _config(location: str, conn: Connection | None = None) -> Config:
    """alembic's configuration in code: no alembic.ini, the scripts found in the package."""
    config = Config()
    config.set_main_option("script_location", location)
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = conn  # env.py migrates on this connection
    return config


def new_revision(message: str, script_location: str | None = None) -> Path:
    """Write the next revision by comparing the models with a scratch database at the head."""
    location = script_location or SCRIPT_LOCATION
    number = f"{len(list(_script(location).walk_revisions())) + 1:04d}"
    with tempfile.TemporaryDirectory() as scratch:
        engine = db.open_engine(f"sqlite:///{Path(scratch) / 'head.db'}", foreign_keys=False)
        upgrade(engine, location)
        with engine.begin() as conn:
            made = command.revision(_config(location, conn), message, autogenerate=True, rev_id=number)
        engine.dispose()
    _script.cache_clear()
    return Path(made.path)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "revision":
        sys.exit('usage: python -m mailbot.schema revision "what changed"')
    print(new_revision(sys.argv[2]))
