"""The consultation desk (個別相談窓口): one hour, once per company per program year.

(Being built for issue 5: until then requests are recorded for staff.)
"""

from __future__ import annotations


def receive(handling, verdict) -> None:
    """A consultation-form PDF: recorded for staff (no reply yet)."""
