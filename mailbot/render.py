"""Mail templates: templates/<language>/<name>.txt.j2 -> a subject and a plain-text body.

Each template defines ``{% block subject %}`` and ``{% block body %}``; the two
blocks are rendered from the same context, so a template is one file that
staff can read and edit. Undefined variables are errors (StrictUndefined):
a reply with a hole in it is never sent. Plain text is not HTML-escaped, but
the subject is forced onto one line, so applicant text (a company name with a
line break) can never add a header. HTML templates (``*.html.j2``, e.g. a
staff digest) are autoescaped: what applicants wrote cannot become markup.

One renderer serves every language: ``render(name, language="en")`` reads
templates/en/<name>.txt.j2; without ``language`` the renderer's own (ja). A
template missing in the language asked for is a TemplateError naming the
file: an applicant who asked for English never silently gets another one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    select_autoescape,
)
from jinja2 import TemplateError as JinjaError

from mailbot.errors import TemplateError

_NAME = re.compile(r"[a-z][a-z0-9_]*")
# A bare RFC 5322 address: a dot-atom local part (no ":" that would open a group, no
# quotes or comments) and a domain of letter/digit labels with hyphens, at least one dot.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                            r"@[^\W_](?:[\w-]*[^\W_])?(?:\.[^\W_](?:[\w-]*[^\W_])?)+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # C0, DEL, C1 (NEL \x85 among them), LS, PS
_WEEKDAYS = "月火水木金土日"
LANGUAGES = ("ja", "en")
# Spelt out rather than strftime's %A/%B, which follow the machine's locale.
_EN_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")


@dataclass(frozen=True)
class RenderedMail:
    """What a template gives: one subject line and the body text."""

    subject: str
    body: str


def japanese_date(value: date | datetime | str) -> str:
    """2025-01-31 -> 2025年1月31日（金）: how Japanese business mail writes dates."""
    if isinstance(value, str):
        value = date.fromisoformat(value)
    day = value.date() if isinstance(value, datetime) else value
    return f"{day.year}年{day.month}月{day.day}日（{_WEEKDAYS[day.weekday()]}）"


def english_date(value: date | datetime | str) -> str:
    """2025-01-31 -> Friday, 31 January 2025: unambiguous for readers of either date order."""
    if isinstance(value, str):
        value = date.fromisoformat(value)
    day = value.date() if isinstance(value, datetime) else value
    return f"{_EN_WEEKDAYS[day.weekday()]}, {day.day} {_EN_MONTHS[day.month - 1]} {day.year}"


def hours_number(value: float) -> str:
    """22.0 -> "22", 22.5 -> "22.5": hours as people write them (the ledger counts in 0.5 h)."""
    return f"{value:g}" if float(value).is_integer() else f"{value:.1f}"


def plain_address(address: str) -> bool:
    """Whether ``address`` can go into To: as it is: one bare address, no space or control
    character, nothing a header parser would decode ("=?", see one_line)."""
    return bool(_PLAIN_ADDRESS.fullmatch(address)) and "=?" not in address and not _CONTROL.search(address)


def one_line(text: str) -> str:
    """Text safe for a header: one line, and nothing a mail parser would decode into more.

    Every control character and line break becomes a space; runs of spaces
    become one. "=?" becomes "= ?": text that looks like an RFC 2047 encoded
    word (=?utf-8?b?DQpCY2M6IC4uLg==?=) is otherwise decoded by Python's own
    header parser when the header is set (3.11 before the fix for
    CVE-2024-6923), and a line break inside it becomes a header of its own.
    """
    return " ".join(_CONTROL.sub(" ", text).split()).replace("=?", "= ?")


class Renderer:
    """Renders the templates of one folder (``templates/``); ``language`` is the default one."""

    def __init__(self, templates_dir: Path, language: str = "ja"):
        self.templates_dir = Path(templates_dir)
        self.language = _checked_language(language)
        self.env = Environment(
            loader=FileSystemLoader(str(self.templates_dir)),
            undefined=StrictUndefined,
            # Plain text mail stays plain (the subject is made safe by one_line);
            # HTML escapes everything it is given.
            autoescape=select_autoescape(enabled_extensions=("html.j2", "html"), default=False),
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["jdate"] = japanese_date
        self.env.filters["edate"] = english_date
        self.env.filters["hours"] = hours_number

    def render(self, name: str, *, language: str | None = None, **context: Any) -> RenderedMail:
        """Render template ``name`` (e.g. "receipt") in ``language``; TemplateError when missing or broken."""
        template = self._template(name, language or self.language)
        context = with_application(context)
        for block in ("subject", "body"):
            if block not in template.blocks:
                raise TemplateError(f"template {template.name}: no {{% block {block} %}}")
        try:
            subject = self._block(template, "subject", context)
            body = self._block(template, "body", context)
        except JinjaError as exc:
            raise TemplateError(f"template {template.name}: {exc}") from None
        return RenderedMail(subject=one_line(subject), body=_tidy(body))

    def render_html(self, name: str, *, language: str | None = None, **context: Any) -> str:
        """Render templates/<language>/<name>.html.j2 whole, every value HTML-escaped."""
        template = self._template(name, language or self.language, suffix="html.j2")
        try:
            return template.render(with_application(context))
        except JinjaError as exc:
            raise TemplateError(f"template {template.name}: {exc}") from None

    def exists(self, name: str, language: str) -> bool:
        """Whether templates/<language>/<name>.txt.j2 is there (for previews and checks)."""
        return (self.templates_dir / language / f"{name}.txt.j2").is_file()

    def _template(self, name: str, language: str, suffix: str = "txt.j2") -> Template:
        if not _NAME.fullmatch(name):  # a name, never a path
            raise TemplateError(f"bad template name {name!r}")
        path = f"{_checked_language(language)}/{name}.{suffix}"
        try:
            return self.env.get_template(path)
        except TemplateNotFound:
            raise TemplateError(f"template not found: {self.templates_dir / path}") from None
        except JinjaError as exc:
            raise TemplateError(f"template {path}: {exc}") from None

    @staticmethod
    def _block(template: Template, block: str, context: dict[str, Any]) -> str:
        return "".join(template.blocks[block](template.new_context(context)))


def _checked_language(language: str) -> str:
    """A language we have templates for; anything else would read a folder by a made-up name."""
    if language not in LANGUAGES:
        raise TemplateError(f"unknown language {language!r} (one of {', '.join(LANGUAGES)})")
    return language


def with_application(context: dict[str, Any]) -> dict[str, Any]:
    """Given ``app`` (an Application), its number and names fill what the caller left out."""
    app = context.get("app")
    if app is None:
        return context
    fields = getattr(app, "fields", None) or {}
    derived = {
        "reception_number": app.reception_number,
        "company_name": app.company_name or fields.get("company_name"),
        "contact_name": fields.get("contact_name"),
    }
    return {**{k: v for k, v in derived.items() if v}, **context}


def _tidy(body: str) -> str:
    """LF line ends, no trailing spaces, no blank lines at either end, one final newline."""
    lines = [line.rstrip() for line in body.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return "\n".join(lines).strip("\n") + "\n"
