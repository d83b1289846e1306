"""`mailbot preview` (a mail as the applicant would read it) and `mailbot language` (which language).

    mailbot preview TEMPLATE ID [--language ja|en]
    mailbot language ID [ja|en] [--by NAME]

preview renders a template for a real application without sending or
changing anything. What the application itself gives (reception number,
names, queue position, problems, hours ledger) comes from the database; the
values only the caller of a step knows (an appointment, the missing
documents …) come from SAMPLES, one small context per template. A template
with no entry there renders with just the application and the program, and
says clearly which value it lacks.
"""

from __future__ import annotations

from typing import Any, Callable

import typer
from sqlmodel import Session

from mailbot import hours, language, letters
from mailbot.checks.problem import Problem
from mailbot.cli import app, load_services
from mailbot.commands import by_option
from mailbot.commands.hours import fail, find
from mailbot.db import transaction
from mailbot.errors import TemplateError, WorkflowError
from mailbot.models import Application

Sample = Callable[[Session, Any, Application], dict[str, Any]]

_SAMPLE_PROBLEM = Problem("seal_missing", "seal", "error", "「代表者氏名」欄の「印」の位置に押印してください。")


def _problems(session: Session, services, application: Application) -> dict[str, Any]:
    return {"problems": application.problems or [_SAMPLE_PROBLEM]}


def _position(session: Session, services, application: Application) -> dict[str, Any]:
    return {"position": application.position or 1}


def _hours(session: Session, services, application: Application) -> dict[str, Any]:
    return {"summary": hours.summary(session, services, application), "trigger": "request",
            "notice_percent": services.settings.workflow.hours_notice_percent,
            "region_name": services.rules.region_name(application.country) if application.country else None}


#: template -> the step-specific values its caller gives (real ones from the application where it has them).
SAMPLES: dict[str, Sample] = {
    "receipt": _position,
    "waitlisted": _position,
    "place_offered": _position,
    "fix_request": _problems,
    "closed": lambda s, v, a: {},
    "pdf_unreadable": lambda s, v, a: {"reason": "PDFにパスワードが設定されています。", "filename": "申請書.pdf"},
    "hours_summary": _hours,
}


def sample_context(session: Session, services, template: str, application: Application) -> dict[str, Any]:
    """The sample values for ``template`` ({} when it has none: app and program only)."""
    make = SAMPLES.get(template)
    return make(session, services, application) if make else {}


@app.command()
def preview(
    template: str = typer.Argument(..., help="The template's name, e.g. receipt, hours_summary."),
    number: str = typer.Argument(..., metavar="ID", help="The reception number."),
    lang: str = typer.Option(None, "--language", metavar="ja|en",
                             help="Render in this language (default: the application's)."),
) -> None:
    """Print a template rendered for one application: recipients, subject and body. Nothing is sent."""
    services = load_services()
    try:
        with Session(services.engine) as session:  # read only: closed without a commit
            application = find(session, number)
            chosen = lang or language.of(session, services, application)
            mail = services.renderer.render(
                template, language=chosen, app=application, program=services.settings.program,
                **sample_context(session, services, template, application))
            to = letters.reachable(session, application)
    except WorkflowError as exc:
        raise fail(exc) from None
    except TemplateError as exc:
        hint = "" if template in SAMPLES else f" (preview has no sample values for {template!r})"
        raise fail(f"{exc}{hint}") from None
    typer.echo(f"To: {', '.join(to) or '(nobody: every address is held)'}\n"
               f"Language: {chosen}\nSubject: {mail.subject}\n\n{mail.body}", nl=False)


@app.command("language")
def language_command(
    number: str = typer.Argument(..., metavar="ID", help="The reception number."),
    chosen: str = typer.Argument(None, metavar="[ja|en]", help="Set it; without it, show it."),
    by: str = by_option(),
) -> None:
    """Show or set the language of the mail an applicant gets (English where they asked for it)."""
    services = load_services()
    try:
        with transaction(services.engine) as session:
            application = find(session, number)
            if chosen is not None:
                language.choose(session, application, chosen, by=by)
            current = language.of(session, services, application)
    except WorkflowError as exc:
        raise fail(exc) from None
    typer.echo(f"{application.reception_number}: mail in {current}")

