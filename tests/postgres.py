"""A throwaway PostgreSQL server on 127.0.0.1 for tests (like tests/dovecot.py for IMAP).

One cluster per test session: ``initdb`` into a short temp dir, ``postgres``
listening on 127.0.0.1 on a free port (its unix socket in the temp dir, never
/var/run), trust authentication for 127.0.0.1 only, fsync off because the data
is thrown away. ``new_database()`` gives each use a fresh, empty database.

``--database postgresql`` (tests/conftest.py) runs every test on it:
``engines_on_postgres`` makes mailbot.db's create_engine open, for a test's
``sqlite:///…/X.db``, a database of its own (``database_for_sqlite_url``: the
same path, in any process, always the same database). The Python processes a
test starts (a `mailbot` command, a multiprocessing child) do the same through
tests/postgres_children/sitecustomize.py, put on their PYTHONPATH with the
server's port in ``PORT_VARIABLE``.

The server binaries come from Debian's postgresql package
(/usr/lib/postgresql/<version>/bin, not on the PATH); `.ci/setup --test`
installs it. PostgreSQL refuses to run as root: as root the cluster belongs
to the packaged ``postgres`` user.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from psycopg import errors, sql

PR_SET_PDEATHSIG = 1
SUPERUSER = "postgres"
DEBIAN_BINARIES = Path("/usr/lib/postgresql")
#: Set for the processes a test starts: the port of the session's server.
PORT_VARIABLE = "MAILBOT_TEST_POSTGRES_PORT"
CHILDREN_PATH = Path(__file__).parent / "postgres_children"

_made: set[tuple[int, str]] = set()
_made_lock = threading.Lock()


class PostgresUnavailable(RuntimeError):
    """initdb/postgres are missing: the tests that need them fail with this message."""


def find_binaries(root: Path = DEBIAN_BINARIES) -> Path:
    """The bin directory of the newest PostgreSQL installed (the one with initdb and postgres)."""
    candidates = [path.parent for path in root.glob("*/bin/initdb") if (path.parent / "postgres").exists()]
    if not candidates:
        raise PostgresUnavailable(f"no PostgreSQL server under {root}/<version>/bin "
                                  "(apt-get install postgresql)")
    return max(candidates, key=lambda path: _version_key(path.parent.name))


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (0,)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _owner() -> pwd.struct_passwd:
    """Who runs the cluster: the packaged postgres user as root (PostgreSQL refuses uid 0), else us."""
    return pwd.getpwnam("postgres") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())


def _as_owner(owner: pwd.struct_passwd, *, die_with_parent: bool):
    """The child's set-up: drop to the owner, then ask for SIGKILL when pytest dies.

    The death signal is set after the uid change, which clears it; that is
    why the server is not started through runuser (the signal would reach
    runuser, not postgres).
    """

    def setup() -> None:
        if os.geteuid() != owner.pw_uid:
            os.setgid(owner.pw_gid)
            os.initgroups(owner.pw_name, owner.pw_gid)
            os.setuid(owner.pw_uid)
        if die_with_parent:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    return setup


def server_options(base: Path, port: int) -> list[str]:
    """Loopback only, the socket in ``base``, durability off (the data is thrown away)."""
    settings = {
        "listen_addresses": "127.0.0.1", "port": str(port), "unix_socket_directories": str(base),
        "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
        # Tests open many engines (each with its pool) and several processes at once.
        "max_connections": "300", "shared_buffers": "32MB",
        "log_min_messages": "warning", "log_min_error_statement": "panic",
    }
    return [item for key, value in settings.items() for item in ("-c", f"{key}={value}")]


HBA = """\
# The test cluster: its own unix socket and 127.0.0.1, nothing else.
local all all trust
host  all all 127.0.0.1/32 trust
"""


class Postgres:
    """One running cluster; ``start()`` then ``new_database()`` for each use."""

    def __init__(self) -> None:
        self.bin = find_binaries()
        self.owner = _owner()
        self.base = Path(tempfile.mkdtemp(prefix="pg"))  # short: unix sockets allow 108 bytes
        self.port = 0
        self.process: subprocess.Popen | None = None
        self._databases = 0
        self._lock = threading.Lock()

    @property
    def data(self) -> Path:
        return self.base / "data"

    def start(self, timeout: float = 30.0) -> Postgres:
        os.chown(self.base, self.owner.pw_uid, self.owner.pw_gid)
        self._initdb()
        self.port = free_port()
        with open(self.base / "server.log", "wb") as log:  # a file: a full pipe would block the server
            self.process = subprocess.Popen(
                [str(self.bin / "postgres"), "-D", str(self.data), *server_options(self.base, self.port)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.base,
                preexec_fn=_as_owner(self.owner, die_with_parent=True))
        self._wait_ready(timeout)
        return self

    def _initdb(self) -> None:
        result = subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-sync"],
            capture_output=True, text=True, cwd=self.base, timeout=120,
            preexec_fn=_as_owner(self.owner, die_with_parent=False))
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}): {result.stderr[-2000:]}")
        (self.data / "pg_hba.conf").write_text(HBA)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited ({self.process.returncode}): {self._diagnostics()}")
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.05)  # not accepting connections yet
        self.stop()
        raise RuntimeError(f"postgres did not answer on port {self.port} within {timeout}s: "
                           f"{self._diagnostics()}")

    def _diagnostics(self) -> str:
        log = self.base / "server.log"
        return log.read_text(errors="replace")[-2000:].strip() if log.exists() else ""

    def stop(self) -> None:
        """A fast shutdown (SIGINT: sessions are ended), SIGKILL if it lingers; remove the directory."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _kill_group(self.process.pid)
                self.process.wait(timeout=5)
        shutil.rmtree(self.base, ignore_errors=True)

    def dsn(self, database: str) -> str:
        return libpq_dsn(self.port, database)

    def url(self, database: str) -> str:
        return sqlalchemy_url(self.port, database)

    def new_database(self, prefix: str = "test") -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        with self._lock:
            self._databases += 1
            name = f"{re.sub(r'[^a-z0-9_]', '', prefix.lower())[:40] or 'test'}_{self._databases}"
        create_database(self.port, name)
        return self.url(name)


def libpq_dsn(port: int, database: str) -> str:
    """A libpq connection string (for psycopg itself)."""
    return f"host=127.0.0.1 port={port} user={SUPERUSER} dbname={database}"


def sqlalchemy_url(port: int, database: str) -> str:
    """The SQLAlchemy URL mailbot's [database] url takes."""
    return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/{database}"


def database_for_sqlite_url(port: int, sqlite_url: str) -> str:
    """The URL of the database that stands for this SQLite file: one per resolved path.

    The name comes from the path alone, so a child process finds the same one.
    """
    path = Path(sqlite_url.removeprefix("sqlite:///")).resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:16]
    name = f"{re.sub(r'[^a-z0-9]', '', path.stem.lower())[:20]}_{digest}"
    create_database(port, name)
    return sqlalchemy_url(port, name)


def create_database(port: int, name: str) -> None:
    """CREATE DATABASE once; another process that made it first is fine."""
    with _made_lock:
        if (port, name) in _made:
            return
        with psycopg.connect(libpq_dsn(port, "postgres"), autocommit=True) as conn:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except (errors.DuplicateDatabase, errors.UniqueViolation):
                pass  # made by another process for the same path (UniqueViolation: at the same moment)
        _made.add((port, name))


def engines_on_postgres(port: int, create_engine):
    """A create_engine for mailbot.db that opens a SQLite file's stand-in database instead."""
    from mailbot import db

    def create_engine_on_postgres(url, **options):
        text = url if isinstance(url, str) else url.render_as_string(hide_password=False)
        if text.startswith("sqlite:///") and ":memory:" not in text:
            text = database_for_sqlite_url(port, text)
            options = db.engine_options(text)  # the SQLite connect_args mean nothing to psycopg
        return create_engine(text, **options)

    return create_engine_on_postgres


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # already gone
