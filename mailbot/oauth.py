"""OAuth2 access tokens for mailboxes that refuse passwords (Microsoft 365, Gmail).

The [oauth2] section chooses one of two flows; both give an access token that
IMAP and SMTP present with XOAUTH2:

- ``client_credentials`` (Microsoft 365): the app registered in Entra ID asks
  for a token in its own name with msal's ``acquire_token_for_client``; the
  mailbox address is the IMAP/SMTP user name.
- ``refresh_token`` (Gmail and other providers): a person granted access once;
  the refresh token is traded for access tokens at the provider's token
  endpoint with Authlib. Providers may hand back a NEW refresh token and
  invalidate the old one (rotation): it is saved to ``token_file`` each time it
  changes, written atomically with mode 0600, and that file wins over the
  environment's initial token at the next start.

A token is kept in memory until REFRESH_MARGIN_SECONDS before it expires, so
every IMAP reconnection and every SMTP drain reuses it. Secrets (the client
secret, refresh and access tokens) are never logged and never in a repr.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import msal
import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session

from mailbot.config import OAuth2Settings
from mailbot.errors import ConfigError, TransportError

log = logging.getLogger(__name__)

#: Ask for a new token this long before the old one expires (clocks drift, logins take time).
REFRESH_MARGIN_SECONDS = 300
#: When the provider does not say how long a token lives, assume the usual hour.
DEFAULT_LIFETIME_SECONDS = 3600
# What the HTTP layer and the OAuth libraries raise for a refused or unreachable endpoint.
_TOKEN_ERRORS = (requests.RequestException, AuthlibBaseError, ValueError)


class _CaFileWins:
    """Mixin for requests sessions: a configured ``ca_file`` is used even when the environment
    sets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE (requests lets those replace a session's
    ``verify``: psf/requests#3829); without ``ca_file`` the environment decides as usual."""

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None and self.verify is not True:
            merged["verify"] = self.verify
        return merged


class _HttpSession(_CaFileWins, requests.Session):
    """msal's HTTP client: our CA file and our timeout on every request."""

    def __init__(self, settings: OAuth2Settings):
        super().__init__()
        self.verify = settings.ca_file or True
        self.timeout = settings.timeout_seconds

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, **kwargs)


class _TokenSession(_CaFileWins, OAuth2Session):
    """Authlib's session with the CA file rule above."""


@dataclass
class AccessToken:
    """One access token and the moment (time.time()) it stops working."""

    value: str = field(repr=False)
    expires_at: float


class TokenProvider:
    """Hands out a valid access token, asking the provider only when the cached one is old.

    Thread-safe: the IDLE watcher and the SMTP sender may ask at the same time.
    """

    def __init__(self, settings: OAuth2Settings, clock: Callable[[], float] = time.time):
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self.fetches = 0  # how often the provider was asked (tests, diagnostics)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client_id={self.settings.client_id!r})"

    def access_token(self) -> str:
        """A token valid for at least REFRESH_MARGIN_SECONDS more; TransportError if refused."""
        with self._lock:
            if self._token is None or self._token.expires_at - REFRESH_MARGIN_SECONDS <= self._clock():
                self._token = self._fetch()
                self.fetches += 1
            return self._token.value

    def invalidate(self) -> None:
        """Forget the cached token: the mail server refused it (revoked before its expiry)."""
        with self._lock:
            self._token = None

    def _expiry(self, response: dict) -> float:
        lifetime = int(response.get("expires_in") or DEFAULT_LIFETIME_SECONDS)
        return self._clock() + lifetime

    def _fetch(self) -> AccessToken:
        raise NotImplementedError


class ClientCredentials(TokenProvider):
    """Microsoft 365: msal ConfidentialClientApplication.acquire_token_for_client."""

    def _fetch(self) -> AccessToken:
        s = self.settings
        where = f"OAuth2 token from {s.authority_url}"
        try:
            result = self._msal().acquire_token_for_client(scopes=[s.scope])
        except _TOKEN_ERRORS as exc:
            raise TransportError(f"{where}: {type(exc).__name__}: {exc}") from None
        if "access_token" not in result:
            raise TransportError(f"{where}: {result.get('error')}: {result.get('error_description')}")
        return AccessToken(result["access_token"], self._expiry(result))

    def _msal(self) -> msal.ConfidentialClientApplication:
        """A new msal app for each fetch (one metadata request an hour).

        msal keeps a token cache of its own: a long-lived app would hand back the
        very token this provider decided to renew, or the server just refused.
        """
        s = self.settings
        # instance_discovery=False: no call to Microsoft's discovery service beyond the
        # authority itself (known Microsoft hosts skip it anyway; private ones must).
        return msal.ConfidentialClientApplication(
            s.client_id, client_credential=s.client_secret.get_secret_value(),
            authority=s.authority_url, instance_discovery=False, http_client=_HttpSession(s))


class RefreshTokenGrant(TokenProvider):
    """Gmail and others: the refresh-token grant at ``token_url`` (Authlib), rotation saved.

    Authlib rather than msal here: msal's refresh-token call is meant for
    migrating into its own cache and hides rotation; Authlib returns the
    provider's answer as is, so a changed refresh token is seen and saved.
    """

    def __init__(self, settings: OAuth2Settings, clock: Callable[[], float] = time.time):
        super().__init__(settings, clock)
        self.token_file = Path(settings.token_file)
        self._refresh_token = initial_refresh_token(settings)

    def _fetch(self) -> AccessToken:
        s = self.settings
        try:
            answer = self._session().refresh_token(
                s.token_url, refresh_token=self._refresh_token, timeout=s.timeout_seconds)
        except _TOKEN_ERRORS as exc:
            raise TransportError(f"OAuth2 token from {s.token_url}: {_describe(exc)}") from None
        rotated = answer.get("refresh_token")
        if rotated and rotated != self._refresh_token:
            self._refresh_token = rotated
            self._save(rotated)
        return AccessToken(answer["access_token"], self._expiry(answer))

    def _session(self) -> OAuth2Session:
        s = self.settings
        secret = s.client_secret.get_secret_value()
        session = _TokenSession(
            s.client_id, secret or None, scope=s.scope or None,
            # Google and most providers take the client in the form; a public client has no secret.
            token_endpoint_auth_method="client_secret_post" if secret else "none")
        session.verify = s.ca_file or True
        return session

    def _save(self, token: str) -> None:
        try:
            save_refresh_token(self.token_file, token)
        except OSError as exc:
            # Still usable in memory until the next restart; staff must fix the file before then.
            log.error("OAuth2: could not save the rotated refresh token to %s: %s",
                      self.token_file, exc)


def _describe(exc: Exception) -> str:
    """The provider's error code and description (Authlib), or the exception's text."""
    error = getattr(exc, "error", None)
    description = getattr(exc, "description", None)
    if error:
        return f"{error}: {description}" if description else str(error)
    return f"{type(exc).__name__}: {exc}"


# --- the token file ------------------------------------------------------------


def initial_refresh_token(settings: OAuth2Settings) -> str:
    """The refresh token to start from: the token file (latest rotation) or the environment."""
    saved = read_refresh_token(Path(settings.token_file))
    token = saved or settings.refresh_token.get_secret_value()
    if not token:
        raise ConfigError(f"[oauth2] no refresh token: set MAILBOT_OAUTH2__REFRESH_TOKEN once, "
                          f"or write it to the token file {settings.token_file}")
    return token


def read_refresh_token(path: Path) -> str:
    """The refresh token saved in ``path``; "" when the file does not exist yet."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ""
    except (OSError, ValueError) as exc:
        raise ConfigError(f"[oauth2] token_file {path}: unreadable ({type(exc).__name__})") from None
    token = data.get("refresh_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        raise ConfigError(f'[oauth2] token_file {path}: no "refresh_token" in it')
    return token


def save_refresh_token(path: Path, token: str) -> None:
    """Write the token atomically (temp file, fsync, rename) with mode 0600 from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"refresh_token": token,
                       "saved_at": datetime.now(UTC).isoformat(timespec="seconds")})
    # mkstemp creates the file 0600, so the secret is never readable by others, not even briefly.
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)  # left only when the write or rename failed
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable: a crash right after must not bring back the old token."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- one provider per configuration ------------------------------------------------

_providers: dict[OAuth2Settings, TokenProvider] = {}
_providers_lock = threading.Lock()


def provider_for(settings: OAuth2Settings) -> TokenProvider:
    """The provider for these settings, shared by IMAP and SMTP so that one token serves both."""
    with _providers_lock:
        provider = _providers.get(settings)
        if provider is None:
            kind = ClientCredentials if settings.flow == "client_credentials" else RefreshTokenGrant
            provider = _providers[settings] = kind(settings)
        return provider
