"""The service's log lines: plain text, key=value or JSON, one line per record, never a secret.

``[service] log_format`` picks the form operators search:

- "text": ``2026-11-27 09:00:01,234 INFO mailbot.pipeline processed message=12 class=application``
  (the format of old; a traceback follows on its own lines, for a person at a terminal);
- "keyvalue": ``ts=2026-11-27T00:00:01.234+00:00 level=info logger=mailbot.pipeline
  msg=processed message=12 class=application``, values quoted when they hold a space, a quote, an
  equals sign or a control character, Japanese kept as it is;
- "json": one JSON object per line with ts, level, logger, msg and the fields (ensure_ascii=False).

In keyvalue and json a record is always one line, traceback included (the
``traceback`` field, its line breaks escaped): journald and log shippers
take one line as one entry, and a raw line break would split a record in two.

Structured fields travel in ``extra={"fields": {...}}``; ``event(log, "processed",
message=12, ...)`` is the short way. Callers log ids, classes, verdicts,
reception numbers and counts, never what a company wrote in its form.

Secrets never reach the output: every handler this module installs carries a
``Redactor`` that blanks fields named like a password, token or secret,
``password=...``-style text in messages and tracebacks, ``Bearer`` tokens, and
the configured secret values themselves (``secrets_of(settings)``).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

FORMATS = ("text", "keyvalue", "json")
FIELDS = "fields"  # the ``extra=`` key that carries a record's structured fields
REDACTED = "[redacted]"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
#: Shorter configured secrets are not scrubbed: blanking every "ab" would make the log unreadable.
MIN_SECRET_LENGTH = 4

#: Field names whose values are secrets whatever they hold.
SECRET_NAME = re.compile(r"pass(word|wd)?|pwd|secret|token|authori[sz]ation|api_?key|credential|cookie",
                         re.IGNORECASE)
#: "password=hunter2", "client_secret: abc", "refresh_token='x y'" inside free text.
SECRET_ASSIGNMENT = re.compile(
    r"""(?P<key>\b[\w.-]*(?:pass(?:word|wd)?|pwd|secret|token|api_?key)[\w.-]*["']?\s*[=:]\s*)"""
    r"""(?P<value>"[^"]*"|'[^']*'|[^\s,;&"')}\]]+)""", re.IGNORECASE)
BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)

_installed: list[logging.Handler] = []  # the handlers configure() put on the root logger


def event(logger: logging.Logger, text: str, level: int = logging.INFO, /, **fields: Any) -> None:
    """Log ``text`` with structured ``fields`` (None values are left out).

    Positional-only, so a field may be called ``message`` or ``level`` too.
    """
    present = {key: value for key, value in fields.items() if value is not None}
    logger.log(level, text, extra={FIELDS: present}, stacklevel=2)


def configure(log_format: str, verbose: bool = False, secrets: Iterable[str] = ()) -> None:
    """(Re)configure the root logger: one stderr handler in ``log_format``, secrets scrubbed.

    Called again (after the config is read), it replaces the handler it
    installed before; handlers others put on the root logger stay.
    """
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r}: expected one of {', '.join(FORMATS)}")
    root = logging.getLogger()
    for old in _installed:
        root.removeHandler(old)
    _installed.clear()
    handler = StderrHandler()
    handler.setFormatter(formatter(log_format))
    handler.addFilter(Redactor(secrets))
    root.addHandler(handler)
    _installed.append(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of one of FORMATS."""
    return {"text": TextFormatter, "keyvalue": KeyValueFormatter, "json": JsonFormatter}[log_format]()


def secrets_of(settings) -> list[str]:
    """The secret values in the settings (passwords, OAuth2 client secret and refresh token)."""
    values = [settings.imap.password, settings.smtp.password,
              settings.oauth2.client_secret.get_secret_value(), settings.oauth2.refresh_token.get_secret_value()]
    return [value for value in values if value]


class StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when each record is written, not when configured.

    The command line's test runner and pytest swap sys.stderr for a while and
    close their copy: a handler holding it would then write to a closed file.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass  # StreamHandler.__init__ sets it; the property always answers the current one


class Redactor(logging.Filter):
    """Scrubs secrets from a record before any formatter sees it (see the module docstring).

    It rewrites the record in place: the message is rendered once with its
    arguments and scrubbed, the traceback is rendered and scrubbed into
    ``exc_text`` (which formatters use as it is), secret-named fields blanked.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is blanked whole.
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.scrub(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.exc_info and record.exc_info[1] is not None:
            record.redacted_error = self.scrub(error_line(record.exc_info[1]))
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, Mapping):
            setattr(record, FIELDS, {key: self._field(key, value) for key, value in fields.items()})
        return True

    def scrub(self, text: str) -> str:
        """``text`` with every secret it shows replaced by [redacted]."""
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        text = SECRET_ASSIGNMENT.sub(lambda m: m.group("key") + REDACTED, text)
        return BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)

    def _field(self, key: str, value: Any) -> Any:
        if SECRET_NAME.search(key):
            return REDACTED
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, (list, tuple)):
            return [self.scrub(v) if isinstance(v, str) else v for v in value]
        return value


def structured(record: logging.LogRecord) -> dict[str, Any]:
    """The record's fields, then its exception and stack as fields (a traceback is one value)."""
    fields = dict(getattr(record, FIELDS, None) or {})
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_info and record.exc_info[1] is not None:
        # Set (scrubbed) by the Redactor; computed here only for a formatter used on its own.
        fields["error"] = getattr(record, "redacted_error", None) or error_line(record.exc_info[1])
    if record.exc_text:
        fields["traceback"] = record.exc_text
    if record.stack_info:
        fields["stack"] = record.stack_info
    return fields


def error_line(exc: BaseException) -> str:
    """"ZeroDivisionError: division by zero": what failed, in a few words."""
    return f"{type(exc).__name__}: {exc}"


def timestamp(record: logging.LogRecord) -> str:
    """ISO 8601 in UTC with milliseconds: sorts as text, and means the same on every machine."""
    return datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """The format of old, with the record's fields after the message as key=value."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = getattr(record, FIELDS, None) or {}
        return " ".join([line, *(f"{key}={kv_value(value)}" for key, value in fields.items())])


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=info logger=... msg=... key=value ...`` on one line (logfmt)."""

    def format(self, record: logging.LogRecord) -> str:
        head = {"ts": timestamp(record), "level": record.levelname.lower(), "logger": record.name,
                "msg": record.getMessage()}
        pairs = {**head, **_unclashed(structured(record), head)}
        return " ".join(f"{key}={kv_value(value)}" for key, value in pairs.items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line; Japanese kept readable (ensure_ascii=False)."""

    def format(self, record: logging.LogRecord) -> str:
        head = {"ts": timestamp(record), "level": record.levelname.lower(), "logger": record.name,
                "msg": record.getMessage()}
        line = json.dumps({**head, **_unclashed(structured(record), head)}, ensure_ascii=False, default=str)
        # Valid JSON, but U+2028/U+2029 end a line for many readers: escape them too.
        return line.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _unclashed(fields: dict[str, Any], head: dict[str, Any]) -> dict[str, Any]:
    """A field named like a head key (ts, level, logger, msg) becomes field_<name>, never overwrites it."""
    return {(f"field_{key}" if key in head else key): value for key, value in fields.items()}


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def kv_value(value: Any) -> str:
    """One value as key=value shows it: bare when safe, else double-quoted with escapes.

    Bare: printable, no whitespace (U+3000 included), no quote, equals sign or
    backslash, not empty. Lists are joined with commas; booleans are true/false.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set)):
        value = ",".join(str(v) for v in value)
    text = str(value)
    if text and all(c.isprintable() and not c.isspace() and c not in '"=\\' for c in text):
        return text
    return '"' + "".join(_escape(c) for c in text) + '"'


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if char.isprintable() or char == " " or char == "\u3000":
        return char
    return f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"
