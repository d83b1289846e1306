"""Step 03: the held-information list and the self-check sheet, sent and received.

``blank_files(settings)`` gives the two documents the adoption mail attaches:
the program's real files when [workflow] held_info_list / self_check_sheet
name them, else the simple versions shipped in mailbot/forms/blank/.
"""

from __future__ import annotations

from pathlib import Path

from mailbot.config import Settings
from mailbot.errors import ConfigError
from mailbot.forms.blank_documents import BLANK_DIR, HELD_INFO_FILE, SELF_CHECK_FILE
from mailbot.outbox import OutgoingFile

HELD_INFO, SELF_CHECK = "held_info_list", "self_check"
#: What the applicant sees: the documents' Japanese names (also the attachment names of the shipped files).
TITLES = {HELD_INFO: "保有情報リスト", SELF_CHECK: "情報管理体制セルフチェックシート"}
_CONFIG_KEYS = {HELD_INFO: "held_info_list", SELF_CHECK: "self_check_sheet"}
_SHIPPED = {HELD_INFO: HELD_INFO_FILE, SELF_CHECK: SELF_CHECK_FILE}
CONTENT_TYPES = {
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".xls": "application/vnd.ms-excel",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".doc": "application/msword",
}


def blank_files(settings: Settings) -> list[OutgoingFile]:
    """The two documents to fill, held-information list first, ready to attach."""
    return [_blank_file(settings, kind) for kind in (HELD_INFO, SELF_CHECK)]


def _blank_file(settings: Settings, kind: str) -> OutgoingFile:
    key = _CONFIG_KEYS[kind]
    configured = getattr(settings.workflow, key)
    if not configured:
        # The shipped file has an ASCII name on disk; the applicant sees the Japanese one.
        path = BLANK_DIR / _SHIPPED[kind]
        return OutgoingFile(TITLES[kind] + path.suffix, content_type(path.name), path.read_bytes())
    path = settings.path(configured)
    if not path.is_file():
        raise ConfigError(f"[workflow] {key}: no such file: {path}")
    return OutgoingFile(path.name, content_type(path.name), path.read_bytes())


def content_type(filename: str) -> str:
    """The MIME type of a document by its extension (octet-stream when unknown)."""
    return CONTENT_TYPES.get(Path(filename).suffix.lower(), "application/octet-stream")


def receive(handling, verdict) -> None:
    """Files in an application's thread: recorded for staff (no reply yet)."""
