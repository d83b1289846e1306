"""Read PDFs in a child process with a time limit and a memory limit.

PDF libraries can hang (a stream whose /Length refers to itself), balloon
(decompression bombs) or abort natively (pdfium); none of that may take the
daemon down. The child (a ``Worker``) runs under RLIMIT_AS, and every PDF it
is given has a wall-clock limit; whatever goes wrong comes back as a PdfError
with a specific code:

- ``too_large``: over ``Limits.max_bytes`` (checked before any parsing);
- ``timeout``: no answer within ``Limits.seconds`` (the child is killed);
- ``too_complex``: the child ran out of its memory (MemoryError);
- ``broken``: the child died without answering (a native abort, the kernel);
- ``reader_failed``: a bug in the reader (logged with its traceback);
- and whatever preflight/read refuse with (not_pdf, encrypted, broken,
  too_many_pages, too_complex).

A Worker is forked once and reads PDF after PDF (forking the daemon for each
PDF cost three times the read itself); after a timeout, a memory failure, a
reader bug or its death it is gone (``alive`` is false) and the caller forks
another. ``read_form_safely`` is one PDF in a fresh Worker; forms/pool.py keeps
warm ones for the daemon.

The preflight (forms/preflight.py) refuses bombs and loops in well under a
second; these limits are the last line of defence for what it misses.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import multiprocessing
import os
import resource
import signal
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection

from mailbot.errors import PdfError

# Imported in the parent on purpose: each forked child then starts with pdfplumber
# and pypdfium2 already loaded, instead of paying ~0.5 s to import them per worker.
from mailbot.forms.read import read_form
from mailbot.forms.reading import FormReading

log = logging.getLogger(__name__)

READER_FAILED = "申請書を自動で読み取れませんでした。担当者が確認のうえご連絡いたします。"
TOO_LARGE = ("添付ファイルが大きすぎます（上限 {mb} MB）。"
             "申請書のPDFのみを添付し、画像の解像度を下げて再送してください。")
TIMEOUT = ("PDFの読み取りが時間内に終わりませんでした。ファイルが壊れていないかご確認のうえ、"
           "申請書のみのPDFとして保存し直して再送してください。")
OUT_OF_MEMORY = ("添付のPDFは処理に必要なメモリが上限を超えたため、読み取りを中止しました。"
                 "申請書のページのみを、画像の解像度を下げてPDFに保存し直し、改めてお送りください。")
DIED = ("PDFを読み取れませんでした（ファイルが壊れているか、処理の上限を超えています）。"
        "申請書を保存し直して再送してください。")

#: How often an idle reader looks whether the daemon that forked it is still there.
ORPHAN_CHECK_SECONDS = 5.0

#: glibc's mallopt parameters (malloc.h) and the values a reader sets (see _keep_heap).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest: blocks up to this come from the heap
TRIM_THRESHOLD = 64 * 1024 * 1024  # free heap a reader keeps for the next PDF (a form's read needs <32 MB)


@dataclass(frozen=True)
class Limits:
    """How much one PDF may cost: bytes in, seconds, memory, pages."""

    max_bytes: int = 20 * 1024 * 1024
    seconds: float = 30.0
    memory_mb: int = 1536
    max_pages: int = 50


def read_form_safely(data: bytes, limits: Limits) -> FormReading:
    """read_form in a fresh child process; PdfError on oversize, timeout or a crash."""
    refuse_too_large(data, limits)
    worker = Worker(limits)
    try:
        return worker.read(data)
    finally:
        worker.close()


def refuse_too_large(data: bytes, limits: Limits) -> None:
    """PdfError ``too_large`` for a file over ``limits.max_bytes``: not even handed to a child."""
    if len(data) > limits.max_bytes:
        raise PdfError("too_large", TOO_LARGE.format(mb=limits.max_bytes // (1024 * 1024)))


_FORKING = threading.Lock()


class WorkerGone(Exception):
    """The worker was dead before it got the PDF (killed while idle): read it in another one."""


class Worker:
    """One forked reader process under RLIMIT_AS: PDFs in through a pipe, readings out, one at a time.

    Not thread-safe: one owner at a time (a slot of forms/pool.py, or read_form_safely).
    """

    def __init__(self, limits: Limits):
        context = multiprocessing.get_context("fork")
        self.limits = limits
        self.reads = 0
        # One fork at a time: a worker forked by another thread while this child's end of the
        # pipe is still open here would keep a copy of it, and this child's death would then
        # show as a timeout (no EOF) instead of "broken".
        with _FORKING:
            self._conn, child_end = context.Pipe(duplex=True)
            self._process = context.Process(target=_serve, args=(child_end, limits), daemon=True)
            _fork_frozen(self._process)
            child_end.close()
        self._gone = False

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        """False once it timed out, died, ran out of memory or hit a reader bug: fork another."""
        return not self._gone and self._process.is_alive()

    def read(self, data: bytes) -> FormReading:
        """One PDF's FormReading, or PdfError; WorkerGone if the child was dead before it started."""
        try:
            self._conn.send(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close()
            raise WorkerGone from None
        self.reads += 1
        if not self._conn.poll(self.limits.seconds):
            self.close()  # killed: a PDF that hangs the reader must not hang the next one
            raise PdfError("timeout", TIMEOUT)
        return self._answer()

    def _answer(self) -> FormReading:
        try:
            kind, payload = self._conn.recv()
        except EOFError:  # the child died: out of memory or a native abort
            self._process.join(1)
            log.warning("the PDF reader died without answering (exit code %s)", self._process.exitcode)
            self.close()
            raise PdfError("broken", DIED) from None
        if kind == "ok":
            return payload
        if kind == "spent":  # the child leaves after this answer: its state is not to be trusted
            self.close()
        raise PdfError(*payload)

    def close(self) -> None:
        """Stop the child now (idle, or stuck in a PDF): it holds nothing worth a goodbye."""
        self._gone = True
        self._conn.close()
        if self._process.is_alive():
            self._process.kill()
        self._process.join()


def _fork_frozen(process: multiprocessing.Process) -> None:
    """Start (fork) ``process`` so that it never collects an object of the daemon's.

    The daemon's garbage not yet collected at the fork (an old engine's
    connections, a reply's sockets) is the child's garbage too, and the
    child's collector would finalize it: close SQLite connections whose
    mutex another thread of the daemon held at the fork (the child then
    hangs until the PDF's time limit: a "timeout" told to an applicant whose
    form is fine), or send a PostgreSQL connection's goodbye down a socket
    the daemon still uses. The collector is off across the fork; the child's
    first act (_serve) freezes everything it inherited, then turns it on.
    Freezing in the daemon instead would move all its young objects to the
    oldest generation at every fork (its garbage then lives longer).
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        process.start()
    finally:
        if was_on:
            gc.enable()


def _address_space() -> int:
    """This process's virtual size now (bytes): what the fork inherited, libraries and all."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


def _serve(conn: Connection, limits: Limits) -> None:
    """The child: under RLIMIT_AS, answer each PDF with ("ok", FormReading) or an error, until EOF."""
    gc.freeze()  # what came with the fork is the daemon's to collect (see _fork_frozen)
    gc.enable()
    # The daemon's signal handlers came along with the fork and must not run here: SIGTERM
    # ends a reader (how the daemon's exit stops it); SIGINT and SIGHUP are the daemon's to act on.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _keep_heap()
    # RLIMIT_AS counts the address space the fork inherited (libraries, the daemon's own
    # heap: 0.7 GB at start, more as it lives): each reader gets pdf_memory_mb on top of that,
    # so a PDF's allowance does not shrink as the daemon grows.
    limit = _address_space() + limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    parent = os.getppid()
    while True:
        # An idle child checks now and then that the daemon still lives: after a kill -9 no
        # EOF comes (its siblings hold copies of the pipe), and it must not linger.
        if not conn.poll(ORPHAN_CHECK_SECONDS):
            if os.getppid() != parent:
                return
            continue
        try:
            data = conn.recv()
        except EOFError:  # the parent closed the pipe: retired
            return
        kind, payload = _read_one(data, limits)
        conn.send((kind, payload))
        if kind == "spent":
            conn.close()
            os._exit(0)  # skip the interpreter's teardown: its memory may be in any state


def _keep_heap() -> None:
    """Have glibc's malloc keep the memory one PDF used for the next one (elsewhere: nothing).

    A form's read makes a few large blocks (the page rendered for its seal at
    120 dpi: a 5.6 MB bitmap, then numpy arrays of its size). By default glibc
    maps blocks over a threshold fresh from the kernel and unmaps them when
    freed, and gives the heap's free top back: every read then faults its
    pages in again. The threshold moves with the process's history, which a
    reader inherits from the daemon: in the burst (bench/burst.py) readers
    took ~4,300 page faults a PDF, a third of their CPU. Fixed thresholds
    make it ~60. An idle reader keeps at most TRIM_THRESHOLD of free heap,
    and it retires after forms/pool.py's READS_PER_WORKER PDFs.
    """
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # glibc's; musl has none
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)


def _read_one(data: bytes, limits: Limits) -> tuple[str, object]:
    """("ok", FormReading), ("error", (code, message)), or ("spent", ...) when the child must go."""
    try:
        return "ok", read_form(data, max_pages=limits.max_pages)
    except PdfError as exc:
        return "error", (exc.code, exc.message)
    except MemoryError:
        return "spent", ("too_complex", OUT_OF_MEMORY)
    except Exception:  # a bug in the reader: staff must see it, the daemon must not
        log.exception("the PDF reader failed")  # the traceback goes to the daemon's log
        return "spent", ("reader_failed", READER_FAILED)
