"""How mailbot proves who it is to the IMAP server.

Kept apart from :mod:`mailbot.intake.imap` so that the ways of logging in
(a password over TLS today; OAuth2 for mailboxes that refuse passwords) grow
here without touching how mail is listed, fetched and moved.
"""

from __future__ import annotations

from imapclient import IMAPClient

from mailbot.config import ImapSettings


def login(client: IMAPClient, settings: ImapSettings) -> None:
    """Log in on an open (and, unless security = "none", encrypted) connection."""
    client.login(settings.username, settings.password)
