"""The parsed form of one inbound e-mail, as every later room sees it.

Built by ``mailbot.intake.mime.parse`` from the raw bytes; text is already
decoded (Japanese charsets handled there), so no later room touches MIME.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Attachment:
    """One attached file, its name decoded (RFC 2231 / RFC 2047)."""

    filename: str
    content_type: str
    data: bytes
    #: An image shown inside an HTML body (a logo in a signature, Content-ID):
    #: part of the text, not a file the sender meant to send.
    inline: bool = False

    @property
    def is_pdf(self) -> bool:
        """True when the name or type says PDF, or the bytes start like one."""
        return (
            self.content_type.lower() == "application/pdf"
            or self.filename.lower().endswith(".pdf")
            or self.data[:5] == b"%PDF-"
        )


@dataclass(frozen=True)
class InboundMessage:
    """Sender, recipients, subject, text, attachments and threading headers."""

    message_id: str | None
    sender: str  # bare address from From:, e.g. "tanaka@example.co.jp"
    sender_name: str  # display name from From:, decoded; "" when absent
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    text: str  # the plain-text body (HTML-only mail: the HTML rendered to text)
    attachments: tuple[Attachment, ...]
    in_reply_to: str | None
    references: tuple[str, ...]
    reply_to: tuple[str, ...] = ()
    return_path: str | None = None  # None: header absent; "": the null sender <>
    date: datetime | None = None  # the sender's Date: header, for display only
    content_type: str = "text/plain"  # top-level type, e.g. multipart/report for bounces
    # Every header, name lower-cased, values decoded; repeated headers keep all values.
    headers: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """The first value of a header (case-insensitive), or None."""
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def pdfs(self) -> tuple[Attachment, ...]:
        """The PDF attachments, in the order they appear."""
        return tuple(a for a in self.attachments if a.is_pdf)
