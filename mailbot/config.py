"""Settings: config.toml, then MAILBOT_<SECTION>__<KEY> environment overrides, validated.

Secrets (passwords) are given in production as environment variables, e.g.
``MAILBOT_IMAP__PASSWORD``. Every error names the key and where it came from:

    config.toml: [imap] port: Input should be a valid integer (got 'abc')
    environment MAILBOT_SMTP__PORTT: unknown key [smtp] portt
"""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mailbot import tomlfile
from mailbot.errors import ConfigError

ENV_PREFIX = "MAILBOT_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImapSettings(_Section):
    host: str
    port: int = Field(993, ge=1, le=65535)
    username: str
    password: str = ""
    security: Literal["tls", "starttls", "none"] = "tls"
    folder: str = "INBOX"
    processed_folder: str = "mailbot/processed"
    quarantine_folder: str = "mailbot/quarantine"
    timeout_seconds: float = Field(30.0, gt=0)
    idle: bool = True
    idle_renew_minutes: float = Field(25, gt=0, le=29)
    reconnect_max_seconds: float = Field(300, gt=0)


class SmtpSettings(_Section):
    host: str
    port: int = Field(587, ge=1, le=65535)
    username: str = ""
    password: str = ""
    security: Literal["tls", "starttls", "none"] = "starttls"
    from_address: str
    from_name: str = ""
    timeout_seconds: float = Field(30.0, gt=0)
    max_attempts: int = Field(8, ge=1)


class DatabaseSettings(_Section):
    url: str = "sqlite:///data/mailbot.db"


class ProgramSettings(_Section):
    name: str = "海外における営業秘密漏えい対策支援事業"
    opens: date
    closes: date
    cap: int = Field(18, ge=1)
    reception_prefix: str = "TS"
    signature: str = ""

    @field_validator("closes")
    @classmethod
    def _closes_after_opens(cls, closes: date, info) -> date:
        opens = info.data.get("opens")
        if opens and closes < opens:
            raise ValueError(f"closes ({closes}) is before opens ({opens})")
        return closes


class StaffSettings(_Section):
    digest_to: list[str] = Field(default_factory=list)

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
    answer_from: datetime | None = None
    max_replies_per_recipient: int = Field(10, ge=1)
    reply_window_minutes: int = Field(180, ge=1)
    health_alert_minutes: int = Field(30, ge=1)

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
    service: ServiceSettings = ServiceSettings()
    #: The folder config.toml was read from: relative paths in it start here.
    base_dir: Path = Path(".")

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


def load(path: str | Path, environ: dict[str, str] | None = None) -> Settings:
    """Read, override from the environment, validate; raise ConfigError naming the key."""
    path = Path(path)
    data = tomlfile.read(path, ConfigError, what="config file", hint=" (use --config PATH)")
    _apply_env(data, os.environ if environ is None else environ)
    return validate(data, base_dir=path.resolve().parent, origin=path.name)


def validate(data: dict[str, Any], *, base_dir: Path, origin: str = "config") -> Settings:
    """Validate a settings dict (already merged with the environment)."""
    try:
        return Settings.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None


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
