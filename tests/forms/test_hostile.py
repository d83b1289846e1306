"""Hostile and odd PDFs (tests/forms/hostile.py) through read_form_safely, with the shipped config's limits.

Each is refused with its own code (or read) in under 2 s; the sandbox's
timeout and memory limit answer with a PdfError; the daemon's process lives on.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailbot import config
from mailbot.errors import PdfError
from mailbot.forms import preflight
from mailbot.forms.sandbox import Limits, read_form_safely
from mailbot.services import pdf_limits
from tests.forms import hostile

LIMITS = pdf_limits(config.load(Path(__file__).parents[2] / "config.toml", environ={}))

REFUSED = {
    "flate_bomb": "too_complex",
    "image_bomb": "too_complex",
    "self_length": "too_complex",
    "nested_xobjects": "too_complex",
    "xobject_cycle": "too_complex",
    "many_characters": "too_complex",
    "aes256": "encrypted",
    "rc4": "encrypted",
    "truncated": "broken",
    "garbage": "broken",
    "png_renamed": "not_pdf",
    "docx_renamed": "not_pdf",
    "empty": "not_pdf",
    "many_pages": "too_many_pages",
}

BUILD = {
    "aes256": lambda: hostile.encrypted("AES-256"),
    "rc4": lambda: hostile.encrypted("RC4-128"),
    "empty": lambda: b"",
}


def _build(name: str) -> bytes:
    return BUILD[name]() if name in BUILD else getattr(hostile, name)()


def _timed(data: bytes, limits: Limits = LIMITS):
    """(FormReading or PdfError, seconds) of read_form_safely."""
    start = time.perf_counter()
    try:
        result = read_form_safely(data, limits)
    except PdfError as exc:
        result = exc
    return result, time.perf_counter() - start


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_with_its_code_quickly(name):
    result, seconds = _timed(_build(name))
    assert isinstance(result, PdfError), f"{name} was read"
    assert result.code == REFUSED[name]
    assert seconds < 2.0
    assert "ください" in result.message  # tells the applicant what to do


@pytest.mark.parametrize("name", ["javascript_open_action", "owner_password_only"])
def test_read_normally(name):
    result, seconds = _timed(_build(name))
    assert not isinstance(result, PdfError), result
    assert result.form == "application" and result.seal.present
    assert result.fields["company_name"] == "株式会社サンプル精機"
    assert seconds < 2.0


def test_a_heavy_image_is_read_or_refused_quickly():
    result, seconds = _timed(hostile.heavy_image())
    assert not isinstance(result, PdfError) or result.code in ("too_complex", "broken")
    assert seconds < 2.0


def test_too_large_is_refused_before_reading():
    result, seconds = _timed(hostile.form(), Limits(max_bytes=1000))
    assert isinstance(result, PdfError) and result.code == "too_large" and seconds < 0.1


def test_timeout_within_the_limit():
    # A limit well under any read (a form takes a fresh reader ~20 ms): the read cannot finish in it.
    result, seconds = _timed(hostile.form(), Limits(seconds=0.002))
    assert isinstance(result, PdfError) and result.code == "timeout"
    assert seconds < 0.002 + 1.0


MEMORY_PROBE = """
import os, sys
from mailbot.errors import PdfError
from mailbot.forms.sandbox import Limits, read_form_safely
from tests.forms import hostile
data = hostile.many_characters(70_000)  # pdfplumber needs ~160 MB for it
try:
    read_form_safely(data, Limits(memory_mb=40))  # 40 MB on top of what the child starts with
    print("read")
except PdfError as exc:
    print(exc.code)
print("alive", os.getpid())
"""


def test_memory_blow_up_is_a_pdf_error_not_a_crash():
    # A fresh interpreter: in this one, memory freed by earlier tests would let the child grow unseen.
    root = Path(__file__).parents[2]
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE], cwd=root, capture_output=True, text=True, timeout=60)
    lines = out.stdout.split()
    assert out.returncode == 0, out.stderr
    assert lines[0] in ("too_complex", "broken") and lines[1] == "alive"


def test_the_parent_survives_all_of_them():
    pid = os.getpid()
    for name in REFUSED:
        _timed(_build(name))
    result, _seconds = _timed(hostile.form())
    assert os.getpid() == pid and result.form == "application"


def test_every_refusal_code_has_a_polite_message():
    for code, message in preflight.MESSAGES.items():
        assert message.endswith("ください。") or message.endswith("いたします。"), code
