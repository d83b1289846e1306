"""sd_notify against a real unix datagram socket (a path and the abstract namespace), the
watchdog that falls silent when a cycle is stuck, and `systemd-analyze verify` on the unit."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from mailbot import PROJECT_ROOT, systemd
from mailbot.daemon import CycleGate, Watchdog

UNIT = PROJECT_ROOT / "deploy" / "mailbot.service"


class NotifyListener:
    """What systemd does: a datagram socket bound at $NOTIFY_SOCKET, read message by message."""

    def __init__(self, address: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(systemd.socket_address({"NOTIFY_SOCKET": address}))
        self.sock.settimeout(5)
        self.address = address

    def receive(self) -> str:
        return self.sock.recv(4096).decode("utf-8")

    def nothing_waiting(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(4096)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(5)
        return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def abstract_listener(monkeypatch):
    listener = NotifyListener(f"@mailbot-test-{uuid.uuid4().hex}")
    monkeypatch.setenv("NOTIFY_SOCKET", listener.address)
    yield listener
    listener.close()


def test_ready_watchdog_stopping_reach_a_socket_on_a_path(tmp_path):
    listener = NotifyListener(str(tmp_path / "notify"))
    try:
        environ = {"NOTIFY_SOCKET": listener.address}
        for message in (systemd.READY, systemd.WATCHDOG, systemd.STOPPING):
            assert systemd.notify(message, environ=environ)
            assert listener.receive() == message
    finally:
        listener.close()


def test_the_abstract_namespace_and_several_lines_in_one_datagram(abstract_listener):
    assert systemd.notify(systemd.READY, systemd.status("last cycle:\n3 sent"))
    assert abstract_listener.receive() == "READY=1\nSTATUS=last cycle: 3 sent"
    systemd.notify(systemd.reloading())
    lines = abstract_listener.receive().split("\n")
    assert lines[0] == "RELOADING=1" and lines[1].startswith("MONOTONIC_USEC=")
    assert int(lines[1].split("=")[1]) > 0


def test_nothing_is_sent_outside_systemd_or_to_a_socket_nobody_reads(tmp_path):
    assert systemd.notify(systemd.READY, environ={}) is False
    assert systemd.notify(systemd.READY, environ={"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False


def test_the_watchdog_interval_is_for_this_process_only():
    assert systemd.watchdog_seconds({}) is None
    assert systemd.watchdog_seconds({"WATCHDOG_USEC": "60000000"}) == 60.0
    assert systemd.watchdog_seconds({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}) == 60.0
    # A forked PDF reader inherits the variables: the pings are its parent's business.
    assert systemd.watchdog_seconds({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}) is None
    assert systemd.watchdog_seconds({"WATCHDOG_USEC": "0"}) is None


def test_the_watchdog_pings_between_cycles_and_stops_when_a_cycle_is_stuck(abstract_listener):
    release, began = threading.Event(), threading.Event()

    def cycle() -> None:
        began.set()
        release.wait(10)

    gate = CycleGate(cycle)
    watchdog = Watchdog(gate, stuck_seconds=0.3)
    assert watchdog.ping() and abstract_listener.receive() == "WATCHDOG=1"
    worker = threading.Thread(target=gate.run)
    worker.start()
    try:
        assert began.wait(5)
        assert watchdog.ping() and abstract_listener.receive() == "WATCHDOG=1"  # busy, not stuck yet
        time.sleep(0.5)
        assert watchdog.ping() is False
        assert abstract_listener.receive().startswith("STATUS=stuck: a cycle has run for")
        assert watchdog.ping() is False and abstract_listener.nothing_waiting()
    finally:
        release.set()
        worker.join(5)
    assert gate.cycles == 1
    assert watchdog.ping() and abstract_listener.receive() == "WATCHDOG=1"  # it finished: alive again


def verify(unit: Path) -> subprocess.CompletedProcess:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze missing on CI: .ci/setup installs systemd")
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    return subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=120)


def test_systemd_analyze_verify_passes_on_the_unit(tmp_path):
    # verify checks that ExecStart's binary exists: point it at this checkout's own
    # `mailbot` entry point (the one the unit runs once installed under /opt/mailbot).
    installed = "/opt/mailbot/.venv/bin/mailbot"
    entry_point = Path(sys.executable).parent / "mailbot"
    assert entry_point.is_file(), "the venv has no mailbot entry point: pip install -e ."
    text = UNIT.read_text()
    assert f"ExecStart={installed} --config /etc/mailbot/config.toml run" in text
    unit = tmp_path / "mailbot.service"
    unit.write_text(text.replace(installed, str(entry_point)))
    result = verify(unit)
    # Unknown keys and bad values are only warnings (exit 0): any output at all fails.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_does_complain_about_a_broken_unit(tmp_path):
    """The check above can fail: a misspelt key is reported."""
    unit = tmp_path / "mailbot.service"
    unit.write_text(UNIT.read_text().replace("/opt/mailbot/.venv/bin/mailbot", "/bin/true")
                    .replace("PrivateTmp=yes", "PrivateTemp=yes"))
    result = verify(unit)
    assert "Unknown key 'PrivateTemp'" in result.stdout + result.stderr


def test_the_unit_has_what_an_operator_relies_on():
    lines = {line.split("=", 1)[0]: line.split("=", 1)[1]
             for line in UNIT.read_text().splitlines() if "=" in line and not line.startswith("#")}
    expected = {"Type": "notify", "NotifyAccess": "main", "Restart": "on-failure", "User": "mailbot",
                "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ReadWritePaths": "/var/lib/mailbot",
                "PrivateTmp": "yes", "KillMode": "mixed", "ExecReload": "/bin/kill -HUP $MAINPID",
                "EnvironmentFile": "-/etc/mailbot/mailbot.env"}
    assert {key: lines.get(key) for key in expected} == expected
    assert "DynamicUser" not in lines
    assert 0 < int(lines["TimeoutStopSec"]) <= 300 and int(lines["WatchdogSec"]) >= 10
