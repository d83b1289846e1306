"""Settings: config.toml, then MAILBOT_<SECTION>__<KEY> environment overrides, validated.

One file serves one program (the sections below), or several: a
``[[programs]]`` list whose entries have an ``id`` and override sections over
the shared ones written once at the top (:func:`load_programs`). Each program
is then a whole ``Settings`` of its own, with its own database and mailbox.

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
import re
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
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from mailbot import tomlfile
from mailbot.errors import ConfigError

ENV_PREFIX = "MAILBOT_"
#: MAILBOT_PROGRAMS__<ID>__<SECTION>__<KEY>: one program's own override (a secret, mostly).
PROGRAMS_ENV_PREFIX = ENV_PREFIX + "PROGRAMS__"
#: The id of the one program of a file without [[programs]] (logs, metrics labels).
DEFAULT_PROGRAM = "default"
#: A program id: lower-case letters and digits, single underscores between them, so that it
#: reads back unchanged from MAILBOT_PROGRAMS__<ID>__<SECTION>__<KEY>.
PROGRAM_ID = re.compile(r"[a-z0-9]+(_[a-z0-9]+)*")
#: [service] keys every program shares: one daemon, one poll schedule, one PDF reader
#: pool, one log and one metrics endpoint. A [[programs]] entry may not set them.
SHARED_SERVICE_KEYS = ("poll_seconds", "max_attachment_mb", "pdf_timeout_seconds", "pdf_memory_mb",
                       "pdf_max_pages", "pdf_workers", "log_format", "metrics_port")


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
    #: The program's id: a [[programs]] entry's id, DEFAULT_PROGRAM in a one-program file.
    program_id: str = DEFAULT_PROGRAM

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


class ProgramChoiceError(ConfigError):
    """The command line named no program where the file has several, or one it does not have."""


def load(path: str | Path, environ: dict[str, str] | None = None, program: str | None = None) -> Settings:
    """One program's settings: the file's only one, or ``program`` (its id) among several."""
    return choose(load_programs(path, environ), program)


def choose(programs: dict[str, Settings], program: str | None = None) -> Settings:
    """``program``'s settings; without it, the only program (several: ProgramChoiceError naming them)."""
    ids = ", ".join(programs)
    if program is None:
        if len(programs) == 1:
            return next(iter(programs.values()))
        raise ProgramChoiceError(f"the config has several programs ({ids}): name one with --program ID")
    if program not in programs:
        raise ProgramChoiceError(f"no program {program!r} in the config (programs: {ids})")
    return programs[program]


def load_programs(path: str | Path, environ: dict[str, str] | None = None) -> dict[str, Settings]:
    """Every program of the file by id, in the file's order; ConfigError naming the program and key.

    Without ``[[programs]]`` the file is one program, DEFAULT_PROGRAM. With it, each entry's
    sections override the shared top-level ones key by key, then
    MAILBOT_PROGRAMS__<ID>__<SECTION>__<KEY> overrides that program alone.
    """
    path = Path(path)
    environ = os.environ if environ is None else environ
    data = tomlfile.read(path, ConfigError, what="config file", hint=" (use --config PATH)")
    base_dir = path.resolve().parent
    _refuse_secrets_in_file(data, path.name)
    entries = _program_entries(data.pop("programs", None), path.name)
    _apply_env(data, environ)
    _refuse_program_env(environ, entries, path.name)
    if not entries:
        settings = validate(data, base_dir=base_dir, origin=path.name)
        return {settings.program_id: settings}
    programs = {}
    for program_id, entry in entries.items():
        origin = f"{path.name}: program {program_id}"
        _refuse_secrets_in_file(entry, origin)
        _apply_program_env(entry, program_id, environ)
        _refuse_shared_keys(entry, origin)
        programs[program_id] = validate(_merged(data, entry), base_dir=base_dir, origin=origin,
                                        program_id=program_id)
    _refuse_shared_resources(programs, path.name)
    return programs


def validate(data: dict[str, Any], *, base_dir: Path, origin: str = "config",
             program_id: str = DEFAULT_PROGRAM) -> Settings:
    """Validate a settings dict (already merged with the environment)."""
    try:
        return Settings.model_validate({**data, "base_dir": base_dir, "program_id": program_id})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None


def _program_entries(entries: Any, origin: str) -> dict[str, dict[str, Any]]:
    """The [[programs]] tables by id (a copy without the id); {} when the file has none."""
    if entries is None:
        return {}
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{origin}: programs must be a list of [[programs]] tables, each with an id")
    found: dict[str, dict[str, Any]] = {}
    for number, entry in enumerate(entries):
        entry = dict(entry)
        program_id = entry.pop("id", None)
        if not isinstance(program_id, str) or not PROGRAM_ID.fullmatch(program_id):
            raise ConfigError(f"{origin}: [[programs]] number {number + 1}: id must be lower-case letters "
                              f"and digits, words joined by single underscores, e.g. \"ts_2026\" "
                              f"(got {program_id!r})")
        if program_id == DEFAULT_PROGRAM:  # the name of a file without [[programs]]: lines would not name it
            raise ConfigError(f"{origin}: [[programs]] number {number + 1}: the id {DEFAULT_PROGRAM!r} is "
                              f"kept for a config without [[programs]]: choose another")
        if program_id in found:
            raise ConfigError(f"{origin}: two [[programs]] have the id {program_id!r}")
        found[program_id] = entry
    return found


def _merged(shared: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """The shared sections with the program's keys over them (a key, not a whole section, is replaced)."""
    merged = {name: dict(value) if isinstance(value, dict) else value for name, value in shared.items()}
    for name, value in entry.items():
        if isinstance(value, dict) and isinstance(merged.get(name), dict):
            merged[name] = {**merged[name], **value}
        else:
            merged[name] = value
    return merged


def _refuse_shared_keys(entry: dict[str, Any], origin: str) -> None:
    """The [service] keys of the daemon as a whole cannot differ per program."""
    service = entry.get("service")
    for key in SHARED_SERVICE_KEYS if isinstance(service, dict) else ():
        if key in service:
            raise ConfigError(f"{origin}: [service] {key} is shared by every program (one daemon): "
                              f"set it in the top-level [service], not in [[programs]]")


def _refuse_shared_resources(programs: dict[str, Settings], origin: str) -> None:
    """Two programs on one database, mailbox, sender, reception prefix or token file would mix
    their applications, replies or numbers: refused, naming both programs."""
    seen: dict[tuple[str, str], str] = {}
    for program_id, settings in programs.items():
        for what, value in _own_resources(settings):
            first = seen.setdefault((what, value), program_id)
            if first != program_id:
                raise ConfigError(f"{origin}: programs {first} and {program_id} have the same {what} "
                                  f"({value}): each program needs its own")


def _shown_url(settings: Settings) -> str:
    """The database URL to compare and show: its password hidden (it may come from the environment)."""
    try:
        return make_url(settings.database_url).render_as_string(hide_password=True)
    except ArgumentError:
        raise ConfigError(f"program {settings.program_id}: [database] url: not a database URL "
                          f"(got {settings.database.url!r})") from None


def _own_resources(settings: Settings) -> list[tuple[str, str]]:
    """What must belong to one program only, each as (what, a comparable value to show)."""
    imap, oauth2 = settings.imap, settings.oauth2
    owned = [
        ("[database] url", _shown_url(settings)),
        ("mailbox", f"{imap.username.lower()} on {imap.host.lower()}:{imap.port}, folder {imap.folder}"),
        # Applicants answer the From address: a shared one would bring one program's threads
        # into the other's mailbox.
        ("[smtp] from_address", settings.smtp.from_address.lower()),
        ("[program] reception_prefix", settings.program.reception_prefix),
    ]
    uses_oauth2 = "oauth2" in (imap.auth, settings.smtp.auth)
    if uses_oauth2 and oauth2.flow == "refresh_token":  # each mailbox's grant rotates in its own file
        owned.append(("[oauth2] token_file", str(Path(oauth2.token_file).resolve())))
    return owned


def _refuse_secrets_in_file(data: dict[str, Any], origin: str) -> None:
    """OAuth2 secrets open the mailbox for months: never in a file that is copied around."""
    oauth2 = data.get("oauth2")
    for key in OAUTH2_SECRETS if isinstance(oauth2, dict) else ():
        if oauth2.get(key):
            raise ConfigError(f"{origin}: [oauth2] {key} is a secret: remove it from the file and set "
                              f"MAILBOT_OAUTH2__{key.upper()} in the environment")


def _apply_env(data: dict[str, Any], environ: dict[str, str]) -> None:
    """MAILBOT_IMAP__PASSWORD=x sets [imap] password; unknown sections/keys are errors.
    MAILBOT_PROGRAMS__<ID>__... are a program's own (:func:`_apply_program_env`)."""
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name or name.startswith(PROGRAMS_ENV_PREFIX):
            continue
        _set_from_env(data, name, name.removeprefix(ENV_PREFIX), value)


def _apply_program_env(entry: dict[str, Any], program_id: str, environ: dict[str, str]) -> None:
    """MAILBOT_PROGRAMS__TS__IMAP__PASSWORD=x sets [imap] password of program ts only."""
    prefix = f"{PROGRAMS_ENV_PREFIX}{program_id.upper()}__"
    for name, value in environ.items():
        if name.startswith(prefix):
            _set_from_env(entry, name, name.removeprefix(prefix), value)


def _refuse_program_env(environ: dict[str, str], entries: dict[str, Any], origin: str) -> None:
    """A MAILBOT_PROGRAMS__<ID>__... naming no program of the file is a typo, not a no-op."""
    for name in environ:
        if not name.startswith(PROGRAMS_ENV_PREFIX):
            continue
        program_id = name.removeprefix(PROGRAMS_ENV_PREFIX).partition("__")[0].lower()
        if program_id not in entries:
            known = ", ".join(entries) if entries else "none: it has no [[programs]]"
            raise ConfigError(f"environment {name}: no program {program_id!r} in {origin} (programs: {known})")


def _set_from_env(data: dict[str, Any], name: str, section_key: str, value: str) -> None:
    """``section_key`` is "IMAP__PASSWORD": set data["imap"]["password"], or say what is unknown."""
    section, _, key = section_key.lower().partition("__")
    model = Settings.model_fields.get(section)
    if model is None or section in ("base_dir", "program_id"):
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
