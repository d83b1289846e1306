"""Staff commands of steps 04 and 06 and of the desk: schedule, cancel, complete.

    mailbot schedule ID --step interview|followup|consultation --at "2026-12-03 14:00"
                     [--minutes N] (--place TEXT | --url URL) --expert NAME [--by NAME]
    mailbot cancel ID --step interview|followup|consultation [--reason TEXT] [--by NAME]
    mailbot complete ID [--by NAME]

ID is a reception number (TS-2026-0001), a consultation request's number
(TS-C-2026-0001) or a database id (12, C-3). The mail goes out with the
service's next cycle (the outbox).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from mailbot import schedule as use_case
from mailbot.cli import app, load_services
from mailbot.commands import by_option
from mailbot.db import transaction
from mailbot.errors import MailbotError

_ID = typer.Argument(..., metavar="ID", help="Reception number (TS-2026-0001), desk request (TS-C-2026-0001) or id.")
_STEP = typer.Option(..., "--step", help="interview, followup or consultation (a desk request).")


@app.command("schedule")
def schedule_command(
    ref: str = _ID,
    step: str = _STEP,
    at: str = typer.Option(..., "--at", help='Date and time, Asia/Tokyo: "2026-12-03 14:00".'),
    minutes: int = typer.Option(None, "--minutes", help="Length (default: [workflow] meeting_minutes)."),
    place: str = typer.Option(None, "--place", help="Where (an address, a meeting room)."),
    url: str = typer.Option(None, "--url", help="The link of an online meeting."),
    expert: str = typer.Option(..., "--expert", help="The expert who meets the applicant."),
    by: str = by_option(),
) -> None:
    """Set (or move) an interview, follow-up or desk meeting and mail the invitation with an .ics."""
    services = load_services()
    length = minutes if minutes is not None else services.settings.workflow.meeting_minutes
    with _refusals(), transaction(services.engine) as session:
        wanted = use_case.meeting(at, minutes=length, expert=expert, place=place, url=url)
        appointment, mail = use_case.schedule(session, services, ref, step, wanted, actor=by)
        verb = "rescheduled" if appointment.sequence else "scheduled"
        typer.echo(f"{ref}: {appointment.step} {verb} for {use_case.when(appointment.starts_at, appointment.minutes)}"
                   f" with {appointment.expert} (calendar UID {appointment.uid}, sequence {appointment.sequence})")
        _say_mail(mail, "invitation")


@app.command("cancel")
def cancel_command(
    ref: str = _ID,
    step: str = _STEP,
    reason: str = typer.Option("", "--reason", help="Why (recorded, and told to the applicant)."),
    by: str = by_option(),
) -> None:
    """Cancel a scheduled meeting: the calendar cancellation and a mail; the state goes back."""
    services = load_services()
    with _refusals(), transaction(services.engine) as session:
        appointment, mail = use_case.cancel(session, services, ref, step, actor=by, reason=reason)
        owner = use_case.find(session, ref)
        typer.echo(f"{ref}: {appointment.step} cancelled (calendar UID {appointment.uid}, "
                   f"sequence {appointment.sequence}); state now {owner.state}")
        _say_mail(mail, "cancellation")


@app.command("complete")
def complete_command(ref: str = _ID, by: str = by_option()) -> None:
    """After the follow-up: completed, with the closing thank-you (a desk request: marked done)."""
    services = load_services()
    with _refusals(), transaction(services.engine) as session:
        owner, mail = use_case.complete(session, services, ref, actor=by)
        typer.echo(f"{ref}: {owner.state}")
        if owner.state == "completed":  # a desk request's "done" sends nothing
            _say_mail(mail, "closing thank-you")


def _say_mail(mail, what: str) -> None:
    if mail is None:
        typer.echo(f"mailbot: no {what} mailed: every address is held after a bounce (mailbot held)", err=True)
    else:
        typer.echo(f"{what} queued to {', '.join(mail.to_addrs)} (sent by the next cycle)")


@contextmanager
def _refusals() -> Iterator[None]:
    """A refused action (or a template that cannot render) exits 1 with ``mailbot: <why>``;
    it is raised inside the transaction, so nothing of it is committed."""
    try:
        yield
    except MailbotError as exc:
        typer.echo(f"mailbot: {exc}", err=True)
        raise typer.Exit(1) from None
