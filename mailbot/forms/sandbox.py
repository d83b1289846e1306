"""Read a PDF in a child process with a time limit and a memory limit.

PDF libraries can hang (a stream whose /Length refers to itself), balloon
(decompression bombs) or abort natively (pdfium); none of that may take the
daemon down. The child gets RLIMIT_AS and a wall-clock limit; whatever goes
wrong comes back as a PdfError with a specific code.
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
        raise PdfError(
            "too_large",
            f"添付ファイルが大きすぎます（上限 {limits.max_bytes // (1024 * 1024)} MB）。"
            "申請書のPDFのみを添付し、画像の解像度を下げて再送してください。",
        )
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
    if not receiver.poll(limits.seconds):
        raise PdfError(
            "timeout",
            "PDFの読み取りが時間内に終わりませんでした。ファイルが壊れていないかご確認のうえ、"
            "申請書のみのPDFとして保存し直して再送してください。",
        )
    try:
        kind, payload = receiver.recv()
    except EOFError:  # the child died: out of memory or a native abort
        raise PdfError(
            "broken",
            "PDFを読み取れませんでした（ファイルが壊れているか、処理の上限を超えています）。"
            "申請書を保存し直して再送してください。",
        ) from None
    if kind == "error":
        raise PdfError(*payload)
    return payload


def _child(sender: Connection, data: bytes, limits: Limits) -> None:
    limit = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        sender.send(("ok", read_form(data, max_pages=limits.max_pages)))
    except PdfError as exc:
        sender.send(("error", (exc.code, exc.message)))
    except MemoryError:
        sender.send(("error", ("too_large", "PDFの処理に必要なメモリが上限を超えました。")))
    except Exception:  # a bug in the reader: staff must see it, the daemon must not
        log.exception("the PDF reader failed")  # the traceback goes to the daemon's log
        sender.send(("error", ("reader_failed", READER_FAILED)))
    finally:
        sender.close()
