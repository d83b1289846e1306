"""OAuth2 token providers, the [oauth2] settings, and XOAUTH2 on SMTP.

Against a real local OAuth2 provider over HTTPS (tests/dovecot_oauth.py
TokenServer, a private CA from trustme): msal's client-credentials flow,
Authlib's refresh-token grant with rotation, the token file, the cache, and
mailbot's outbox sending through an aiosmtpd that only takes AUTH XOAUTH2.
The IMAP side, against Dovecot's oauth2 passdb, is in tests/e2e/test_oauth_imap.py.
"""

from __future__ import annotations

import stat
from pathlib import Path

import certifi
import pytest

from mailbot import oauth
from mailbot.config import OAuth2Settings, SmtpSettings, load
from mailbot.db import make_engine, transaction
from mailbot.errors import ConfigError, TransportError
from mailbot.outbox import enqueue, send_pending
from tests.dovecot_oauth import TestCA, TokenServer, XOAuth2Smtp

MAILBOX = "chizai@example.jp"
SECRET = "app-secret-4f1c"


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def tokens(ca):
    server = TokenServer(ca).start()
    yield server
    server.stop()


def app_settings(tokens: TokenServer, ca: TestCA, client_id: str, **overrides) -> OAuth2Settings:
    """Microsoft 365 style: client credentials against the local authority."""
    tokens.register(client_id, MAILBOX, secret=SECRET)
    values = {"client_id": client_id, "client_secret": SECRET, "authority": tokens.authority,
              "ca_file": str(ca.ca_file), "timeout_seconds": 10}
    return OAuth2Settings(**{**values, **overrides})


def grant_settings(tokens: TokenServer, ca: TestCA, tmp_path: Path, client_id: str,
                   **overrides) -> OAuth2Settings:
    """Gmail style: a refresh token a person granted (here "rt-0"), rotated by the provider."""
    tokens.register(client_id, MAILBOX, secret=SECRET, refresh_token="rt-0")
    values = {"flow": "refresh_token", "client_id": client_id, "client_secret": SECRET,
              "token_url": tokens.token_url, "refresh_token": "rt-0",
              "scope": "https://mail.google.com/", "token_file": str(tmp_path / "oauth2-token.json"),
              "ca_file": str(ca.ca_file), "timeout_seconds": 10}
    return OAuth2Settings(**{**values, **overrides})


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


# --- client credentials (msal) -------------------------------------------------------


def test_client_credentials_through_msal_and_cached(tokens, ca):
    provider = oauth.ClientCredentials(app_settings(tokens, ca, "m365-app"))
    token = provider.access_token()
    assert tokens.answer_introspection({"token": token}) == {"active": True, "username": MAILBOX}
    [sent] = tokens.requests
    assert sent["grant_type"] == "client_credentials"
    assert sent["scope"] == "https://outlook.office365.com/.default"
    assert (sent["client_id"], sent["client_secret"]) == ("m365-app", SECRET)
    assert provider.access_token() == token and len(tokens.requests) == 1  # from memory


def test_a_token_is_renewed_five_minutes_before_it_expires(tokens, ca):
    clock = Clock()
    provider = oauth.ClientCredentials(app_settings(tokens, ca, "m365-clock"), clock=clock)
    first = provider.access_token()
    clock.now += tokens.lifetime - oauth.REFRESH_MARGIN_SECONDS - 1
    assert provider.access_token() == first
    clock.now += 2
    assert provider.access_token() != first
    assert provider.fetches == 2 and len(tokens.requests) == 2


def test_a_wrong_client_secret_is_a_clear_error(tokens, ca):
    settings = app_settings(tokens, ca, "m365-bad", client_secret="not-it")
    with pytest.raises(TransportError, match=r"invalid_client") as caught:
        oauth.ClientCredentials(settings).access_token()
    assert "not-it" not in str(caught.value) and tokens.authority in str(caught.value)


def test_an_untrusted_token_endpoint_certificate_is_refused(tokens, ca):
    provider = oauth.ClientCredentials(app_settings(tokens, ca, "m365-noca", ca_file=""))
    with pytest.raises(TransportError, match=r"CERTIFICATE_VERIFY_FAILED"):
        provider.access_token()
    assert tokens.requests == []  # nothing was sent to an endpoint we could not verify


def test_ca_file_wins_over_requests_ca_bundle(tokens, ca, monkeypatch):
    # requests lets REQUESTS_CA_BUNDLE replace a session's verify; the configured CA must win.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())
    assert oauth.ClientCredentials(app_settings(tokens, ca, "m365-env")).access_token()


# --- refresh token (Authlib), rotation and the token file ------------------------------------


def test_a_rotated_refresh_token_is_saved_with_mode_0600(tokens, ca, tmp_path):
    settings = grant_settings(tokens, ca, tmp_path, "gmail-app")
    provider = oauth.RefreshTokenGrant(settings)
    token = provider.access_token()
    assert tokens.answer_introspection({"token": token})["active"] is True
    client = tokens.clients["gmail-app"]
    assert client.used_refresh_tokens == ["rt-0"] and client.refresh_token != "rt-0"
    saved = Path(settings.token_file)
    assert oauth.read_refresh_token(saved) == client.refresh_token
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no temp file left behind
    form = tokens.requests[-1]
    assert (form["grant_type"], form["refresh_token"], form["client_secret"]) == \
        ("refresh_token", "rt-0", SECRET)


def test_every_rotation_is_saved_and_the_file_wins_over_the_environment(tokens, ca, tmp_path):
    settings = grant_settings(tokens, ca, tmp_path, "gmail-restart")
    oauth.RefreshTokenGrant(settings).access_token()
    # A restart: the environment still says rt-0, which the provider has invalidated.
    restarted = oauth.RefreshTokenGrant(settings)
    restarted.access_token()
    client = tokens.clients["gmail-restart"]
    assert len(client.used_refresh_tokens) == 2 and "rt-0" == client.used_refresh_tokens[0]
    assert oauth.read_refresh_token(Path(settings.token_file)) == client.refresh_token


def test_a_refused_refresh_token_is_a_clear_error(tokens, ca, tmp_path):
    settings = grant_settings(tokens, ca, tmp_path, "gmail-revoked")
    tokens.clients["gmail-revoked"].refresh_token = "revoked-by-the-user"
    with pytest.raises(TransportError, match=r"token from https://127\.0\.0\.1:\d+/token: invalid_grant"):
        oauth.RefreshTokenGrant(settings).access_token()
    assert not Path(settings.token_file).exists()


def test_no_refresh_token_anywhere_is_a_config_error(tokens, ca, tmp_path):
    settings = grant_settings(tokens, ca, tmp_path, "gmail-none", refresh_token="")
    with pytest.raises(ConfigError, match=r"MAILBOT_OAUTH2__REFRESH_TOKEN"):
        oauth.RefreshTokenGrant(settings)


def test_a_broken_token_file_is_named_without_its_content(tmp_path):
    path = tmp_path / "oauth2-token.json"
    path.write_text('{"refresh_token": "abc-secret"')  # cut short
    with pytest.raises(ConfigError, match=r"token_file .*oauth2-token.json: unreadable") as caught:
        oauth.read_refresh_token(path)
    assert "abc-secret" not in str(caught.value)


def test_saving_replaces_the_previous_token(tmp_path):
    path = tmp_path / "sub" / "oauth2-token.json"
    oauth.save_refresh_token(path, "first")
    oauth.save_refresh_token(path, "second")
    assert oauth.read_refresh_token(path) == "second"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(list(path.parent.iterdir())) == 1


def test_secrets_stay_out_of_reprs(tokens, ca, tmp_path):
    settings = grant_settings(tokens, ca, tmp_path, "gmail-repr")
    provider = oauth.RefreshTokenGrant(settings)
    token = provider.access_token()
    shown = repr(settings) + repr(provider) + repr(provider._token)
    assert SECRET not in shown and "rt-0" not in shown and token not in shown


def test_one_provider_per_configuration(tokens, ca):
    settings = app_settings(tokens, ca, "m365-shared")
    assert oauth.provider_for(settings) is oauth.provider_for(settings.model_copy())
    assert isinstance(oauth.provider_for(settings), oauth.ClientCredentials)


# --- the settings ------------------------------------------------------------------


CONFIG = """
[imap]
host = "outlook.office365.com"
username = "chizai@example.jp"
auth = "oauth2"
[smtp]
host = "smtp.office365.com"
username = "chizai@example.jp"
from_address = "chizai@example.jp"
auth = "oauth2"
[program]
opens = 2026-05-27
closes = 2027-01-31
[oauth2]
client_id = "11111111-2222-3333-4444-555555555555"
tenant = "contoso.onmicrosoft.com"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_oauth2_settings_reach_imap_and_smtp_with_the_secret_from_the_environment(tmp_path):
    settings = load(write(tmp_path, CONFIG), environ={"MAILBOT_OAUTH2__CLIENT_SECRET": "s3"})
    assert settings.imap.oauth2 == settings.smtp.oauth2 == settings.oauth2
    assert settings.oauth2.client_secret.get_secret_value() == "s3"
    assert settings.oauth2.authority_url == "https://login.microsoftonline.com/contoso.onmicrosoft.com"
    assert settings.oauth2.token_file == str(tmp_path / "data" / "oauth2-token.json")


def test_a_secret_in_the_config_file_is_refused(tmp_path):
    text = CONFIG + 'client_secret = "s3"\n'
    with pytest.raises(ConfigError, match=r"\[oauth2\] client_secret is a secret.*MAILBOT_OAUTH2__CLIENT_SECRET"):
        load(write(tmp_path, text), environ={})


def test_missing_oauth2_keys_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"\[imap\] auth: .*client_secret \(MAILBOT_OAUTH2__CLIENT_SECRET\)"):
        load(write(tmp_path, CONFIG), environ={})
    refresh = CONFIG.replace('tenant = "contoso.onmicrosoft.com"', 'flow = "refresh_token"')
    assert load(write(tmp_path, refresh), environ={}).oauth2.flow == "refresh_token"


def test_clear_text_login_is_refused_off_the_machine(tmp_path):
    text = CONFIG.replace('auth = "oauth2"', 'security = "none"', 1)
    with pytest.raises(ConfigError, match=r'\[imap\] security: .*clear text.*outlook.office365.com'):
        load(write(tmp_path, text), environ={"MAILBOT_OAUTH2__CLIENT_SECRET": "s3"})
    loopback = text.replace("outlook.office365.com", "127.0.0.1")
    assert load(write(tmp_path, loopback), environ={"MAILBOT_OAUTH2__CLIENT_SECRET": "s3"})


# --- SMTP with XOAUTH2 ---------------------------------------------------------------


def smtp_settings(port: int, oauth2: OAuth2Settings) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, security="none", username=MAILBOX,
                        from_address=MAILBOX, auth="oauth2", oauth2=oauth2, timeout_seconds=5)


def queue_reply(engine) -> None:
    with transaction(engine) as session:
        enqueue(session, kind="receipt", to=["tanaka@sample-seiki.example.jp"],
                subject="申請書受付のお知らせ", body="受け付けました。", from_address=MAILBOX)


def test_the_outbox_sends_with_xoauth2_and_renews_a_refused_token(tokens, ca, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'mailbot.db'}")
    oauth2 = app_settings(tokens, ca, "m365-smtp")
    with XOAuth2Smtp(tokens) as server:
        settings = smtp_settings(server.port, oauth2)
        queue_reply(engine)
        assert send_pending(engine, settings).sent == 1
        [(user, rcpt, _)] = server.messages
        assert (user, rcpt) == (MAILBOX, ["tanaka@sample-seiki.example.jp"])
        tokens.expire_tokens()  # revoked early: the cached token is refused
        queue_reply(engine)
        refused = send_pending(engine, settings)
        assert (refused.sent, refused.retried) == (0, 1) and "535" in refused.errors[0]
        queue_reply(engine)
        assert send_pending(engine, settings).sent == 1  # a new token was asked for
    assert server.refused == 1 and len(server.messages) == 2
    assert [form["grant_type"] for form in tokens.requests] == ["client_credentials"] * 2


def test_token_endpoint_trouble_leaves_the_mail_for_a_retry(tokens, ca, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'mailbot.db'}")
    oauth2 = app_settings(tokens, ca, "m365-smtp-down", client_secret="wrong")
    with XOAuth2Smtp(tokens) as server:
        queue_reply(engine)
        result = send_pending(engine, smtp_settings(server.port, oauth2))
    assert (result.sent, result.retried, result.failed) == (0, 1, 0)
    assert "invalid_client" in result.errors[0] and server.messages == []


def test_no_environment_leaks_into_the_repr_of_settings(tmp_path):
    settings = load(write(tmp_path, CONFIG), environ={"MAILBOT_OAUTH2__CLIENT_SECRET": "s3cr3t"})
    assert "s3cr3t" not in repr(settings) and "s3cr3t" not in str(settings.model_dump())
