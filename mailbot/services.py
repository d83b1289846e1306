"""Everything the rooms need, built once from the settings (and again on reload).

Several programs in one deployment (config ``[[programs]]``) are one Services
each, on their own database, rules and templates; they share the PDF reader
pool (:func:`build_all`), whose limits are the shared [service] keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sqlalchemy.engine import Engine

from mailbot import ruleset
from mailbot.config import Settings
from mailbot.db import make_engine
from mailbot.errors import RulesError, SchemaError, TemplateError
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
    def program_id(self) -> str:
        """The program's id ([[programs]] id, or "default" for a one-program config)."""
        return self.settings.program_id

    @property
    def rules(self) -> ruleset.RuleSet:
        """The application form's checks."""
        return self.rulesets["application"]


def build(settings: Settings, engine: Engine | None = None,
          read_form: Callable[[bytes], FormReading] | None = None) -> Services:
    """Load and validate rules and templates up front: a broken file stops the start.

    ``read_form``: a reader pool to share (several programs); without it, a pool of its own.
    """
    rules_dir = settings.path(settings.service.rules_dir)
    return Services(
        settings=settings,
        engine=engine or make_engine(settings.database_url),
        rulesets={form: ruleset.load(rules_dir, form) for form in ruleset.FORMS},
        triage=load_triage(rules_dir / "triage.toml"),
        renderer=Renderer(settings.path(settings.service.templates_dir)),
        read_form=read_form or ReaderPool(pdf_limits(settings), settings.service.pdf_workers),
    )


def build_all(programs: dict[str, Settings]) -> list[Services]:
    """Every program's Services, in the config's order, sharing one PDF reader pool.

    The pool's limits and size are [service] keys every program shares (config refuses
    them per program), so the first program's are everyone's. A broken rule or template
    file of any program stops the start, naming the file.
    """
    first = next(iter(programs.values()))
    pool = ReaderPool(pdf_limits(first), first.service.pdf_workers)
    try:
        return [build(settings, read_form=pool) for settings in programs.values()]
    except (RulesError, TemplateError, SchemaError):
        pool.close()  # the start stops: end the readers forked for it
        raise


def pdf_limits(settings: Settings) -> Limits:
    """The [service] pdf_* keys as sandbox limits."""
    service = settings.service
    return Limits(
        max_bytes=int(service.max_attachment_mb * 1024 * 1024),
        seconds=service.pdf_timeout_seconds,
        memory_mb=service.pdf_memory_mb,
        max_pages=service.pdf_max_pages,
    )
