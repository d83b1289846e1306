"""Shared fixtures: real servers on 127.0.0.1 (add new fixtures in their own section)."""

from __future__ import annotations

import os
import re

import pytest

from mailbot.config import ImapSettings
from tests import dovecot as dovecot_server

# --- IMAP: Dovecot 2.3 ------------------------------------------------------


@pytest.fixture(scope="session")
def dovecot():
    """A running Dovecot (tests/dovecot.py ``Dovecot``) for the whole session.

    Missing binary: skipped locally, a failure when CI=true (CI must run these).
    """
    try:
        server = dovecot_server.Dovecot()
    except dovecot_server.DovecotUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {exc}")
        pytest.skip(str(exc))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def imap_settings(dovecot, request) -> ImapSettings:
    """ImapSettings (security none, folder INBOX) for a fresh, empty mailbox of this test."""
    prefix = re.sub(r"[^a-z0-9]", "", request.node.name.lower())[:20] or "user"
    return dovecot.settings(dovecot.new_user(prefix))
