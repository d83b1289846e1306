"""The consultation desk form (個別相談申込書) scanned and read by OCR (forms/ocr.py).

The same contract as the application's scans: the form is recognised by its
title or its own labels, every field is exactly right or named in
``uncertain`` (never wrong and unflagged), and it has no seal to judge.
"""

from __future__ import annotations

import os
from functools import cache

import pytest

from mailbot.forms import ocr
from mailbot.forms.consultation import (
    CONSULTATION,
    render_consultation,
    sample_consultation_values,
)
from mailbot.forms.fill import corporate_number
from mailbot.forms.reading import FormReading
from mailbot.forms.scan import simulate_scan

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

REQUESTS = (
    sample_consultation_values(),
    sample_consultation_values(
        company_name="株式会社北斗テクノロジー", corporate_number=corporate_number("120001077001"),
        contact_name="田中 美咲", contact_email="m.tanaka@hokuto-tech.jp", contact_phone="06-6345-7890",
        country="VN", topic="ベトナム工場の設立にあたり、図面の持ち出し対策を相談したい。",
        preferred_dates=["2027-01-12T10:00", "2027-01-14"],
    ),
    sample_consultation_values(country="EU:DE", preferred_dates=["2026-11-20T15:30"], topic=None),
)
# (request, dpi, angle, noise, JPEG quality)
SCANS = (
    (0, 150, 1.0, 0.03, 70),
    (1, 200, -1.5, 0.04, 65),
    (2, 300, 0.5, 0.02, 80),
    (1, 300, 2.0, 0.03, None),
)


@pytest.fixture(scope="module", autouse=True)
def _tesseract_installed():
    if not ocr.ocr_available():
        pytest.fail("tesseract with the Japanese model (jpn) is missing — run `.ci/setup --test`")


@cache
def read(n: int) -> FormReading:
    """Scan ``n`` of SCANS, read."""
    request, dpi, angle, noise, quality = SCANS[n]
    scan = simulate_scan(render_consultation(REQUESTS[request]), dpi=dpi, angle=angle, noise=noise,
                         jpeg_quality=quality, seed=n)
    return ocr.read_scanned(scan)


@pytest.mark.parametrize("n", range(len(SCANS)))
def test_a_scanned_consultation_request_is_found_as_that_form(n):
    reading = read(n)
    assert reading is not None and reading.form == "consultation"
    assert (reading.source, reading.form_page, reading.pages) == ("ocr", 1, 1)
    assert not reading.seal.present and "seal" not in reading.uncertain  # the form has no seal
    assert set(reading.fields) <= set(CONSULTATION.all_keys())


@pytest.mark.parametrize("n", range(len(SCANS)))
def test_every_field_is_right_or_uncertain(n):
    values, reading = REQUESTS[SCANS[n][0]], read(n)
    wrong = {k: v for k, v in reading.fields.items() if values.get(k) != v}
    unflagged = [k for k in values if k not in reading.fields and k not in reading.uncertain]
    assert (wrong, unflagged) == ({}, [])


def test_most_fields_are_read():
    counted = [(k, read(n).fields.get(k) == v) for n in range(len(SCANS))
               for k, v in REQUESTS[SCANS[n][0]].items()]
    right = sum(ok for _k, ok in counted)
    assert right / len(counted) >= 0.8, counted


def test_the_wishes_are_the_text_readers_iso_list():
    reading = read(2)
    assert reading.fields.get("preferred_dates") == ["2026-11-20T15:30"]
