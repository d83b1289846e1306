"""An SMTP sink: a real aiosmtpd server on 127.0.0.1 that keeps every message it accepts.

Used by the tests and by ``mailbot demo``: replies really travel over SMTP
and can be read back as parsed messages. It can also refuse (a recipient or
the whole DATA) with any reply code, to show how the sender handles 4xx/5xx::

    with SmtpSink() as sink:
        ... send to 127.0.0.1:sink.port ...
        (mail,) = sink.wait_for(1, timeout=5)
        mail.message["Subject"]

A long run that must not count the sink's memory as its own (bench/burst.py)
runs it in a child process that keeps only a tally: how many mails, and to
which distinct recipient lists (``python -m mailbot.sink``, driven by
:class:`SinkProcess`)::

    with SinkProcess() as sink:
        ... send to 127.0.0.1:sink.port ...
        sink.tally().mails
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class ReceivedMail:
    """One accepted message: the envelope, the bytes, and the bytes parsed."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    message: EmailMessage
    auth_user: str | None = None


class _Handler:
    """aiosmtpd hooks: refuse what the sink is told to refuse, record the rest."""

    def __init__(self, sink: SmtpSink):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = self.sink.refuse.get(address.lower())
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.sink.data_response:
            return self.sink.data_response
        user = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.sink._record(envelope.mail_from, envelope.rcpt_tos, envelope.content, user)
        return "250 Message accepted for delivery"


class _Authenticator:
    """Accepts exactly one username and password."""

    def __init__(self, username: str, password: str):
        self.expected = (username.encode(), password.encode())

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == self.expected
        # handled=False: let aiosmtpd send the 235/535 reply itself.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


class SmtpSink:
    """A real SMTP server in a background thread; a context manager (start/stop).

    ``refuse`` maps a recipient (lower case) to the reply to give at RCPT
    (e.g. "550 5.1.1 No such user"); ``data_response`` answers every DATA
    (e.g. "451 4.3.0 Try later"). Both may be changed while it runs.
    ``auth=(user, password)`` makes login required.
    """

    def __init__(self, port: int | None = None, *, refuse: dict[str, str] | None = None,
                 data_response: str | None = None, auth: tuple[str, str] | None = None):
        self.port = port or free_port()
        self.refuse = {k.lower(): v for k, v in (refuse or {}).items()}
        self.data_response = data_response
        self._auth = auth
        self._messages: list[ReceivedMail] = []
        self._changed = threading.Condition()
        self._controller: Controller | None = None

    def start(self) -> SmtpSink:
        """Listen on 127.0.0.1:port; returns when the server answers."""
        extra = {}
        if self._auth:
            extra = {"authenticator": _Authenticator(*self._auth), "auth_required": True,
                     "auth_require_tls": False}
        self._controller = Controller(_Handler(self), hostname=HOST, port=self.port, **extra)
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening (the recorded messages stay readable)."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def messages(self) -> list[ReceivedMail]:
        """A copy of what was accepted so far, in order."""
        with self._changed:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """Block until ``count`` messages arrived (TimeoutError after ``timeout`` seconds)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(f"{len(self._messages)} of {count} messages after {timeout}s")
            return list(self._messages)

    def _record(self, mail_from: str, rcpt_tos: list[str], content: bytes, user: str | None) -> None:
        message = BytesParser(policy=policy.default).parsebytes(content)
        mail = ReceivedMail(mail_from, list(rcpt_tos), content, message, user)
        with self._changed:
            self._messages.append(mail)
            self._changed.notify_all()


class TallySink(SmtpSink):
    """An SMTP sink that counts what it accepts and forgets the bytes (for long runs)."""

    def __init__(self, port: int | None = None):
        super().__init__(port)
        self.mails = 0
        self.recipients: set[tuple[str, ...]] = set()

    def _record(self, mail_from: str, rcpt_tos: list[str], content: bytes, user: str | None) -> None:
        with self._changed:
            self.mails += 1
            self.recipients.add(tuple(rcpt_tos))
            self._changed.notify_all()


@dataclass(frozen=True)
class Tally:
    """What a :class:`SinkProcess` accepted so far, and the peak RSS of its process."""

    mails: int
    recipients: int
    peak_rss_mb: float


class SinkProcess:
    """A :class:`TallySink` in a child process (``python -m mailbot.sink``); a context manager.

    The parent writes one line to ask, the child answers with one JSON
    line: a :class:`Tally`. Closing the child's stdin stops it.
    """

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self._child: subprocess.Popen | None = None

    def start(self) -> SinkProcess:
        """Start the child; returns once it listens (its first tally)."""
        self._child = subprocess.Popen([sys.executable, "-m", "mailbot.sink", str(self.port)],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._read()
        return self

    def tally(self) -> Tally:
        """How many mails arrived so far, to how many distinct recipient lists."""
        self._child.stdin.write("tally\n")
        self._child.stdin.flush()
        return self._read()

    def stop(self, timeout: float = 10.0) -> Tally:
        """Stop the child; its last tally (the peak RSS is that of its whole life)."""
        self._child.stdin.close()
        last = self._read()
        self._child.wait(timeout)
        return last

    def _read(self) -> Tally:
        line = self._child.stdout.readline()
        if not line:
            raise RuntimeError(f"the SMTP sink process ended (exit {self._child.poll()})")
        return Tally(**json.loads(line))

    def __enter__(self) -> SinkProcess:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        if self._child.stdin.closed:  # stopped already
            return
        self._child.stdin.close()
        try:
            self._child.wait(10)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()


def _serve_tally(port: int) -> None:
    """The child's side: a tally on start, on every line read, and at end of input."""
    with TallySink(port) as sink:
        _say(sink)
        for _ in sys.stdin:
            _say(sink)
        _say(sink)


def _say(sink: TallySink) -> None:
    with sink._changed:
        mails, recipients = sink.mails, len(sink.recipients)
    print(json.dumps({"mails": mails, "recipients": recipients, "peak_rss_mb": _peak_rss_mb()}), flush=True)


def _peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not getrusage's ru_maxrss: Linux carries that over
    exec, so a child spawned by a 200 MB parent would report the parent's 200 MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


if __name__ == "__main__":
    _serve_tally(int(sys.argv[1]))
