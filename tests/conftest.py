"""Shared fixtures: real servers on 127.0.0.1 (add new fixtures in their own section)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from mailbot import db
from mailbot.config import ImapSettings
from tests import dovecot as dovecot_server
from tests import postgres as postgres_server

ROOT = Path(__file__).resolve().parent.parent

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
    editing each, the engines mailbot opens (db.open_engine's create_engine)
    get the database that stands for that file: another path, another
    database; the same path, the same database. In this process, and in every
    Python process a test starts (tests/postgres_children/sitecustomize.py).
    """
    if request.config.getoption("--database") == "sqlite":
        yield "sqlite"
        return
    server = request.getfixturevalue("postgres")
    paths = [str(postgres_server.CHILDREN_PATH), str(ROOT), os.environ.get("PYTHONPATH", "")]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db, "create_engine", postgres_server.engines_on_postgres(server.port, db.create_engine))
        patch.setenv(postgres_server.PORT_VARIABLE, str(server.port))
        patch.setenv("PYTHONPATH", os.pathsep.join(path for path in paths if path))
        yield "postgresql"
