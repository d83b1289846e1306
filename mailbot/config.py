"""Settings: config.toml, then MAILBOT_<SECTION>__<KEY> environment overrides, validated.

Secrets (passwords, the OAuth2 client secret and refresh token) are given in
production as environment variables, e.g. ``MAILBOT_IMAP__PASSWORD``; the
OAuth2 ones are refused in the file. Every error names the key and where it
came from:

    config.toml: [imap] port: Input should be a valid integer (got 'abc')
    environment MAILBOT_SMTP__PORTT: unknown key [smtp] portt
"""

from __future__ import annotations

import ipaddress
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from mailbot import tomlfile
from mailbot.errors import ConfigError

ENV_PREFIX = "MAILBOT_"


#: The [oauth2] keys that hold secrets: only the environment or the token file may give them.
OAUTH2_SECRETS = ("client_secret", "refresh_token")
MICROSOFT_AUTHORITY = "https://login.microsoftonline.com/"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OAuth2Settings(_Section):
    """How mailbot gets an OAuth2 access token for the mailbox (XOAUTH2 on IMAP and SMTP).

    ``client_credentials``: Microsoft 365, the app's own permission (msal).
    ``refresh_token``: Gmail and other providers, a token a person granted once.
    """

    flow: Literal["client_credentials", "refresh_token"] = "client_credentials"
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    tenant: str = ""
    authority: str = ""
    scope: str = "https://outlook.office365.com/.default"
    token_url: str = "https://oauth2.googleapis.com/token"
    refresh_token: SecretStr = SecretStr("")
    token_file: str = "data/oauth2-token.json"
    ca_file: str = ""
    timeout_seconds: float = Field(30.0, gt=0)

    @property
    def authority_url(self) -> str:
        """The msal authority: ``authority`` if set, else Microsoft's for ``tenant``."""
        return self.authority or MICROSOFT_AUTHORITY + self.tenant

    def missing(self) -> list[str]:
        """The keys this flow needs that are empty (secrets may still come from the token file)."""
        needed = {"client_id": self.client_id, "scope": self.scope}
        if self.flow == "client_credentials":
            needed |= {"tenant or authority": self.tenant or self.authority,
                       "client_secret (MAILBOT_OAUTH2__CLIENT_SECRET)":
                           self.client_secret.get_secret_value()}
        else:
            needed |= {"token_url": self.token_url, "token_file": self.token_file}
        return [key for key, value in needed.items() if not value]


def _check_oauth2(auth: str, oauth2: OAuth2Settings | None) -> str:
    """auth = "oauth2" needs an [oauth2] section with the keys of its flow."""
    if auth != "oauth2":
        return auth
    missing = ["the [oauth2] section"] if oauth2 is None else oauth2.missing()
    if missing:
        raise ValueError(f'auth = "oauth2" needs [oauth2] {", ".join(missing)}')
    return auth


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost: assume it leaves the machine


class ImapSettings(_Section):
    host: str
    port: int = Field(993, ge=1, le=65535)
    username: str
    password: str = ""
    #: Filled from the [oauth2] section by Settings when auth = "oauth2".
    oauth2: OAuth2Settings | None = None
    auth: Literal["password", "oauth2"] = "password"
    security: Literal["tls", "starttls", "none"] = "tls"
    ca_file: str = ""
    folder: str = "INBOX"
    processed_folder: str = "mailbot/processed"
    quarantine_folder: str = "mailbot/quarantine"
    timeout_seconds: float = Field(30.0, gt=0)
    idle: bool = True
    idle_renew_minutes: float = Field(25, gt=0, le=29)
    reconnect_max_seconds: float = Field(300, gt=0)

    @field_validator("auth")
    @classmethod
    def _oauth2_complete(cls, auth: str, info) -> str:
        return _check_oauth2(auth, info.data.get("oauth2"))

    @field_validator("security")
    @classmethod
    def _no_clear_text_off_the_machine(cls, security: str, info) -> str:
        # IMAP always logs in: without TLS the password or token crosses the network readable.
        host = info.data.get("host", "")
        if security == "none" and not _is_loopback(host):
            raise ValueError(f'security = "none" sends the login in clear text; only allowed for '
                             f'127.0.0.1/localhost, not {host!r} (use "tls" or "starttls")')
        return security


class SmtpSettings(_Section):
    host: str
    port: int = Field(587, ge=1, le=65535)
    username: str = ""
    password: str = ""
    #: Filled from the [oauth2] section by Settings when auth = "oauth2".
    oauth2: OAuth2Settings | None = None
    auth: Literal["password", "oauth2"] = "password"
    security: Literal["tls", "starttls", "none"] = "starttls"
    ca_file: str = ""
    from_address: str
    from_name: str = ""
    timeout_seconds: float = Field(30.0, gt=0)
    max_attempts: int = Field(8, ge=1)

    @field_validator("auth")
    @classmethod
    def _oauth2_complete(cls, auth: str, info) -> str:
        return _check_oauth2(auth, info.data.get("oauth2"))

    @field_validator("security")
    @classmethod
    def _no_clear_text_login_off_the_machine(cls, security: str, info) -> str:
        # A relay without login may be plain (port 25 inside the office); a login may not.
        host, username = info.data.get("host", ""), info.data.get("username", "")
        if security == "none" and username and not _is_loopback(host):
            raise ValueError(f'security = "none" with a username sends the login in clear text; '
                             f'only allowed for 127.0.0.1/localhost, not {host!r}')
        return security


class DatabaseSettings(_Section):
    url: str = "sqlite:///data/mailbot.db"


class ProgramSettings(_Section):
    name: str = "海外における営業秘密漏えい対策支援事業"
    opens: date
    closes: date
    cap: int = Field(18, ge=1)
    reception_prefix: str = "TS"
    signature: str = ""
    #: The last day of expert service (consultation, training, follow-up); None = closes.
    support_ends: date | None = None

    @field_validator("closes")
    @classmethod
    def _closes_after_opens(cls, closes: date, info) -> date:
        opens = info.data.get("opens")
        if opens and closes < opens:
            raise ValueError(f"closes ({closes}) is before opens ({opens})")
        return closes


class WorkflowSettings(_Section):
    auto_adopt: bool = False
    held_info_list: str = ""
    self_check_sheet: str = ""
    documents_reminder_days: int = Field(7, ge=1)
    hours_notice_percent: int = Field(80, ge=1, le=100)
    language: Literal["ja", "en"] = "ja"
    meeting_minutes: int = Field(60, ge=15)


class StaffSettings(_Section):
    digest_to: list[str] = Field(default_factory=list)
    #: When the digest goes out: five-field cron syntax, in digest_timezone.
    digest_schedule: str = "0 9 * * mon-fri"
    digest_timezone: str = "Asia/Tokyo"
    #: Send a short "nothing new" digest when a period had nothing in it.
    digest_when_empty: bool = True

    @field_validator("digest_schedule")
    @classmethod
    def _cron(cls, schedule: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(schedule, timezone="Asia/Tokyo")
        except ValueError as exc:
            raise ValueError(f"not a five-field cron expression ({exc}): {schedule!r}") from None
        return schedule

    @field_validator("digest_timezone")
    @classmethod
    def _zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"unknown time zone {zone!r}") from exc
        return zone

    @field_validator("digest_to", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        # An environment variable can only hold a string: "a@x.jp, b@x.jp".
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class ServiceSettings(_Section):
    poll_seconds: int = Field(60, ge=1)
    rules_dir: str = "rules"
    templates_dir: str = "templates"
    max_attachment_mb: float = Field(20, gt=0)
    pdf_timeout_seconds: float = Field(30, gt=0)
    pdf_memory_mb: int = Field(1536, ge=256)
    pdf_max_pages: int = Field(50, ge=1)
    #: PDF reader processes working at once (each under the limits above); 1 = one at a time.
    pdf_workers: int = Field(2, ge=1, le=16)
    answer_from: datetime | None = None
    max_replies_per_recipient: int = Field(10, ge=1)
    reply_window_minutes: int = Field(180, ge=1)
    health_alert_minutes: int = Field(30, ge=1)
    #: The log lines: "text" (for a terminal), "keyvalue" or "json" (for journald/search).
    log_format: Literal["text", "keyvalue", "json"] = "text"
    #: Port of the Prometheus endpoint on 127.0.0.1; 0 = no endpoint.
    metrics_port: int = Field(0, ge=0, le=65535)

    @field_validator("answer_from")
    @classmethod
    def _tokyo_when_naive(cls, moment: datetime | None) -> datetime | None:
        # The office thinks in Tokyo time; a cut-off written without an offset means that.
        if moment is not None and moment.tzinfo is None:
            return moment.replace(tzinfo=ZoneInfo("Asia/Tokyo"))
        return moment


class Settings(_Section):
    imap: ImapSettings
    smtp: SmtpSettings
    database: DatabaseSettings = DatabaseSettings()
    program: ProgramSettings
    staff: StaffSettings = StaffSettings()
    workflow: WorkflowSettings = WorkflowSettings()
    service: ServiceSettings = ServiceSettings()
    oauth2: OAuth2Settings = OAuth2Settings()
    #: The folder config.toml was read from: relative paths in it start here.
    base_dir: Path = Path(".")

    @model_validator(mode="before")
    @classmethod
    def _share_oauth2(cls, data: Any) -> Any:
        """[oauth2] serves IMAP and SMTP alike: hand it to each section with auth = "oauth2",
        with its file paths (and the CA files) anchored at the config file's folder."""
        if not isinstance(data, dict):
            return data
        base = Path(data.get("base_dir", "."))
        data = dict(data)
        if isinstance(data.get("oauth2"), dict):
            # The default token file is relative too: give it explicitly so it gets anchored.
            oauth2 = {"token_file": OAuth2Settings.model_fields["token_file"].default,
                      **data["oauth2"]}
            data["oauth2"] = _anchored(oauth2, base, "token_file", "ca_file")
        for name in ("imap", "smtp"):
            if isinstance(data.get(name), dict):
                section = _anchored(data[name], base, "ca_file")
                if section.get("auth") == "oauth2" and "oauth2" in data:
                    section["oauth2"] = data["oauth2"]
                data[name] = section
        return data

    def path(self, relative: str) -> Path:
        """A path from the config, resolved against the config file's folder."""
        candidate = Path(relative)
        return candidate if candidate.is_absolute() else self.base_dir / candidate

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path anchored at the config's folder."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.path(url.removeprefix(prefix)).resolve())
        return url


def _anchored(section: dict[str, Any], base: Path, *keys: str) -> dict[str, Any]:
    """A copy of ``section`` with the relative paths under ``keys`` made relative to ``base``."""
    section = dict(section)
    for key in keys:
        value = section.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            section[key] = str(base / value)
    return section


def load(path: str | Path, environ: dict[str, str] | None = None) -> Settings:
    """Read, override from the environment, validate; raise ConfigError naming the key."""
    path = Path(path)
    data = tomlfile.read(path, ConfigError, what="config file", hint=" (use --config PATH)")
    _refuse_secrets_in_file(data, path.name)
    _apply_env(data, os.environ if environ is None else environ)
    return validate(data, base_dir=path.resolve().parent, origin=path.name)


def validate(data: dict[str, Any], *, base_dir: Path, origin: str = "config") -> Settings:
    """Validate a settings dict (already merged with the environment)."""
    try:
        return Settings.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None


def _refuse_secrets_in_file(data: dict[str, Any], origin: str) -> None:
    """OAuth2 secrets open the mailbox for months: never in a file that is copied around."""
    oauth2 = data.get("oauth2")
    for key in OAUTH2_SECRETS if isinstance(oauth2, dict) else ():
        if oauth2.get(key):
            raise ConfigError(f"{origin}: [oauth2] {key} is a secret: remove it from the file and set "
                              f"MAILBOT_OAUTH2__{key.upper()} in the environment")


def _apply_env(data: dict[str, Any], environ: dict[str, str]) -> None:
    """MAILBOT_IMAP__PASSWORD=x sets [imap] password; unknown sections/keys are errors."""
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name.removeprefix(ENV_PREFIX).lower().partition("__")
        model = Settings.model_fields.get(section)
        if model is None or section == "base_dir":
            raise ConfigError(f"environment {name}: unknown section [{section}]")
        if key not in model.annotation.model_fields:
            raise ConfigError(f"environment {name}: unknown key [{section}] {key}")
        data.setdefault(section, {})[key] = value


def _describe(exc: ValidationError, origin: str) -> str:
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        where = f"[{loc[0]}] {'.'.join(loc[1:])}" if len(loc) > 1 else f"[{loc[0]}]"
        kind = error["type"]
        if kind == "extra_forbidden":
            lines.append(f"{origin}: unknown key {where}")
        elif kind == "missing":
            lines.append(f"{origin}: missing required value {where}")
        else:
            lines.append(f"{origin}: {where}: {error['msg']} (got {error.get('input')!r})")
    return "\n".join(lines)
