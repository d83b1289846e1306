"""Real-mailbox authentication end to end: TLS with certificate checks, and XOAUTH2.

Two Dovecot 2.3 servers on 127.0.0.1 with a certificate from a test CA: one
with a password passdb (TLS and STARTTLS), one with an ``oauth2`` passdb that
asks the local OAuth2 provider (tests/dovecot_oauth.py TokenServer) whether a
token is active and whose it is. mailbot gets its tokens from that provider
through msal (client credentials, as for Microsoft 365) or Authlib (refresh
token with rotation, as for Gmail), logs in with XOAUTH2, selects INBOX, and
runs a whole cycle: the application in, the receipt out over SMTP XOAUTH2.
"""

from __future__ import annotations

import re
import ssl
import uuid
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import certifi
import pytest
from imapclient import IMAPClient

from mailbot import PROJECT_ROOT, config, daemon, samples
from mailbot.config import OAuth2Settings
from mailbot.errors import ImapError
from mailbot.forms.fill import render_application, sample_values
from mailbot.intake.imap import Mailbox
from mailbot.intake.login import tls_context
from mailbot.oauth import read_refresh_token
from mailbot.services import build
from tests.dovecot_oauth import SecureDovecot, TestCA, TokenServer, XOAuth2Smtp

SECRET = "m365-app-secret"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """CA, token provider, a TLS Dovecot (passwords) and a TLS + OAuth2 Dovecot."""
    ca = TestCA(tmp_path_factory.mktemp("ca"))
    tokens = TokenServer(ca)  # bound now, served after the forks (see TokenServer)
    tls = SecureDovecot(ca=ca)
    oauth = SecureDovecot(ca=ca, introspection_url=tokens.introspection_url)
    try:
        tls.start()
        oauth.start()
        tokens.start()
        yield SimpleNamespace(ca=ca, tokens=tokens, tls=tls, oauth=oauth)
    finally:
        tokens.stop()
        oauth.stop()
        tls.stop()


def mailbox_address() -> str:
    return f"chizai-{uuid.uuid4().hex[:8]}@example.jp"


def app_oauth2(servers, address: str, **overrides) -> OAuth2Settings:
    """Client credentials (msal) for an app allowed into ``address``."""
    client_id = f"app-{uuid.uuid4().hex[:8]}"
    servers.tokens.register(client_id, address, secret=SECRET)
    values = {"client_id": client_id, "client_secret": SECRET, "authority": servers.tokens.authority,
              "ca_file": str(servers.ca.ca_file), "timeout_seconds": 10}
    return OAuth2Settings(**{**values, **overrides})


def oauth_imap(servers, address: str, oauth2: OAuth2Settings):
    return servers.oauth.settings(address, password="", auth="oauth2", oauth2=oauth2)


def log_in(settings) -> None:
    """Connect and log in as the daemon does, then leave."""
    with Mailbox(settings):
        pass


def dovecot_logins(server: SecureDovecot, address: str) -> list[str]:
    log = (server.base / "dovecot.log").read_text(errors="replace")
    return re.findall(rf"Login: user=<{re.escape(address)}>, method=(\w+)", log)


# --- XOAUTH2 ----------------------------------------------------------------------


def test_xoauth2_with_client_credentials_logs_in_and_selects_inbox(servers):
    address = mailbox_address()
    with Mailbox(oauth_imap(servers, address, app_oauth2(servers, address))) as box:
        assert box.select() > 0  # UIDVALIDITY of INBOX
        assert box.uids() == []
    assert dovecot_logins(servers.oauth, address) == ["XOAUTH2"]
    assert servers.tokens.requests[-1]["grant_type"] == "client_credentials"


def test_a_token_the_server_no_longer_accepts_is_refused_clearly_then_renewed(servers):
    address = mailbox_address()
    settings = oauth_imap(servers, address, app_oauth2(servers, address))
    log_in(settings)
    servers.tokens.expire_tokens()  # the cached token is still "valid" by our clock
    with pytest.raises(ImapError, match=rf"OAuth2 login as {address}: the server refused the access token"):
        log_in(settings)
    with Mailbox(settings) as box:  # the refused token was forgotten: a new one is used
        box.select()
    assert dovecot_logins(servers.oauth, address) == ["XOAUTH2", "XOAUTH2"]


def test_a_token_for_another_mailbox_is_refused(servers):
    address, other = mailbox_address(), mailbox_address()
    with pytest.raises(ImapError, match=r"refused the access token"):
        log_in(oauth_imap(servers, other, app_oauth2(servers, address)))
    assert dovecot_logins(servers.oauth, other) == []


def test_a_token_endpoint_refusal_is_an_imap_error_naming_it(servers):
    address = mailbox_address()
    oauth2 = app_oauth2(servers, address, client_secret="expired-secret")
    with pytest.raises(ImapError, match=r"no access token: OAuth2 token from https://127\.0\.0\.1:\d+/"
                                        r"jetro-test-tenant: invalid_client") as caught:
        log_in(oauth_imap(servers, address, oauth2))
    assert "expired-secret" not in str(caught.value)


def test_a_server_without_xoauth2_is_named_before_any_token_is_asked(servers):
    address = mailbox_address()
    oauth2 = app_oauth2(servers, address)
    asked_before = len(servers.tokens.requests)
    settings = servers.tls.settings(address, password="", auth="oauth2", oauth2=oauth2)
    with pytest.raises(ImapError, match=r"does not offer AUTH=XOAUTH2"):
        log_in(settings)
    assert len(servers.tokens.requests) == asked_before


def test_refresh_token_flow_saves_every_rotation(servers, tmp_path):
    address, client_id = mailbox_address(), f"gmail-{uuid.uuid4().hex[:8]}"
    client = servers.tokens.register(client_id, address, secret=SECRET, refresh_token="granted-once")
    token_file = tmp_path / "oauth2-token.json"
    oauth2 = OAuth2Settings(flow="refresh_token", client_id=client_id, client_secret=SECRET,
                            token_url=servers.tokens.token_url, refresh_token="granted-once",
                            scope="https://mail.google.com/", token_file=str(token_file),
                            ca_file=str(servers.ca.ca_file), timeout_seconds=10)
    settings = oauth_imap(servers, address, oauth2)
    with Mailbox(settings) as box:
        box.select()
    first = read_refresh_token(token_file)
    assert first == client.refresh_token and first != "granted-once"
    servers.tokens.expire_tokens()
    with pytest.raises(ImapError, match="refused the access token"):
        log_in(settings)
    with Mailbox(settings) as box:
        box.select()
    assert client.used_refresh_tokens == ["granted-once", first]
    assert read_refresh_token(token_file) == client.refresh_token != first


def test_a_whole_cycle_over_xoauth2_on_imap_and_smtp(servers, tmp_path):
    """GIVEN a Microsoft 365 style mailbox that refuses passwords, with an application in it
    WHEN one cycle runs
    THEN mailbot reads it over IMAP XOAUTH2 and the receipt leaves over SMTP XOAUTH2."""
    address = mailbox_address()
    oauth2 = app_oauth2(servers, address)
    deliver(servers, address, oauth2)
    asked_before = len(servers.tokens.requests)
    with XOAuth2Smtp(servers.tokens) as smtp:
        services = build(cycle_settings(servers, address, oauth2, smtp.port, tmp_path))
        report = daemon.run_once(services)
    assert (report.poll.stored, report.poll.processed, report.poll.moved, report.sent) == (1, 1, 1, 1)
    [(user, rcpt, _)] = smtp.messages
    assert user == address and "tanaka@sample-seiki.example.jp" in rcpt
    grants = [form["grant_type"] for form in servers.tokens.requests[asked_before:]]
    assert grants == ["client_credentials"]  # one token served the IMAP login and the SMTP login
    assert dovecot_logins(servers.oauth, address) == ["XOAUTH2", "XOAUTH2"]  # deliver, then mailbot


def deliver(servers, address: str, oauth2: OAuth2Settings) -> None:
    """A company's application APPENDed (with its own token: the server takes no password)."""
    values = sample_values(contact_email="tanaka@sample-seiki.example.jp")
    raw = samples.application_mail(render_application(values, seal="red"),
                                   sender="tanaka@sample-seiki.example.jp")
    code, answer = servers.tokens.answer_token({"client_id": oauth2.client_id, "client_secret": SECRET,
                                                "grant_type": "client_credentials"})
    assert code == 200
    with IMAPClient("127.0.0.1", port=servers.oauth.port, ssl=False, timeout=10) as client:
        client.oauth2_login(address, answer["access_token"])
        client.append("INBOX", raw)


def cycle_settings(servers, address, oauth2, smtp_port, tmp_path) -> config.Settings:
    today = date.today()
    data = {
        "imap": {"host": "127.0.0.1", "port": servers.oauth.port, "username": address,
                 "security": "none", "auth": "oauth2", "timeout_seconds": 10},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "username": address, "security": "none",
                 "from_address": address, "auth": "oauth2", "timeout_seconds": 10},
        "oauth2": oauth2.model_dump(),
        "database": {"url": f"sqlite:///{tmp_path / 'mailbot.db'}"},
        "program": {"opens": today - timedelta(days=30), "closes": today + timedelta(days=60)},
        "service": {"rules_dir": str(PROJECT_ROOT / "rules"),
                    "templates_dir": str(PROJECT_ROOT / "templates")},
    }
    return config.validate(data, base_dir=tmp_path, origin="test")


# --- TLS with certificate verification ----------------------------------------------------


def tls_settings(servers, security: str, **overrides):
    port = servers.tls.tls_port if security == "tls" else servers.tls.port
    return servers.tls.settings(mailbox_address(), port=port, security=security, **overrides)


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_password_over_tls_with_the_ca_in_the_trust_store(servers, security, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(servers.ca.ca_file))  # as if installed system-wide
    settings = tls_settings(servers, security)
    with Mailbox(settings) as box:
        box.select()
    assert dovecot_logins(servers.tls, settings.username) == ["PLAIN"]


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_an_untrusted_certificate_is_a_clear_imap_error(servers, security, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())  # public CAs only
    monkeypatch.setenv("SSL_CERT_DIR", "/nonexistent")
    settings = tls_settings(servers, security)
    with pytest.raises(ImapError, match=r"connect failed: .*CERTIFICATE_VERIFY_FAILED"):
        log_in(settings)
    assert dovecot_logins(servers.tls, settings.username) == []  # the password never left


def test_tls_context_trusts_exactly_the_configured_ca(servers, tmp_path):
    settings = tls_settings(servers, "tls", ca_file=str(servers.ca.ca_file))
    with IMAPClient("127.0.0.1", port=settings.port, ssl=True, ssl_context=tls_context(settings),
                    timeout=10) as client:
        client.login(settings.username, settings.password)
    stranger = TestCA(tmp_path / "other")
    other = settings.model_copy(update={"ca_file": str(stranger.ca_file)})
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient("127.0.0.1", port=settings.port, ssl=True, ssl_context=tls_context(other), timeout=10)


def test_an_unloadable_ca_file_is_named(servers, tmp_path):
    (tmp_path / "ca.pem").write_text("not a certificate")
    settings = tls_settings(servers, "tls", ca_file=str(tmp_path / "ca.pem"))
    with pytest.raises(ImapError, match=r"ca_file .*ca\.pem.* cannot be loaded"):
        tls_context(settings)


def test_the_mailbox_uses_the_configured_ca_file(servers, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    monkeypatch.setenv("SSL_CERT_DIR", "/nonexistent")
    with Mailbox(tls_settings(servers, "tls", ca_file=str(servers.ca.ca_file))) as box:
        box.select()


def test_ca_file_is_relative_to_the_config_file(tmp_path):
    data = {"imap": {"host": "imap.example.jp", "username": "u", "ca_file": "certs/ca.pem"},
            "smtp": {"host": "smtp.example.jp", "from_address": "a@example.jp", "ca_file": "/etc/ca.pem"},
            "program": {"opens": "2026-05-27", "closes": "2027-01-31"}}
    settings = config.validate(data, base_dir=tmp_path)
    assert Path(settings.imap.ca_file) == tmp_path / "certs" / "ca.pem"
    assert settings.smtp.ca_file == "/etc/ca.pem"
