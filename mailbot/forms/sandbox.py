"""Read a PDF in a child process with a time limit and a memory limit.

PDF libraries can hang (a stream whose /Length refers to itself), balloon
(decompression bombs) or abort natively (pdfium); none of that may take the
daemon down. The child gets RLIMIT_AS and a wall-clock limit; whatever goes
wrong comes back as a PdfError with a specific code:

- ``too_large``: over ``Limits.max_bytes`` (checked before any parsing);
- ``timeout``: no answer within ``Limits.seconds`` (the child is killed);
- ``too_complex``: the child ran out of its memory (MemoryError);
- ``broken``: the child died without answering (a native abort, the kernel);
- ``reader_failed``: a bug in the reader (logged with its traceback);
- and whatever preflight/read refuse with (not_pdf, encrypted, broken,
  too_many_pages, too_complex).

The preflight (forms/preflight.py) refuses bombs and loops in well under a
second; these limits are the last line of defence for what it misses.
"""

from __future__ import annotations

import logging
import multiprocessing
import resource
from dataclasses import dataclass
from multiprocessing.connection import Connection

from mailbot.errors import PdfError

# Imported in the parent on purpose: each forked child then starts with pdfplumber
# and pypdfium2 already loaded, instead of paying ~0.5 s to import them per PDF.
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


@dataclass(frozen=True)
class Limits:
    """How much one PDF may cost: bytes in, seconds, memory, pages."""

    max_bytes: int = 20 * 1024 * 1024
    seconds: float = 30.0
    memory_mb: int = 1536
    max_pages: int = 50


def read_form_safely(data: bytes, limits: Limits) -> FormReading:
    """read_form in a child process; PdfError on oversize, timeout or a crash."""
    if len(data) > limits.max_bytes:
        raise PdfError("too_large", TOO_LARGE.format(mb=limits.max_bytes // (1024 * 1024)))
    receiver, sender = multiprocessing.get_context("fork").Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(
        target=_child, args=(sender, data, limits), daemon=True
    )
    child.start()
    sender.close()
    try:
        return _await_result(child, receiver, limits)
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join()


def _await_result(child, receiver: Connection, limits: Limits) -> FormReading:
    """The child's answer, or PdfError: timeout, or the child's death (native abort, kernel)."""
    if not receiver.poll(limits.seconds):
        raise PdfError("timeout", TIMEOUT)
    try:
        kind, payload = receiver.recv()
    except EOFError:  # the child died: out of memory or a native abort
        child.join(1)
        log.warning("the PDF reader died without answering (exit code %s)", child.exitcode)
        raise PdfError("broken", DIED) from None
    if kind == "error":
        raise PdfError(*payload)
    return payload


def _child(sender: Connection, data: bytes, limits: Limits) -> None:
    """Read under RLIMIT_AS and send ("ok", FormReading) or ("error", (code, message))."""
    limit = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        sender.send(("ok", read_form(data, max_pages=limits.max_pages)))
    except PdfError as exc:
        sender.send(("error", (exc.code, exc.message)))
    except MemoryError:
        sender.send(("error", ("too_complex", OUT_OF_MEMORY)))
    except Exception:  # a bug in the reader: staff must see it, the daemon must not
        log.exception("the PDF reader failed")  # the traceback goes to the daemon's log
        sender.send(("error", ("reader_failed", READER_FAILED)))
    finally:
        sender.close()
