"""Everything the rooms need, built once from the settings (and again on reload)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sqlalchemy.engine import Engine

from mailbot import ruleset
from mailbot.config import Settings
from mailbot.db import make_engine
from mailbot.forms.reading import FormReading
from mailbot.forms.pool import ReaderPool
from mailbot.forms.sandbox import Limits
from mailbot.intake.classify import Triage, load_triage
from mailbot.render import Renderer


@dataclass
class Services:
    """Settings, database, rules, triage, templates and the sandboxed PDF reader."""

    settings: Settings
    engine: Engine
    rulesets: dict[str, ruleset.RuleSet]  # per form: "application", "consultation"
    triage: Triage
    renderer: Renderer
    #: The sandboxed reader: a ReaderPool (which also reads ahead); tests may put a plain function.
    read_form: Callable[[bytes], FormReading]

    @property
    def rules(self) -> ruleset.RuleSet:
        """The application form's checks."""
        return self.rulesets["application"]


def build(settings: Settings, engine: Engine | None = None) -> Services:
    """Load and validate rules and templates up front: a broken file stops the start."""
    rules_dir = settings.path(settings.service.rules_dir)
    return Services(
        settings=settings,
        engine=engine or make_engine(settings.database_url),
        rulesets={form: ruleset.load(rules_dir, form) for form in ruleset.FORMS},
        triage=load_triage(rules_dir / "triage.toml"),
        renderer=Renderer(settings.path(settings.service.templates_dir)),
        read_form=ReaderPool(pdf_limits(settings), settings.service.pdf_workers),
    )


def pdf_limits(settings: Settings) -> Limits:
    """The [service] pdf_* keys as sandbox limits."""
    service = settings.service
    return Limits(
        max_bytes=int(service.max_attachment_mb * 1024 * 1024),
        seconds=service.pdf_timeout_seconds,
        memory_mb=service.pdf_memory_mb,
        max_pages=service.pdf_max_pages,
    )
