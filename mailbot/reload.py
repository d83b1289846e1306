"""SIGHUP: the rules and templates read again from the configured folders, all checked first.

``prepare`` reads everything the running service would use — every form's
rules (rules/<form>.toml with regions.toml), rules/triage.toml, and every
template under templates/ compiled — and gives the new parts, or a
``Refusal`` naming the file and what is wrong. A refusal changes nothing:
the daemon keeps answering with what it has. ``apply`` swaps the parts in;
the daemon calls it between two cycles, so no mail is judged by half old,
half new rules. Settings (config.toml) are not reloaded: a new mailbox or
database is a restart.
"""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import TemplateError as JinjaError

from mailbot import ruleset
from mailbot.errors import RulesError, TemplateError
from mailbot.intake.classify import Triage, load_triage
from mailbot.render import Renderer
from mailbot.services import Services


@dataclass(frozen=True)
class Parts:
    """What a reload replaces in Services."""

    rulesets: dict[str, ruleset.RuleSet]
    triage: Triage
    renderer: Renderer


@dataclass(frozen=True)
class Refusal:
    """Why the new files were not taken (the message names the file)."""

    reason: str


def prepare(services: Services, templates_in_use: set[str] | frozenset[str] = frozenset()) -> Parts | Refusal:
    """Read and check the configured rules and templates; nothing in ``services`` changes.

    ``templates_in_use``: the template files the service started with
    (``template_names`` at start): one of them gone is refused too.
    """
    settings = services.settings
    rules_dir = settings.path(settings.service.rules_dir)
    try:
        rulesets = {form: ruleset.load(rules_dir, form) for form in ruleset.FORMS}
        triage = load_triage(rules_dir / "triage.toml")
        renderer = Renderer(settings.path(settings.service.templates_dir), services.renderer.language)
        compile_all(renderer, required=set(templates_in_use))
    except (RulesError, TemplateError) as exc:
        return Refusal(str(exc))
    return Parts(rulesets, triage, renderer)


def apply(services: Services, parts: Parts) -> None:
    """Put the new parts in use (call it between cycles)."""
    services.rulesets = parts.rulesets
    services.triage = parts.triage
    services.renderer = parts.renderer


def template_names(renderer: Renderer) -> set[str]:
    """Every template file of a renderer's folder, as "ja/receipt.txt.j2"."""
    return set(renderer.env.list_templates(extensions=["j2"]))


def compile_all(renderer: Renderer, required: set[str]) -> None:
    """Compile every template (a syntax error is found now, not when a mail needs it);
    TemplateError also when one the running service has is gone."""
    names = template_names(renderer)
    missing = sorted(required - names)
    if missing:
        raise TemplateError(f"template not found: {renderer.templates_dir / missing[0]}"
                            f" (there at start; {len(missing)} missing)")
    for name in sorted(names):
        try:
            renderer.env.get_template(name)
        except JinjaError as exc:
            line = f" line {exc.lineno}" if getattr(exc, "lineno", None) else ""
            raise TemplateError(f"template {renderer.templates_dir / name}{line}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise TemplateError(f"template {renderer.templates_dir / name}: not UTF-8 ({exc.reason})") from None
