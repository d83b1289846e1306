"""Step 05 staff commands: `mailbot log-session` and `mailbot hours`.

    mailbot log-session ID --date YYYY-MM-DD --kind consultation|training --hours H [--note TEXT] [--by NAME]
    mailbot hours ID [--send] [--json] [--by NAME]

ID is the reception number (TS-2026-0001). Each command is one
transaction: the ledger row, the state change (the first session moves
interview_scheduled -> in_service) and the summary mail commit together or
not at all. Mails wait in the outbox and go out with the service's next cycle
(`mailbot run --once`).
"""

from __future__ import annotations

import json
import unicodedata
from datetime import date

import typer
from rich.console import Console
from rich.table import Table
from sqlmodel import Session, select

from mailbot import hours
from mailbot.cli import app, load_services
from mailbot.commands import by_option
from mailbot.db import transaction
from mailbot.errors import WorkflowError
from mailbot.models import Application


def find(session: Session, number: str) -> Application:
    """The application with this reception number (full-width digits and case forgiven)."""
    wanted = unicodedata.normalize("NFKC", number).strip().upper()
    found = session.exec(select(Application).where(Application.reception_number == wanted)).first()
    if found is None:
        raise WorkflowError(f"no application {number!r}")
    return found


def fail(exc: Exception) -> typer.Exit:
    """Say why on stderr as ``mailbot: …``; the caller raises the returned exit 1."""
    typer.echo(f"mailbot: {exc}", err=True)
    return typer.Exit(1)


@app.command("log-session")
def log_session(
    number: str = typer.Argument(..., metavar="ID", help="The reception number."),
    held_on: str = typer.Option(..., "--date", metavar="YYYY-MM-DD", help="The day of the session."),
    kind: str = typer.Option(..., "--kind", help="consultation (管理職向けコンサルテーション) or "
                                                 "training (管理職・社員向け研修)."),
    hours_: float = typer.Option(..., "--hours", metavar="H", help="Hours, in steps of 0.5."),
    note: str = typer.Option(None, "--note", help="What was done (kept in the ledger, not mailed)."),
    by: str = by_option(),
) -> None:
    """Log one consultation or training session (step 05); refused past the cap or the support end."""
    services = load_services()
    try:
        day = _day(held_on)
        with transaction(services.engine) as session:
            logged = hours.log_session(session, services, find(session, number), held_on=day, kind=kind,
                                       hours=hours_, by=by, note=note)
    except WorkflowError as exc:
        raise fail(exc) from None
    done = logged.summary
    typer.echo(f"{number}: {hours.hours_text(hours_)} of {kind} on {day} logged; "
               f"{hours.hours_text(done.used)} used, {hours.hours_text(done.left)} left")
    if logged.started_service:
        typer.echo(f"{number}: first session: now in_service")
    if logged.notice is not None:
        typer.echo(f"{number}: {done.percent_used}% used: hours summary mailed to the applicant")


@app.command("hours")
def hours_command(
    number: str = typer.Argument(..., metavar="ID", help="The reception number."),
    send: bool = typer.Option(False, "--send", help="Also mail the summary to the applicant."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Hours used and left for the application's company and region, and the sessions (step 05)."""
    services = load_services()
    try:
        with transaction(services.engine) as session:
            application = find(session, number)
            result = hours.summary(session, services, application)
            mailed = hours.send_summary(session, services, application, current=result) if send else None
    except WorkflowError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps({**result.as_json(), "reception_number": application.reception_number,
                               "mailed": mailed is not None}, ensure_ascii=False, indent=2))
    else:
        _print(Console(), application, result)
    if mailed is not None and not as_json:
        typer.echo(f"{number}: hours summary mailed to {', '.join(mailed.to_addrs)}")
    if send and mailed is None:
        raise fail(f"{number}: not mailed: every address is held after a bounce")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise WorkflowError(f"--date must be YYYY-MM-DD, not {text!r}") from None


def _print(console: Console, application: Application, result: hours.HoursSummary) -> None:
    """The totals, then one line per session."""
    console.print(f"[bold]{application.reception_number}[/bold]  {application.company_name or '-'}  "
                  f"{result.region or '-'}  {application.state}")
    console.print(f"used {hours.hours_text(result.used)} of {hours.hours_text(result.cap)} "
                  f"({result.percent_used}%), left {hours.hours_text(result.left)}; "
                  + ", ".join(f"{kind} {hours.hours_text(h)}" for kind, h in result.by_kind.items())
                  + f"; support ends {result.support_ends}")
    table = Table("date", "kind", "hours", "application", "by", "note")
    for line in result.sessions:
        table.add_row(line.held_on.isoformat(), line.kind, hours.hours_text(line.hours),
                      line.reception_number, line.recorded_by, line.note or "")
    console.print(table)
