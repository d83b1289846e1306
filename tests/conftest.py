"""Shared fixtures: real servers on 127.0.0.1 (add new fixtures in their own section)."""

from __future__ import annotations

import re

import pytest

from mailbot.config import ImapSettings
from tests import dovecot as dovecot_server

# --- IMAP: Dovecot 2.3 ------------------------------------------------------


@pytest.fixture(scope="session")
def dovecot():
    """A running Dovecot (tests/dovecot.py ``Dovecot``) for the whole session.

    A missing binary fails the tests (locally and on CI alike): the IMAP path is
    only ever tested against the real server, and `.ci/setup --test` installs it.
    """
    try:
        server = dovecot_server.Dovecot()
    except dovecot_server.DovecotUnavailable as exc:
        pytest.fail(f"{exc} — run `.ci/setup --test` to install it")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def imap_settings(dovecot, request) -> ImapSettings:
    """ImapSettings (security none, folder INBOX) for a fresh, empty mailbox of this test."""
    prefix = re.sub(r"[^a-z0-9]", "", request.node.name.lower())[:20] or "user"
    return dovecot.settings(dovecot.new_user(prefix))
