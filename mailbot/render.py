"""Mail templates: templates/<language>/<name>.txt.j2 -> a subject and a plain-text body.

Each template defines ``{% block subject %}`` and ``{% block body %}``; the two
blocks are rendered from the same context, so a template is one file that
staff can read and edit. Undefined variables are errors (StrictUndefined):
a reply with a hole in it is never sent. Plain text is not HTML-escaped, but
the subject is forced onto one line, so applicant text (a company name with a
line break) can never add a header.
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
)
from jinja2 import TemplateError as JinjaError

from mailbot.errors import TemplateError

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]")
_WEEKDAYS = "月火水木金土日"


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


def one_line(text: str) -> str:
    """Every control character and line break becomes a space; runs of spaces become one."""
    return " ".join(_CONTROL.sub(" ", text).split())


class Renderer:
    """Renders the templates of one folder (``templates/``) in one language."""

    def __init__(self, templates_dir: Path, language: str = "ja"):
        self.templates_dir = Path(templates_dir)
        self.language = language
        self.env = Environment(
            loader=FileSystemLoader(str(self.templates_dir)),
            undefined=StrictUndefined,
            autoescape=False,  # plain text mail; the subject is made safe by one_line
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["jdate"] = japanese_date

    def render(self, name: str, **context: Any) -> RenderedMail:
        """Render template ``name`` (e.g. "receipt"); TemplateError when missing or broken."""
        template = self._template(name)
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

    def _template(self, name: str) -> Template:
        if not _NAME.fullmatch(name):  # a name, never a path
            raise TemplateError(f"bad template name {name!r}")
        path = f"{self.language}/{name}.txt.j2"
        try:
            return self.env.get_template(path)
        except TemplateNotFound:
            raise TemplateError(f"template not found: {self.templates_dir / path}") from None
        except JinjaError as exc:
            raise TemplateError(f"template {path}: {exc}") from None

    @staticmethod
    def _block(template: Template, block: str, context: dict[str, Any]) -> str:
        return "".join(template.blocks[block](template.new_context(context)))


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
