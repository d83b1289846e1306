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

from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any

import typer
from sqlmodel import Session

from mailbot import adoption, documents, hours, language, letters, schedule
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


def _adoption(session: Session, services, application: Application) -> dict[str, Any]:
    return adoption.adoption_context(services, application)


def _documents(session: Session, services, application: Application) -> dict[str, Any]:
    return documents.preview_context(session, services, application)


def _meeting(session: Session, services, application: Application) -> dict[str, Any]:
    """A sample meeting tomorrow at 14:00 Tokyo: the follow-up once the service runs, else the interview."""
    step = schedule.step_named("followup" if application.state == "in_service" else "interview")
    starts = datetime.combine(hours.tokyo_today() + timedelta(days=1), time(14, 0), schedule.TOKYO)
    meeting = {"starts": starts, "start": "14:00", "end": "15:00", "minutes": 60, "when": schedule.when(starts, 60),
               "place": "ジェトロ本部（東京都港区赤坂1-12-32 アーク森ビル）", "url": None, "expert": "山田 太郎（弁護士）"}
    return {"step": step.key, "step_name": step.name_ja, "meeting": meeting, "previous": None,
            "reason": "専門家の都合により"}


#: template -> the step-specific values its caller gives (real ones from the application where it has them).
#: The consultation desk's mails belong to desk requests, not applications: they have no preview here.
SAMPLES: dict[str, Sample] = {
    "receipt": _position,
    "waitlisted": _position,
    "place_offered": _position,
    "fix_request": _problems,
    "closed": lambda s, v, a: {},
    "pdf_unreadable": lambda s, v, a: {"reason": "PDFにパスワードが設定されています。", "filename": "申請書.pdf"},
    "adopted": _adoption,
    "declined": lambda s, v, a: {"note": ""},
    "withdrawn": lambda s, v, a: {},
    "documents_missing": _documents,
    "documents_received": _documents,
    "documents_reminder": _documents,
    "documents_requested_again": _documents,
    "invitation": _meeting,
    "invitation_cancelled": _meeting,
    "completed": lambda s, v, a: {},
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

