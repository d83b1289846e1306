"""A throwaway Dovecot 2.3 IMAP server on 127.0.0.1 for tests.

Recipe and pitfalls: ../shared/notes/test-mail-servers.md. One server per
test session; a static passdb lets any user name log in (password
:data:`PASSWORD`) to a fresh empty mailbox, so each test takes its own user.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from imapclient import IMAPClient

from mailbot.config import ImapSettings

PASSWORD = "test-password"
PR_SET_PDEATHSIG = 1


class DovecotUnavailable(RuntimeError):
    """The dovecot binary is missing: the tests that need it fail with this message."""


def find_binary() -> str:
    """Path of the dovecot binary (it lives in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise DovecotUnavailable("dovecot not installed (apt-get install dovecot-imapd)")
    return found


def check_version(binary: str) -> str:
    """The version string; RuntimeError unless it is 2.3 (2.4 has another config syntax)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    if not re.match(r"2\.3\.", out.strip()):
        raise RuntimeError(f"tests need Dovecot 2.3; {binary} --version says {out.strip()!r}")
    return out.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: get SIGKILL when pytest dies, so no Dovecot is left behind."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class _Account:
    """Who owns the mail files: the packaged dovecot user as root, else ourselves."""

    uid: int
    gid: int
    user: str
    root: bool

    @classmethod
    def current(cls) -> _Account:
        if os.geteuid() == 0:  # Dovecot refuses mail access as uid 0
            entry = pwd.getpwnam("dovecot")
            return cls(entry.pw_uid, entry.pw_gid, "dovecot", True)
        entry = pwd.getpwuid(os.geteuid())
        return cls(entry.pw_uid, entry.pw_gid, entry.pw_name, False)


def config_text(base: Path, port: int, account: _Account) -> str:
    """A standalone dovecot.conf keeping every path inside ``base``."""
    users = "" if account.root else (
        f"default_login_user = {account.user}\ndefault_internal_user = {account.user}\n")
    no_chroot = "" if account.root else "  chroot =\n"
    return f"""\
instance_name = dc{port}
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:{base}/mail/%n/Maildir
mail_fsync = never
mail_max_userip_connections = 200
mailbox_idle_check_interval = 1 secs
first_valid_uid = {min(account.uid, 1)}
first_valid_gid = {min(account.gid, 1)}
{users}
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={account.uid} gid={account.gid} home={base}/mail/%n
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
{no_chroot}}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
{no_chroot}}}
"""


class Dovecot:
    """One running server; ``start()`` then ``settings(user)`` for each test."""

    def __init__(self) -> None:
        self.binary = find_binary()
        self.version = check_version(self.binary)
        self.account = _Account.current()
        self.base = Path(tempfile.mkdtemp(prefix="dc"))  # short: unix sockets allow 108 bytes
        self.port = 0
        self.process: subprocess.Popen | None = None
        self._users = 0

    def start(self, timeout: float = 10.0) -> Dovecot:
        self.port = free_port()
        for sub in ("run", "state", "mail"):
            (self.base / sub).mkdir(exist_ok=True)
        self.base.chmod(0o755)  # mkdtemp gives 0700; the mail user must traverse it
        os.chown(self.base / "mail", self.account.uid, self.account.gid)
        conf = self.base / "dovecot.conf"
        conf.write_text(config_text(self.base, self.port, self.account))
        with open(self.base / "stderr.log", "wb") as stderr:  # a file: a full pipe would block dovecot
            self.process = subprocess.Popen(
                [self.binary, "-F", "-c", str(conf)], start_new_session=True,
                preexec_fn=_die_with_parent, stdout=subprocess.DEVNULL, stderr=stderr)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited ({self.process.returncode}): {self._diagnostics()}")
            if self._greets():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"dovecot did not greet on port {self.port} within {timeout}s: {self._diagnostics()}")

    def _greets(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                return sock.recv(64).startswith(b"* OK")
        except OSError:
            return False  # not listening yet

    def _diagnostics(self) -> str:
        texts = [path.read_text(errors="replace")[-2000:]
                 for path in (self.base / "stderr.log", self.base / "dovecot.log") if path.exists()]
        return "\n".join(texts).strip()

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL if it lingers; remove the directory."""
        if self.process and self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(self.process.pid, signal.SIGKILL)  # stragglers (auth, imap) too
            self.process.wait(timeout=3)
        shutil.rmtree(self.base, ignore_errors=True)

    def new_user(self, prefix: str = "user") -> str:
        self._users += 1
        return f"{prefix}{self._users}"

    def settings(self, username: str, **overrides) -> ImapSettings:
        """ImapSettings for ``username`` on this server (plain IMAP on loopback)."""
        values = dict(host="127.0.0.1", port=self.port, username=username, password=PASSWORD,
                      security="none", folder="INBOX", timeout_seconds=10)
        return ImapSettings(**{**values, **overrides})


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass  # already gone


def append(settings: ImapSettings, raw: bytes, when: datetime | None = None,
           folder: str | None = None, flags: tuple[bytes, ...] = ()) -> int:
    """APPEND one message with a chosen INTERNALDATE (tz-aware); returns its UID."""
    with IMAPClient(settings.host, port=settings.port, ssl=False, timeout=10) as client:
        client.login(settings.username, settings.password)
        response = client.append(folder or settings.folder, raw, flags=flags, msg_time=when)
    # Dovecot answers "[APPENDUID <uidvalidity> <uid>] Append completed."
    found = re.search(rb"APPENDUID \d+ (\d+)", response)
    return int(found.group(1)) if found else -1


def kick(server: Dovecot, username: str) -> None:
    """Close every IMAP connection of ``username`` from the server side (doveadm kick: BYE, then EOF)."""
    doveadm = shutil.which("doveadm") or shutil.which("doveadm", path="/usr/bin:/usr/sbin")
    if not doveadm:
        raise DovecotUnavailable("doveadm not installed (it comes with dovecot-core)")
    subprocess.run([doveadm, "-c", str(server.base / "dovecot.conf"), "kick", username],
                   check=True, capture_output=True, timeout=30)
