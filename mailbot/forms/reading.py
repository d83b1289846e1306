"""What reading one PDF gives: the form's fields and the seal verdict.

Produced by ``mailbot.forms.read.read_form``; judged by ``mailbot.checks``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Seal:
    """What was found where the company seal (押印) should be.

    ``present``: a stamp-like mark was found anywhere on the form page.
    ``near_field``: it sits on the 代表者氏名 row. ``color``: "red", "black",
    "blue" or None when nothing was found. ``bbox`` in PDF points
    [x0, top, x1, bottom] as pdfplumber measures them.
    """

    present: bool
    near_field: bool
    color: str | None = None
    confidence: float = 0.0
    page: int | None = None
    bbox: tuple[float, float, float, float] | None = None

    def as_json(self) -> dict[str, Any]:
        """The ``seal`` object of the ``mailbot inspect`` JSON contract."""
        return {
            "present": self.present,
            "near_field": self.near_field,
            "color": self.color,
            "confidence": round(self.confidence, 2),
            "page": self.page,
            "bbox": [round(v, 1) for v in self.bbox] if self.bbox else None,
        }


NO_SEAL = Seal(present=False, near_field=False)


@dataclass(frozen=True)
class FormReading:
    """The fields read from a form, normalised, plus the seal verdict.

    ``form`` is "application", "consultation", or None when the PDF is not one
    of our forms. ``fields`` holds normalised values (see
    ../shared/spec/application-form.md for types); a blank field is absent.
    When a value cannot be normalised (e.g. 従業員数 "多数") the original text
    is kept so that a check can name the problem. ``originals`` keeps the
    applicant's own spelling of every field that was read. ``confidence`` is
    0–1 per field read (1.0 for text layers).
    """

    form: str | None
    source: str  # "text" | "acroform" | "ocr"
    pages: int
    form_page: int | None
    fields: dict[str, Any] = field(default_factory=dict)
    originals: dict[str, str] = field(default_factory=dict)
    seal: Seal = NO_SEAL
    confidence: dict[str, float] = field(default_factory=dict)
    #: Fields the reader saw but could not read with confidence (OCR): left out of
    #: ``fields`` rather than guessed, so staff check them instead of the applicant
    #: being told they are missing.
    uncertain: tuple[str, ...] = ()
    #: What would act when a person opens the PDF ("JavaScript", "Launch", "EmbeddedFile" ...;
    #: forms/active.py). Never run here; staff are warned before they open it.
    active_content: tuple[str, ...] = ()
