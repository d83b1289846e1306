"""How mailbot proves who it is to the IMAP server, and checks who the server is.

Kept apart from :mod:`mailbot.intake.imap` so that the ways of logging in
grow here without touching how mail is listed, fetched and moved:

- ``auth = "password"``: LOGIN with the password (over TLS unless loopback);
- ``auth = "oauth2"``: AUTHENTICATE XOAUTH2 with an access token from
  :mod:`mailbot.oauth` (Microsoft 365 and Gmail refuse passwords).

:func:`tls_context` is the certificate check for the connection: the
system's CAs, or ``ca_file`` for a server whose certificate a private CA
signed (an in-house server, a TLS-inspecting proxy).
"""

from __future__ import annotations

import ssl

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from mailbot.config import ImapSettings
from mailbot.errors import ImapError, TransportError
from mailbot.oauth import provider_for


def tls_context(settings: ImapSettings) -> ssl.SSLContext:
    """Certificate and host name verified; against ``ca_file`` only when one is set."""
    try:
        return ssl.create_default_context(cafile=settings.ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ImapError(f"IMAP {settings.host}:{settings.port}: ca_file "
                        f"{settings.ca_file!r} cannot be loaded: {exc}") from None


def login(client: IMAPClient, settings: ImapSettings) -> None:
    """Log in on an open (and, unless security = "none", encrypted) connection."""
    if settings.auth == "oauth2":
        _oauth2_login(client, settings)
    else:
        client.login(settings.username, settings.password)


def _oauth2_login(client: IMAPClient, settings: ImapSettings) -> None:
    """XOAUTH2 with a cached token; a refused token is forgotten so the next try gets a new one."""
    where = f"IMAP {settings.host}:{settings.port}: OAuth2 login as {settings.username}"
    if not client.has_capability("AUTH=XOAUTH2"):
        # Say so, rather than blame the token for a server that never takes one.
        raise ImapError(f"{where}: the server does not offer AUTH=XOAUTH2 (use auth = \"password\")")
    provider = provider_for(settings.oauth2)
    try:
        token = provider.access_token()
    except TransportError as exc:
        raise ImapError(f"{where}: no access token: {exc}") from None
    try:
        client.oauth2_login(settings.username, token)
    except LoginError as exc:
        provider.invalidate()
        raise ImapError(f"{where}: the server refused the access token "
                        f"(expired, revoked, or not granted this mailbox): {exc}") from None
