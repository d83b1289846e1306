"""Telling systemd how `mailbot run` is doing (sd_notify), without a dependency.

Under ``Type=notify`` systemd hands the service a unix datagram socket in
``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract namespace); each
datagram holds newline-separated ``KEY=VALUE`` lines:

- ``READY=1``: started (systemctl start returns), or a reload is done;
- ``RELOADING=1``: a reload began (with ``MONOTONIC_USEC``, as systemd asks);
- ``STOPPING=1``: SIGTERM received, finishing the message or send in hand;
- ``WATCHDOG=1``: still alive; expected every ``$WATCHDOG_USEC`` µs when the
  unit sets ``WatchdogSec=`` (else systemd kills and restarts the service);
- ``STATUS=...``: one line shown by ``systemctl status mailbot``.

Outside systemd ``$NOTIFY_SOCKET`` is unset and every call does nothing, so
the same daemon runs in a terminal or a test.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

READY = "READY=1"
STOPPING = "STOPPING=1"
WATCHDOG = "WATCHDOG=1"


def notify(*lines: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send the lines as one datagram to $NOTIFY_SOCKET; False when unset or unreachable."""
    address = socket_address(os.environ if environ is None else environ)
    if address is None:
        return False
    payload = "\n".join(lines).encode("utf-8")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.sendto(payload, address)
        except OSError as exc:
            # systemd gone or the socket not ours to write: the service itself still works.
            log.warning("sd_notify to %s failed: %s", address.replace("\0", "@"), exc)
            return False
    return True


def socket_address(environ: Mapping[str, str]) -> str | None:
    """$NOTIFY_SOCKET as a socket address: "@name" is the abstract name "\\0name"."""
    path = environ.get("NOTIFY_SOCKET", "")
    if not path:
        return None
    return "\0" + path[1:] if path.startswith("@") else path


def reloading() -> str:
    """The RELOADING=1 message with the MONOTONIC_USEC that systemd (253+) wants next to it."""
    return f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


def status(text: str) -> str:
    """A STATUS= line for `systemctl status` (one line: a line break would end the field)."""
    return "STATUS=" + " ".join(text.split())


def watchdog_seconds(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog interval systemd expects pings within, or None when it expects none.

    ``$WATCHDOG_PID``, when set, names the process meant: a child that inherited the
    variables (the PDF sandbox) must not ping for its parent.
    """
    environ = os.environ if environ is None else environ
    usec, pid = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1_000_000
