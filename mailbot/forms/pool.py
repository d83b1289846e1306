"""The daemon's PDF readers: a few warm sandboxed workers, and reading ahead (issue 7, the burst).

``ReaderPool`` is what ``services.read_form`` is: called with a PDF's bytes it
returns the FormReading or raises the PdfError, exactly as
``sandbox.read_form_safely`` would; only cheaper and in parallel:

- ``size`` slots (``[service] pdf_workers``), each a thread owning one
  ``sandbox.Worker`` that reads PDF after PDF under the same limits; a worker
  that timed out, ran out of memory, hit a reader bug or died is gone, and
  the slot forks a fresh one for the next PDF. A worker retires after
  ``READS_PER_WORKER`` PDFs, and after ``IDLE_SECONDS`` without work (a quiet
  daemon keeps no children);
- a worker that had read other PDFs before and then fails on memory or dies
  gives that PDF a second try in a fresh worker: the verdict must not depend
  on what the worker read before (a fresh one is what read_form_safely uses);
- ``read_ahead(pdfs)``: the poller hands over the PDFs of the next pending
  messages while the pipeline is still on an earlier one; the call for that
  PDF then takes the result read ahead (once: it is not kept). A reading is a
  pure function of the bytes, so reading early changes no decision, and the
  messages are still processed one by one in arrival order.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future

from mailbot.errors import PdfError
from mailbot.forms.reading import FormReading
from mailbot.forms.sandbox import Limits, Worker, WorkerGone, refuse_too_large

log = logging.getLogger(__name__)

#: PDFs one worker reads before it is replaced: bounds what a long-lived reader can accumulate.
READS_PER_WORKER = 200
#: A slot with no PDF for this long stops its worker and its thread; the next PDF starts them again.
IDLE_SECONDS = 30.0
#: Priorities in the queue: the PDF the pipeline waits for goes before the ones read ahead.
NOW, AHEAD = 0, 1
#: What a memory failure or a death in a used worker looks like (a timeout is never retried).
RETRIED_IN_A_FRESH_WORKER = {"too_complex", "broken", "reader_failed"}


class ReaderPool:
    """``size`` sandboxed readers working through one queue; callable like read_form_safely."""

    def __init__(self, limits: Limits, size: int = 2):
        self.limits, self.size = limits, size
        self._slots = _Slots(limits, size)
        self._ahead: dict[str, deque[Future]] = {}
        self._lock = threading.Lock()
        # Garbage-collected (a test's services, a reload): its slots stop their workers.
        weakref.finalize(self, self._slots.stop)

    @property
    def reads(self) -> int:
        """PDFs given to a worker so far (one read ahead counts, taken or not; one dropped unstarted does not)."""
        return self._slots.reads

    @property
    def waiting(self) -> int:
        """Readings done or started ahead that nobody took yet."""
        with self._lock:
            return sum(len(futures) for futures in self._ahead.values())

    def __call__(self, data: bytes) -> FormReading:
        """The PDF's FormReading (the one read ahead, if any), or its PdfError."""
        refuse_too_large(data, self.limits)
        future = self._take_ahead(_key(data)) or self._slots.submit(data, NOW)
        return future.result()

    def read_ahead(self, pdfs: Iterable[bytes]) -> list[Future]:
        """Start reading these PDFs now, behind any PDF the pipeline waits for; their futures."""
        started = []
        for data in pdfs:
            if len(data) > self.limits.max_bytes:
                continue  # refused without reading when asked for
            future = self._slots.submit(data, AHEAD)
            with self._lock:
                self._ahead.setdefault(_key(data), deque()).append(future)
            started.append(future)
        return started

    def forget(self, futures: Iterable[Future]) -> None:
        """Drop read-ahead results nobody took (the message did not need that PDF, or we stop)."""
        with self._lock:
            for future in futures:
                for key, waiting in list(self._ahead.items()):
                    if future in waiting:
                        waiting.remove(future)
                        future.cancel()  # not started yet: no worker time spent on it
                    if not waiting:
                        del self._ahead[key]

    def close(self, timeout: float = 0.0) -> bool:
        """Stop the workers; a later call starts new ones.

        A PDF being read is finished first (the daemon, stopping, still answers
        the mail in hand); what was read ahead is dropped. Waits up to
        ``timeout`` seconds for the workers to be gone; True if they are.
        """
        self.forget([f for waiting in list(self._ahead.values()) for f in waiting])
        return self._slots.stop(timeout)

    def _take_ahead(self, key: str) -> Future | None:
        with self._lock:
            waiting = self._ahead.get(key)
            if not waiting:
                return None
            future = waiting.popleft()
            if not waiting:
                del self._ahead[key]
            return future


def _key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Slots:
    """The job queue and the threads that serve it (no reference to the pool: it can be collected)."""

    def __init__(self, limits: Limits, size: int):
        self.limits, self.size = limits, size
        self.jobs: queue.PriorityQueue = queue.PriorityQueue()
        self.lock = threading.Lock()
        self.running = 0
        self.threads: list[threading.Thread] = []
        self.reads = 0
        self.generation = 0  # raised by stop(): the threads started before it leave
        self._order = itertools.count()  # FIFO within a priority

    def submit(self, data: bytes, priority: int) -> Future:
        future: Future = Future()
        with self.lock:
            self.jobs.put((priority, next(self._order), (data, future)))
            # Under the lock: a slot only leaves idle under it, after seeing the queue empty.
            while self.running < self.size:
                self.running += 1
                thread = threading.Thread(target=self._serve, args=(self.generation,), name="pdf-reader",
                                          daemon=True)
                thread.start()
                self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        return future

    def stop(self, timeout: float = 0.0) -> bool:
        """The running slots stop their workers and leave (a wake-up each, ahead of any PDF).

        Waits up to ``timeout`` seconds for the threads (each kills its worker); True once all left.
        """
        with self.lock:
            self.generation += 1
            for _ in range(self.running):
                self.jobs.put((-1, next(self._order), None))
            threads, self.threads = self.threads, [t for t in self.threads if t.is_alive()]
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)

    def _serve(self, generation: int) -> None:
        worker: Worker | None = None
        future: Future | None = None
        try:
            while (job := self._next_job(generation)) is not None:
                data, future = job
                if future.set_running_or_notify_cancel():
                    with self.lock:
                        self.reads += 1
                    worker = self._read(worker, data, future)
                if worker is not None and worker.reads >= READS_PER_WORKER:
                    worker.close()
                    worker = None
            future = None
        finally:
            if worker is not None:
                worker.close()
            if future is not None:  # a bug ended this slot: nobody may wait for ever, the slot is free
                self._abandon(future)

    def _read(self, worker: Worker | None, data: bytes, future: Future) -> Worker | None:
        try:
            outcome, worker = read_in_worker(worker, data, self.limits)
        except OSError as exc:  # no fork or no pipe (out of processes or memory): as before the pool,
            outcome, worker = exc, None  # the pipeline quarantines the mail with this error
        _settle(future, outcome)
        return worker

    def _abandon(self, future: Future) -> None:
        if not future.done():
            future.set_exception(RuntimeError("the PDF reader's slot stopped on an error (see the log)"))
        with self.lock:
            self.running -= 1

    def _next_job(self, generation: int) -> tuple[bytes, Future] | None:
        """The next PDF; None to leave: stopped, or idle for IDLE_SECONDS with the queue empty."""
        while True:
            try:
                job = self.jobs.get(timeout=IDLE_SECONDS)[2]
            except queue.Empty:
                job = None
            with self.lock:
                if job is not None:
                    return job
                if self.generation != generation or self.jobs.empty():
                    self.running -= 1
                    return None
            # else: a wake-up left over from an earlier stop, or work just came in


def _settle(future: Future, outcome: FormReading | Exception) -> None:
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def read_in_worker(worker: Worker | None, data: bytes,
                   limits: Limits) -> tuple[FormReading | PdfError, Worker | None]:
    """(the reading or its PdfError, the worker to keep: None when it is gone).

    In this worker if it still lives, else a fresh one. A used worker that
    fails on memory or dies is not the PDF's fault alone (what it read before
    is in its memory): the PDF is read again in a fresh worker.
    """
    if worker is None or not worker.alive:
        worker = Worker(limits)
    used = worker.reads > 0
    try:
        return worker.read(data), worker
    except WorkerGone:  # killed while idle (the kernel): it never saw this PDF
        return read_in_worker(None, data, limits)
    except PdfError as exc:
        if worker.alive:
            return exc, worker
        if used and exc.code in RETRIED_IN_A_FRESH_WORKER:
            log.info("PDF reader failed (%s) after %d reads: reading again in a fresh one",
                     exc.code, worker.reads - 1)
            return read_in_worker(None, data, limits)
        return exc, None
