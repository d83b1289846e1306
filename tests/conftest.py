"""Shared fixtures: real servers on 127.0.0.1 (add new fixtures in their own section)."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from mailbot import db
from mailbot.config import DatabaseSettings, ImapSettings
from tests import dovecot as dovecot_server
from tests import postgres as postgres_server

# --- IMAP: Dovecot 2.3 ------------------------------------------------------


@pytest.fixture(scope="session")
def dovecot():
    """A running Dovecot (tests/dovecot.py ``Dovecot``) for the whole session.

    A missing binary fails the tests (locally and on CI alike): the IMAP path is
    only ever tested against the real server, and `.ci/setup --test` installs it.
    """
    try:
        server = dovecot_server.Dovecot()
    except dovecot_server.DovecotUnavailable as exc:
        pytest.fail(f"{exc} — run `.ci/setup --test` to install it")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def imap_settings(dovecot, request) -> ImapSettings:
    """ImapSettings (security none, folder INBOX) for a fresh, empty mailbox of this test."""
    prefix = re.sub(r"[^a-z0-9]", "", request.node.name.lower())[:20] or "user"
    return dovecot.settings(dovecot.new_user(prefix))


# --- The database: SQLite, or PostgreSQL with --database postgresql ---------


def pytest_addoption(parser):
    parser.addoption("--database", choices=("sqlite", "postgresql"), default="sqlite",
                     help="the database every test's mailbot uses: SQLite files (default), or a "
                          "throwaway PostgreSQL server on 127.0.0.1 (one fresh database per SQLite path)")


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only(reason): a test about SQLite itself; skipped with "
                                       "--database postgresql")
    config.addinivalue_line("markers", "postgresql_only: a test about PostgreSQL; skipped on SQLite")


def pytest_collection_modifyitems(config, items):
    database = config.getoption("--database")
    for item in items:
        if database == "postgresql" and (mark := item.get_closest_marker("sqlite_only")):
            reason = mark.kwargs.get("reason") or (mark.args[0] if mark.args else "about SQLite itself")
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))
        if database == "sqlite" and item.get_closest_marker("postgresql_only"):
            item.add_marker(pytest.mark.skip(reason="PostgreSQL only (run with --database postgresql)"))


@pytest.fixture(scope="session")
def postgres():
    """A running PostgreSQL (tests/postgres.py ``Postgres``) for the whole session.

    A missing server fails the tests, as for Dovecot: `.ci/setup --test` installs it.
    """
    try:
        server = postgres_server.Postgres()
    except postgres_server.PostgresUnavailable as exc:
        pytest.fail(f"{exc} — run `.ci/setup --test` to install it")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def database(request):
    """"sqlite", or "postgresql": then every SQLite file a test names is a PostgreSQL database.

    Tests write ``sqlite:///<tmp_path>/mailbot.db`` everywhere; rather than
    editing each, the engines mailbot opens in this process (db.open_engine's
    create_engine) and the mailbot processes a test starts with --config
    (MAILBOT_DATABASE__URL, which mailbot.config honours) get the database
    that stands for that file: another path, another database; the same path,
    the same database.
    """
    if request.config.getoption("--database") == "sqlite":
        yield "sqlite"
        return
    server = request.getfixturevalue("postgres")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db, "create_engine", _engine_on(server, db.create_engine))
        patch.setattr(subprocess.Popen, "__init__", _popen_on(server, subprocess.Popen.__init__))
        yield "postgresql"


def _stand_in(server: postgres_server.Postgres, url) -> str:
    """The PostgreSQL URL for a SQLite file URL; any other URL as it is."""
    text = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    if text.startswith("sqlite:///") and ":memory:" not in text:
        return server.database_for_sqlite_url(text)
    return text


def _engine_on(server: postgres_server.Postgres, create_engine):
    def create_engine_on_postgres(url, **options):
        mapped = _stand_in(server, url)
        if mapped != url:
            options = db.engine_options(mapped)  # the SQLite connect_args mean nothing to psycopg
        return create_engine(mapped, **options)

    return create_engine_on_postgres


def _popen_on(server: postgres_server.Postgres, popen_init):
    def popen_init_on_postgres(self, args, *more, env=None, **options):
        environ = os.environ if env is None else env
        url = environ.get("MAILBOT_DATABASE__URL") or _config_database_url(args)
        if url is not None and url.startswith("sqlite:///"):
            env = {**environ, "MAILBOT_DATABASE__URL": _stand_in(server, url)}
        popen_init(self, args, *more, env=env, **options)

    return popen_init_on_postgres


def _config_database_url(args) -> str | None:
    """The [database] url of a `mailbot --config FILE …` command line, as mailbot would resolve it."""
    if isinstance(args, (str, bytes)) or "--config" not in list(args):
        return None
    items = [str(arg) for arg in args]
    path = Path(items[items.index("--config") + 1])
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None  # mailbot itself reports the file; nothing to map
    url = data.get("database", {}).get("url", DatabaseSettings().url)
    if not isinstance(url, str) or not url.startswith("sqlite:///") or ":memory:" in url:
        return None
    relative = url.removeprefix("sqlite:///")
    return f"sqlite:///{(path.resolve().parent / relative).resolve()}"
