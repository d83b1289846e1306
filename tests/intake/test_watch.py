"""The IDLE watcher against a real Dovecot, and the one-cycle-at-a-time gate."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from mailbot.daemon import CycleGate
from mailbot.intake.imap import Mailbox
from mailbot.intake.watch import Watcher
from tests.dovecot import append, free_port, kick
from tests.intake.test_imap import message


class Calls:
    """Counts on_mail calls; ``wait(n)`` blocks until there were n."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = threading.Condition()

    def __call__(self) -> None:
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def wait(self, n: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.count >= n, timeout)


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def watching():
    """Start watchers through this fixture: each is stopped at the end, pass or fail."""
    started: list[Watcher] = []

    def start(settings, on_mail, **kwargs) -> Watcher:
        watcher = Watcher(settings, on_mail, **kwargs).start()
        started.append(watcher)
        return watcher

    yield start
    for watcher in started:
        watcher.stop()
        assert not watcher.running


def test_new_mail_is_announced_within_seconds(imap_settings, watching):
    calls = Calls()
    watcher = watching(imap_settings, calls)
    assert calls.wait(1, timeout=5)  # the catch-up call on connecting
    assert wait_until(lambda: watcher.idles == 1, 5)
    appended = time.monotonic()
    append(imap_settings, message("新着"))
    assert calls.wait(2, timeout=5)
    assert time.monotonic() - appended < 3  # Dovecot wakes IDLE in ~0.5 s
    assert watcher.failures == 0


def test_idle_is_renewed_and_still_sees_mail(imap_settings, watching):
    quick = imap_settings.model_copy(update={"idle_renew_minutes": 0.01})  # 0.6 s
    calls = Calls()
    watcher = watching(quick, calls)
    assert wait_until(lambda: watcher.idles >= 4, 10), watcher.idles
    before = calls.count
    append(imap_settings, message("更新後"))
    assert calls.wait(before + 1, timeout=5)
    assert (watcher.connections, watcher.failures) == (1, 0)  # renewed on the same connection


def test_mail_announced_while_idle_is_renewed_is_not_missed(imap_settings, watching, monkeypatch):
    """GIVEN a mail that arrives while IDLE is being renewed, its EXISTS not yet read by a check
    WHEN the watcher sends DONE (the EXISTS comes back with DONE's answer, or NOOP's)
    THEN a cycle is asked for: the next IDLE does not announce that mail again (CI: a mail at a
    renewal waited for the scheduled poll)."""
    appended = threading.Event()
    leave_idle = Mailbox.idle_stop

    def mail_comes_first(box: Mailbox):
        if not appended.is_set():
            append(imap_settings, message("更新の合間"))
            time.sleep(1.5)  # Dovecot announces it to the IDLE connection (~0.5 s), unread
            appended.set()
        return leave_idle(box)

    monkeypatch.setattr(Mailbox, "idle_stop", mail_comes_first)
    calls = Calls()
    watching(imap_settings.model_copy(update={"idle_renew_minutes": 0.01}), calls)
    assert calls.wait(1, timeout=5)  # the catch-up call on connecting
    assert appended.wait(10)
    assert calls.wait(2, timeout=5)


def test_a_connection_the_server_drops_is_reconnected(imap_settings, dovecot, watching, caplog):
    caplog.set_level(logging.WARNING, logger="mailbot.intake.watch")
    calls = Calls()
    watcher = watching(imap_settings, calls)
    assert wait_until(lambda: watcher.idles == 1, 5)
    kick(dovecot, imap_settings.username)
    assert wait_until(lambda: watcher.connections == 2, 5)
    assert watcher.failures == 1
    assert calls.wait(2, timeout=5)  # the catch-up cycle after reconnecting
    append(imap_settings, message("再接続後"))
    assert calls.wait(3, timeout=5)
    kick(dovecot, imap_settings.username)  # dropped again later: the backoff starts from 1 s again
    assert wait_until(lambda: watcher.connections == 3, 5)
    warnings = [r.getMessage() for r in caplog.records if "attempt" in r.getMessage()]
    assert len(warnings) == 2 and all("attempt 1 failed" in w and "in 1 s" in w for w in warnings)


class FreezingProxy:
    """A TCP relay on 127.0.0.1 to Dovecot that can go silent without closing (a dead NAT entry)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.frozen = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            self.frozen.clear()  # a new connection gets through: the "network" is back
            server = socket.create_connection(("127.0.0.1", self.target))
            self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._relay, args=(source, sink), daemon=True).start()

    def _relay(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self.frozen.is_set():  # frozen: bytes vanish, nobody is told
                    sink.sendall(data)
        except OSError:
            return  # one side closed: this relay is done

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()


def test_a_link_that_goes_silent_is_detected_and_replaced(imap_settings, watching):
    """GIVEN an IDLE link through a relay that starts dropping every byte (no FIN, no RST)
    WHEN the link stays silent past silence_seconds
    THEN DONE + NOOP time out, the watcher reconnects and sees new mail again."""
    proxy = FreezingProxy(imap_settings.port)
    try:
        relayed = imap_settings.model_copy(update={"port": proxy.port, "timeout_seconds": 1})
        calls = Calls()
        watcher = watching(relayed, calls, silence_seconds=1)
        assert wait_until(lambda: watcher.idles >= 1, 5)
        proxy.frozen.set()
        assert wait_until(lambda: watcher.connections == 2, 15)
        assert watcher.failures == 1
        before = calls.count
        append(imap_settings, message("復旧後"))
        assert calls.wait(before + 1, timeout=5)
    finally:
        proxy.close()


def test_a_refused_connection_backs_off_instead_of_looping(imap_settings, watching, caplog):
    """1 s, 2 s, then the 2 s cap: about 4 attempts in 6.5 s, one warning each, never a hot loop."""
    closed = imap_settings.model_copy(update={"port": free_port(), "reconnect_max_seconds": 2})
    caplog.set_level(logging.WARNING, logger="mailbot.intake.watch")
    watcher = watching(closed, Calls())
    time.sleep(6.5)
    assert 3 <= watcher.failures <= 5, watcher.failures
    warnings = [r for r in caplog.records if "attempt" in r.getMessage()]
    assert len(warnings) == watcher.failures
    assert "connect failed" in warnings[0].getMessage() and "retrying in 1 s" in warnings[0].getMessage()
    assert "retrying in 2 s" in warnings[-1].getMessage()


def test_stop_leaves_idle_and_logs_out_promptly(imap_settings, watching):
    watcher = watching(imap_settings, Calls())
    assert wait_until(lambda: watcher.idles == 1, 5)
    started = time.monotonic()
    watcher.stop()
    assert not watcher.running and time.monotonic() - started < 3
    assert watcher.failures == 0  # DONE, NOOP and LOGOUT all answered


def test_a_server_without_idle_leaves_polling_alone(imap_settings, watching, monkeypatch):
    monkeypatch.setattr(Mailbox, "can_idle", lambda self: False)
    calls = Calls()
    watcher = watching(imap_settings, calls)
    assert wait_until(lambda: not watcher.running, 5)
    assert (watcher.supported, watcher.idles, calls.count) == (False, 0, 0)


# --- CycleGate: never two cycles at once, never a lost request ---------------


class SlowCycle:
    """A cycle that waits until released, recording overlaps."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.release = threading.Event()
        self.active = 0
        self.overlaps = 0

    def __call__(self) -> None:
        self.active += 1
        self.overlaps += self.active > 1
        self.started.release()
        self.release.wait(5)
        self.active -= 1


def test_requests_during_a_cycle_make_exactly_one_more():
    cycle = SlowCycle()
    gate = CycleGate(cycle)
    runner = threading.Thread(target=gate.run)
    runner.start()
    assert cycle.started.acquire(timeout=5)
    for _ in range(3):
        gate.request()  # three mails announced while the first cycle runs
    gate.run()  # and the schedule fires too: returns at once
    cycle.release.set()
    runner.join(5)
    assert (gate.cycles, cycle.overlaps) == (2, 0)


def test_a_request_when_idle_wakes_the_job():
    woken = []
    gate = CycleGate(lambda: None, wake=lambda: woken.append(1))
    gate.request()
    assert woken == [1] and gate.cycles == 0


def test_only_arrivals_count_as_new_mail():
    from mailbot.intake.imap import has_new_mail

    assert has_new_mail([(3, b"EXISTS"), (1, b"RECENT")])
    assert has_new_mail([(2, b"RECENT")])
    # what our own MOVE out of the folder looks like from the IDLE connection
    assert not has_new_mail([(1, b"EXPUNGE"), (0, b"RECENT")])
    assert not has_new_mail([(b"OK", b"Still here")])
