"""Test servers for real-mailbox authentication: TLS Dovecot, OAuth2 Dovecot, a token endpoint.

- :class:`TestCA`: a private CA (trustme) and a certificate for 127.0.0.1/localhost.
- :class:`TokenServer`: a small OAuth2 provider on 127.0.0.1. Over HTTPS (the
  test CA) it serves OIDC discovery (what msal reads first) and a token
  endpoint for the client-credentials and refresh-token grants, rotating the
  refresh token on every use; over plain HTTP it answers Dovecot's token
  introspection (RFC 7662, ``introspection_mode = post``).
- :class:`SecureDovecot`: tests/dovecot.py's Dovecot 2.3 with TLS (imaps port
  and STARTTLS) and/or an ``oauth2`` passdb asking the token server.
- :class:`XOAuth2Smtp`: aiosmtpd taking only AUTH XOAUTH2, tokens checked there too.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import parse_qs

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests import dovecot as base_dovecot

TENANT = "jetro-test-tenant"


class TestCA:
    """A throwaway CA and one server certificate for 127.0.0.1 and localhost, as PEM files."""

    __test__ = False  # not a pytest test class despite its name

    def __init__(self, folder: Path):
        self.ca = trustme.CA(organization_name="mailbot test CA")
        self.cert = self.ca.issue_cert("127.0.0.1", "localhost")
        folder.mkdir(parents=True, exist_ok=True)
        self.ca_file = folder / "ca.pem"
        self.cert_file = folder / "server-chain.pem"
        self.key_file = folder / "server-key.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.cert.private_key_pem.write_to_path(str(self.key_file))
        chain = b"".join(blob.bytes() for blob in self.cert.cert_chain_pems)
        self.cert_file.write_bytes(chain)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.cert.configure_cert(context)
        return context


# --- the OAuth2 provider -----------------------------------------------------------


@dataclass
class Client:
    """One registered app: its secret, the mailbox its tokens open, its current refresh token."""

    secret: str
    username: str
    refresh_token: str = ""
    used_refresh_tokens: list[str] = field(default_factory=list)


@dataclass
class Grant:
    username: str
    expires_at: float


class TokenServer:
    """See the module docstring; ``register`` a client per test, read what happened after."""

    def __init__(self, ca: TestCA, lifetime: int = 3600):
        self.ca = ca
        self.lifetime = lifetime
        self.clients: dict[str, Client] = {}
        self.grants: dict[str, Grant] = {}
        self.requests: list[dict] = []  # every token request's form (to assert what was sent)
        self.introspections = 0
        self._serving = False
        self.lock = threading.Lock()
        # Bound now, served from start(): a Dovecot can be configured with the URL and
        # forked before any serving thread exists (fork + preexec_fn and threads do not mix).
        https = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        https.socket = ca.server_context().wrap_socket(https.socket, server_side=True)
        plain = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._servers = [https, plain]

    # state -------------------------------------------------------------------------

    def register(self, client_id: str, username: str, *, secret: str = "",
                 refresh_token: str = "") -> Client:
        client = Client(secret or secrets.token_urlsafe(12), username, refresh_token)
        with self.lock:
            self.clients[client_id] = client
        return client

    def expire_tokens(self) -> None:
        """Every access token issued so far stops working (as after its hour)."""
        with self.lock:
            for grant in self.grants.values():
                grant.expires_at = 0

    def issue(self, client: Client, grant_type: str) -> dict:
        token = secrets.token_urlsafe(24)
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime}
        self.grants[token] = Grant(client.username, time.time() + self.lifetime)
        if grant_type == "refresh_token":  # rotation: the old refresh token dies now
            client.used_refresh_tokens.append(client.refresh_token)
            client.refresh_token = answer["refresh_token"] = secrets.token_urlsafe(24)
        return answer

    def answer_token(self, form: dict[str, str]) -> tuple[int, dict]:
        with self.lock:
            self.requests.append(form)
            client = self.clients.get(form.get("client_id", ""))
            if client is None or form.get("client_secret", "") != client.secret:
                return 401, {"error": "invalid_client", "error_description": "unknown client"}
            grant_type = form.get("grant_type")
            if grant_type == "refresh_token" and form.get("refresh_token") != client.refresh_token:
                return 400, {"error": "invalid_grant", "error_description": "refresh token is not valid"}
            if grant_type not in ("client_credentials", "refresh_token"):
                return 400, {"error": "unsupported_grant_type"}
            return 200, self.issue(client, grant_type)

    def answer_introspection(self, form: dict[str, str]) -> dict:
        with self.lock:
            self.introspections += 1
            grant = self.grants.get(form.get("token", ""))
            if grant is None or grant.expires_at <= time.time():
                return {"active": False}
            return {"active": True, "username": grant.username}

    # serving -----------------------------------------------------------------------

    def start(self) -> TokenServer:
        for server in self._servers:
            server.daemon_threads = True
            # A short poll interval: shutdown() waits for it (0.5 s by default, per server).
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                             daemon=True).start()
        self._serving = True
        return self

    def stop(self) -> None:
        for server in self._servers:
            if self._serving:
                server.shutdown()
            server.server_close()
        self._serving = False

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self._servers[0].server_port}"

    @property
    def authority(self) -> str:
        """An Entra-style authority URL for msal (discovery under /v2.0)."""
        return f"{self.base_url}/{TENANT}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def introspection_url(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_port}/introspect"


def _handler(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self.path.endswith("/.well-known/openid-configuration"):
                return self._json(404, {"error": "not_found"})
            issuer = server.base_url + self.path.removesuffix("/.well-known/openid-configuration")
            self._json(200, {"issuer": issuer, "token_endpoint": server.token_url,
                             "authorization_endpoint": f"{server.base_url}/authorize"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            pairs = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
            form = {key: values[0] for key, values in pairs.items()}
            if self.path == "/token":
                self._json(*server.answer_token(form))
            elif self.path == "/introspect":
                self._json(200, server.answer_introspection(form))
            else:
                self._json(404, {"error": "not_found"})

        def _json(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass  # quiet: pytest shows failures, not every request

    return Handler


# --- Dovecot with TLS and/or OAuth2 ----------------------------------------------------

_STATIC_PASSDB = f"""passdb {{
  driver = static
  args = password={base_dovecot.PASSWORD}
}}"""


class SecureDovecot(base_dovecot.Dovecot):
    """Dovecot 2.3 with TLS (``ca`` given) and/or XOAUTH2 via introspection (``introspection_url``)."""

    def __init__(self, ca: TestCA | None = None, introspection_url: str | None = None):
        super().__init__()
        self.ca = ca
        self.introspection_url = introspection_url
        self.tls_port = 0

    def start(self, timeout: float = 10.0) -> SecureDovecot:
        """As Dovecot.start, with this class's configuration (tests/dovecot.py writes its own)."""
        self.port, self.tls_port = base_dovecot.free_port(), base_dovecot.free_port()
        for sub in ("run", "state", "mail"):
            (self.base / sub).mkdir(exist_ok=True)
        self.base.chmod(0o755)
        os.chown(self.base / "mail", self.account.uid, self.account.gid)
        conf = self.base / "dovecot.conf"
        conf.write_text(self.config_text())
        with open(self.base / "stderr.log", "wb") as stderr:
            self.process = subprocess.Popen(
                [self.binary, "-F", "-c", str(conf)], start_new_session=True,
                # Start Dovecot before serving threads run (see TokenServer.__init__).
                preexec_fn=base_dovecot._die_with_parent,  # noqa: PLW1509
                stdout=subprocess.DEVNULL, stderr=stderr)
        self._wait_ready(timeout)
        return self

    def config_text(self) -> str:
        text = base_dovecot.config_text(self.base, self.port, self.account)
        if self.ca is not None:
            text = text.replace("ssl = no\n", f"ssl = yes\nssl_cert = <{self.ca.cert_file}\n"
                                              f"ssl_key = <{self.ca.key_file}\n")
            text = text.replace("inet_listener imaps {\n    port = 0",
                                f"inet_listener imaps {{\n    port = {self.tls_port}")
        if self.introspection_url is not None:
            text = text.replace("auth_mechanisms = plain login",
                                "auth_mechanisms = plain login xoauth2 oauthbearer")
            text = text.replace(_STATIC_PASSDB, self._oauth2_passdb())
        return text

    def _oauth2_passdb(self) -> str:
        ext = self.base / "dovecot-oauth2.conf.ext"
        ext.write_text(f"""\
introspection_mode = post
introspection_url = {self.introspection_url}
username_attribute = username
active_attribute = active
active_value = true
force_introspection = yes
""")
        return f"""passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {ext}
}}"""


# --- an SMTP server that takes XOAUTH2 ----------------------------------------------------


class XOAuth2Smtp:
    """aiosmtpd on 127.0.0.1 requiring AUTH XOAUTH2, the token checked at the TokenServer
    (as Dovecot does); accepted mails in ``messages`` as (auth user, envelope rcpt, bytes)."""

    def __init__(self, tokens: TokenServer):
        self.tokens = tokens
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.refused = 0
        self.controller = Controller(
            self, hostname="127.0.0.1", port=base_dovecot.free_port(),
            auth_required=True, auth_require_tls=False, auth_exclude_mechanism=["LOGIN", "PLAIN"])

    def __enter__(self) -> Self:
        self.controller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.controller.stop()

    @property
    def port(self) -> int:
        return self.controller.port

    async def auth_XOAUTH2(self, server, args: list[str]) -> AuthResult:
        fields = dict(part.split("=", 1) for part in
                      base64.b64decode(args[1]).decode().split("\x01") if "=" in part)
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        verdict = self.tokens.answer_introspection({"token": token})
        if verdict.get("active") and verdict.get("username") == user:
            return AuthResult(success=True, auth_data=user)
        self.refused += 1
        # As Gmail does: a JSON error as a challenge; the client answers with an empty line.
        await server.challenge_auth(json.dumps({"status": "401", "schemes": "bearer"}))
        return AuthResult(success=False, handled=False)  # aiosmtpd then answers 535

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append((session.auth_data, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"
