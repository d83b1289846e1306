"""An SMTP sink: a real aiosmtpd server on 127.0.0.1 that keeps every message it accepts.

Used by the tests and by ``mailbot demo``: replies really travel over SMTP
and can be read back as parsed messages. It can also refuse (a recipient or
the whole DATA) with any reply code, to show how the sender handles 4xx/5xx::

    with SmtpSink() as sink:
        ... send to 127.0.0.1:sink.port ...
        (mail,) = sink.wait_for(1, timeout=5)
        mail.message["Subject"]
"""

from __future__ import annotations

import socket
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
