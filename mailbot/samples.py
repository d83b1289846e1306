"""Sample mail as companies send it: for the demo, the tests and the benchmarks.

Each builder returns the raw bytes of one message (CRLF line ends, as a
server stores them), with a Japanese subject and, where it applies, the
application PDF made by mailbot.forms.fill.
"""

from __future__ import annotations

from datetime import datetime, timezone
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

PROGRAM_ADDRESS = "chizai@example.jp"


def application_mail(pdf: bytes, *, sender: str, sender_name: str = "", subject: str | None = None,
                     filename: str = "申請書.pdf", to: str = PROGRAM_ADDRESS,
                     in_reply_to: str | None = None) -> bytes:
    """A company's mail with its stamped application PDF attached."""
    msg = _base(sender, sender_name, to, subject or "海外における営業秘密漏えい対策支援事業 申請書の提出")
    msg.set_content("ジェトロ知的財産課 御中\n\n申請書を提出いたします。よろしくお願いいたします。\n")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=filename)
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    return msg.as_bytes(policy=SMTP)


def out_of_office_mail(*, sender: str, to: str = PROGRAM_ADDRESS) -> bytes:
    """An automatic out-of-office reply (Exchange style): must never be answered."""
    msg = _base(sender, "", to, "自動応答: 不在のお知らせ")
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content("誠に恐れ入りますが、12月1日まで不在にしております。\n")
    return msg.as_bytes(policy=SMTP)


def attachment_mail(data: bytes, filename: str, maintype: str, subtype: str, *, sender: str,
                    to: str = PROGRAM_ADDRESS) -> bytes:
    """A mail whose only attachment is not a PDF (e.g. the form as a Word file)."""
    msg = _base(sender, "", to, "申請書の提出")
    msg.set_content("申請書を添付いたします。\n")
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(policy=SMTP)


def _base(sender: str, sender_name: str, to: str, subject: str) -> EmailMessage:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = f"{sender_name} <{sender}>" if sender_name else sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "example.jp")
    return msg
