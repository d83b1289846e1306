"""The warm PDF readers (forms/pool.py): the answers of a fresh sandbox, from workers that read many PDFs.

Real worker processes, real hostile PDFs (tests/forms/hostile.py), the
shipped config's limits. A hang is the one thing put in by hand: no real PDF
hangs pdfplumber past the preflight today, and the pool's answer to one
(kill, then a fresh worker) must still be shown.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailbot import config
from mailbot.errors import ConfigError, PdfError
from mailbot.forms import pool as pool_module
from mailbot.forms import sandbox
from mailbot.forms.pool import ReaderPool
from mailbot.forms.sandbox import Limits, Worker, read_form_safely
from mailbot.services import pdf_limits
from tests.forms import hostile
from tests.forms.test_hostile import REFUSED, _build

ROOT = Path(__file__).parents[1]
LIMITS = pdf_limits(config.load(ROOT / "config.toml", environ={}))


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_worker_reads_pdf_after_pdf_in_one_process():
    worker = Worker(LIMITS)
    try:
        pid = worker.pid
        readings = [worker.read(hostile.form()) for _ in range(3)]
        assert worker.pid == pid and worker.alive and worker.reads == 3
    finally:
        worker.close()
    assert not worker.alive and gone(pid)
    assert readings == [read_form_safely(hostile.form(), LIMITS)] * 3


def test_every_hostile_pdf_gets_its_code_from_the_pool_and_the_pool_reads_on():
    """GIVEN one pool WHEN every hostile PDF goes through it, a good form between each
    THEN each is refused with the code a fresh sandbox gives, and every form reads."""
    pool = ReaderPool(LIMITS, size=2)
    try:
        for name in sorted(REFUSED):
            with pytest.raises(PdfError) as refused:
                pool(_build(name))
            assert refused.value.code == REFUSED[name], name
            assert pool(hostile.form()).fields["company_name"] == "株式会社サンプル精機"
        assert pool(hostile.javascript_open_action()).seal.present
    finally:
        pool.close()


def test_too_large_is_refused_without_a_worker():
    pool = ReaderPool(Limits(max_bytes=1000), size=1)
    with pytest.raises(PdfError, match="too_large"):
        pool(hostile.form())
    assert pool.read_ahead([hostile.form()]) == [] and pool.reads == 0


def _hang_on_marker(pid_file: Path):
    """read_form, except that the marker PDF writes the child's pid and hangs (a reader stuck in a loop)."""
    real = sandbox.read_form

    def read(data: bytes, *, max_pages: int = 50):
        if data == b"%PDF-1.7 hang":
            pid_file.write_text(str(os.getpid()))
            time.sleep(3600)
        return real(data, max_pages=max_pages)

    return read


def test_a_timeout_kills_the_worker_and_the_next_pdf_gets_a_fresh_one(monkeypatch, tmp_path):
    pid_file = tmp_path / "hung.pid"
    monkeypatch.setattr(sandbox, "read_form", _hang_on_marker(pid_file))  # forked workers inherit it
    pool = ReaderPool(Limits(seconds=3.0), size=1)
    try:
        assert pool(hostile.form()).form == "application"
        started = time.monotonic()
        with pytest.raises(PdfError, match="timeout"):
            pool(b"%PDF-1.7 hang")
        assert time.monotonic() - started < 3.0 + 1.0
        assert gone(int(pid_file.read_text()))
        assert pool(hostile.form()).form == "application"
    finally:
        pool.close()


def test_a_worker_that_dies_mid_read_is_broken_at_once_not_a_timeout(monkeypatch, tmp_path):
    """GIVEN two slots forking workers at once WHEN a fresh worker dies in the middle of a PDF (a native
    abort) THEN that PDF is "broken" at once, as with a one-shot child; the next PDF reads."""
    pid_file = tmp_path / "hung.pid"
    monkeypatch.setattr(sandbox, "read_form", _hang_on_marker(pid_file))
    pool = ReaderPool(Limits(seconds=20.0), size=2)
    try:
        (hang,) = pool.read_ahead([b"%PDF-1.7 hang"])
        pool.read_ahead([hostile.form()])  # the other slot forks its worker meanwhile
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        with pytest.raises(PdfError, match="broken"):
            hang.result(timeout=15)
        assert time.monotonic() - started < 5.0
        assert pool(hostile.form()).form == "application"
    finally:
        pool.close()


def test_a_failed_fork_is_the_callers_error_and_the_slot_serves_on(monkeypatch):
    """No process can be forked (EAGAIN): the PDF's caller gets the OSError (the pipeline quarantines
    the mail, as when the one-shot fork failed), nobody waits for ever, the next PDF reads."""
    def no_fork(limits):
        raise BlockingIOError(11, "Resource temporarily unavailable")

    pool = ReaderPool(LIMITS, size=1)
    try:
        with monkeypatch.context() as patched:
            patched.setattr(pool_module, "Worker", no_fork)
            with pytest.raises(OSError):
                pool(hostile.form())
        assert pool(hostile.form()).form == "application"
    finally:
        pool.close()


MEMORY_PROBE = """
import os
import signal
from mailbot.errors import ConfigError, PdfError
from mailbot.forms.pool import read_in_worker
from mailbot.forms.sandbox import Limits, Worker, read_form_safely
from tests.forms import hostile
bomb = hostile.many_characters(70_000)  # pdfplumber needs ~160 MB for it
limits = Limits(memory_mb=40)  # on top of what the child starts with
def code(outcome):
    return outcome.code if isinstance(outcome, PdfError) else "read"
worker = Worker(limits)
print(code(worker.read(hostile.form())))
used_pid = worker.pid
outcome, kept = read_in_worker(worker, bomb, limits)  # a used worker: retried in a fresh one
print(code(outcome), worker.alive, kept is None or kept.pid != used_pid)
try:
    read_form_safely(bomb, limits)
    print("read")
except PdfError as exc:
    print(exc.code)
outcome, kept = read_in_worker(kept, hostile.form(), limits)
print(code(outcome), os.getpid())
"""


def test_a_worker_out_of_memory_is_replaced_and_the_verdict_is_a_fresh_sandboxs():
    # A fresh interpreter: in this one, memory freed by earlier tests would let the worker grow unseen.
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "read"
    verdict, used_alive, replaced = lines[1].split()
    assert verdict in ("too_complex", "broken") and used_alive == "False" and replaced == "True"
    assert lines[2] in ("too_complex", "broken")
    assert lines[3].split()[0] == "read"


def test_a_reading_done_ahead_is_taken_once_then_read_again():
    pool = ReaderPool(LIMITS, size=2)
    try:
        (ahead,) = pool.read_ahead([hostile.form()])
        first = pool(hostile.form())
        assert ahead.done() and pool.reads == 1 and pool.waiting == 0
        assert pool(hostile.form()) == first and pool.reads == 2  # not kept: read again
    finally:
        pool.close()


def test_a_refusal_read_ahead_is_the_same_refusal():
    pool = ReaderPool(LIMITS, size=2)
    try:
        pool.read_ahead([hostile.garbage(), hostile.png_renamed()])
        for data, code in ((hostile.garbage(), "broken"), (hostile.png_renamed(), "not_pdf")):
            with pytest.raises(PdfError) as refused:
                pool(data)
            assert refused.value.code == code
        assert pool.reads == 2 and pool.waiting == 0
    finally:
        pool.close()


def test_readings_ahead_nobody_takes_are_dropped():
    pool = ReaderPool(LIMITS, size=1)
    try:
        pdfs = [hostile.form(), hostile.garbage(), hostile.javascript_open_action()]
        futures = pool.read_ahead(pdfs)
        pool.forget(futures)
        assert pool.waiting == 0
        assert all(f.cancelled() or f.done() or f.running() for f in futures)
        before = pool.reads
        assert pool(hostile.form()).form == "application" and pool.reads == before + 1
    finally:
        pool.close()


def children() -> set[int]:
    """The pids of this test process's children (every thread's)."""
    tasks = Path(f"/proc/{os.getpid()}/task")
    return {int(pid) for task in tasks.iterdir() for pid in (task / "children").read_text().split()}


def test_a_closed_pool_stops_its_workers_and_starts_again_when_asked():
    before = children()
    pool = ReaderPool(LIMITS, size=2)
    pool.read_ahead([hostile.form()] * 4)
    assert pool(hostile.form()).form == "application"
    assert len(children() - before) >= 1
    assert pool.close(timeout=10)
    assert not children() - before and pool.waiting == 0
    assert pool(hostile.form()).form == "application"
    pool.close()


def test_pdf_workers_is_read_from_the_config_and_checked(tmp_path):
    shipped = config.load(ROOT / "config.toml", environ={})
    assert shipped.service.pdf_workers == 2
    for bad in ("0", "17", "'two'"):
        path = tmp_path / "config.toml"
        path.write_text((ROOT / "config.toml").read_text(encoding="utf-8").replace(
            "pdf_workers = 2", f"pdf_workers = {bad}"), encoding="utf-8")
        with pytest.raises(ConfigError, match=r"\[service\] pdf_workers"):
            config.load(path, environ={})


def test_a_worker_does_not_run_the_daemons_signal_handlers():
    """The daemon's SIGTERM handler (stop, finish the mail in hand) is inherited by a fork: a worker
    that ran it would never end, and the daemon's exit, which terminates its readers, would hang."""
    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # the daemon's: carry on, stop later
    try:
        worker = Worker(LIMITS)
        assert worker.read(hostile.form()).form == "application"
        os.kill(worker.pid, signal.SIGINT)  # a Ctrl-C to the terminal's process group: ignored
        assert worker.read(hostile.form()).form == "application"
        os.kill(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while worker.alive and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not worker.alive
        worker.close()
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_pool_nobody_holds_any_more_stops_its_workers():
    """Services rebuilt (a test, a reload of the whole thing): the old pool's readers do not linger."""
    before = children()
    pool = ReaderPool(LIMITS, size=2)
    pool.read_ahead([hostile.form()] * 3)
    assert pool(hostile.form()).form == "application" and children() - before
    del pool
    deadline = time.monotonic() + 10
    while children() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not children() - before


class _Garbage:
    """An object in a reference cycle (only the collector frees it) that writes down which process did."""

    def __init__(self, fd: int):
        self.me, self.fd = self, fd

    def __del__(self):
        os.write(self.fd, b"%d\n" % os.getpid())  # a bare write: no lock a fork could have left held


def test_a_worker_never_collects_the_daemons_garbage(tmp_path):
    """GIVEN garbage in reference cycles left in the daemon when a worker is forked (in CI: an old
    engine's SQLite connections, whose mutex another thread held at the fork: the child hung on
    closing one, and a good form was answered "timeout")
    WHEN workers read PDFs (their collector runs as they go)
    THEN no worker finalizes an object of the daemon's: the daemon collects its own."""
    fd = os.open(tmp_path / "collected", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for _ in range(10):
            for _ in range(200):
                _Garbage(fd)
            worker = Worker(LIMITS)
            try:
                worker.read(hostile.form())
            finally:
                worker.close()
        gc.collect()
    finally:
        os.close(fd)
    collectors = (tmp_path / "collected").read_text().split()
    assert len(collectors) == 2000 and set(collectors) == {str(os.getpid())}
    assert gc.isenabled() and gc.get_freeze_count() == 0  # the daemon's own collector is as it was


_FAULTS_PER_READ = """
import ctypes, sys
from mailbot.forms import sandbox
from tests.forms import hostile
# The daemon's malloc as its history may leave it: large blocks mapped fresh from the kernel.
ctypes.CDLL(None).mallopt(sandbox.M_MMAP_THRESHOLD, 128 * 1024)
if sys.argv[1] == "without":
    sandbox._keep_heap = lambda: None
worker = sandbox.Worker(sandbox.Limits())
def faults():
    with open(f"/proc/{worker.pid}/stat", encoding="ascii") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[7])  # minflt
form = hostile.form()
for _ in range(3):
    worker.read(form)
before = faults()
for _ in range(20):
    worker.read(form)
print((faults() - before) / 20)
worker.close()
"""


def _faults_per_read(keep_heap: str) -> float:
    script = subprocess.run([sys.executable, "-c", _FAULTS_PER_READ, keep_heap], cwd=ROOT, check=True,
                            capture_output=True, text=True, timeout=120)
    return float(script.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc, /proc")
def test_a_worker_keeps_its_heap_from_one_pdf_to_the_next():
    """GIVEN a daemon whose malloc maps large blocks fresh from the kernel (as its history may leave it)
    WHEN a worker forked from it reads the same form again and again
    THEN its pages are not faulted in anew for every PDF (in the burst: ~4,300 a read, a third of the
    reader's CPU). The same worker without _keep_heap shows what is measured."""
    assert _faults_per_read("with") < 300
    assert _faults_per_read("without") > 2000
