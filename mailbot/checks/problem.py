"""One thing wrong with an application, in words the applicant can act on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """A code for machines, a field, a severity and a Japanese message for people.

    ``severity`` is "error" (the application is incomplete: the applicant must
    fix and resend) or "warning" (staff look at it; the application still
    queues).
    """

    code: str
    field: str | None
    severity: str
    message_ja: str

    def as_json(self) -> dict[str, Any]:
        """The element of ``problems`` in the ``mailbot inspect`` JSON contract."""
        return {
            "code": self.code,
            "field": self.field,
            "severity": self.severity,
            "message_ja": self.message_ja,
        }
