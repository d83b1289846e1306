"""Step 02 staff commands: `mailbot adopt`, `mailbot decline`, `mailbot withdraw`.

    mailbot adopt [ID ...] [--reason TEXT] [--by NAME]   next in queue order up to the cap, or these
    mailbot decline ID --reason TEXT [--note TEXT] [--by NAME]
    mailbot withdraw ID [--reason TEXT] [--by NAME]      the applicant withdrew (辞退)

Each command is one transaction: every change and every mail it causes, or
none (a refused application refuses the whole command). The mails wait in
the outbox and go out with the service's next cycle (`mailbot run --once`).
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from mailbot import adoption
from mailbot.cli import app, load_services
from mailbot.commands import by_option
from mailbot.db import transaction
from mailbot.errors import MailbotError


@app.command()
def adopt(
    numbers: list[str] = typer.Argument(None, metavar="[ID ...]",
                                        help="Reception numbers; none = the next in queue order."),
    reason: str = typer.Option(None, "--reason", help="Why (needed out of queue order; kept in the history)."),
    by: str = by_option(),
) -> None:
    """Adopt the next queued applications up to the cap, or the ones named (step 02)."""
    def work(session, services):
        if numbers:
            return adoption.adopt_named(session, services, numbers, actor=by, reason=reason)
        return adoption.adopt_next(session, services, actor=by, reason=reason)

    outcomes = _run(work)
    if not outcomes:
        typer.echo("nothing to adopt: no queued application, or the cap is reached")
    for outcome in outcomes:
        _say(outcome, "adopted; adoption mail with the two documents")


@app.command()
def decline(
    number: str = typer.Argument(..., metavar="ID", help="The reception number."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the history, not mailed)."),
    note: str = typer.Option(None, "--note", help="Text for the applicant, quoted in the mail."),
    by: str = by_option(),
) -> None:
    """Decline an application (received, needs_fix, queued or waitlisted) with a reason."""
    outcome = _run(lambda session, services: adoption.decline(
        session, services, adoption.find(session, number), actor=by, reason=reason, note=note))
    _say(outcome, "declined; decline notice")


@app.command()
def withdraw(
    number: str = typer.Argument(..., metavar="ID", help="The reception number."),
    reason: str = typer.Option(None, "--reason", help="What the applicant said (history)."),
    by: str = by_option(),
) -> None:
    """Record that the applicant withdrew (辞退); a freed place goes to the waiting list."""
    outcome = _run(lambda session, services: adoption.withdraw(
        session, services, adoption.find(session, number), actor=by, reason=reason))
    _say(outcome, "withdrawn; acknowledgement")


def _run(work: Callable):
    """``work(session, services)`` in one transaction; a refusal exits 1 with its message.

    Besides a refused move (WorkflowError), a template missing in the applicant's
    language or a configured document file that is not there stop the command
    the same way, with nothing changed.
    """
    services = load_services()
    try:
        with transaction(services.engine) as session:
            return work(session, services)
    except MailbotError as exc:
        typer.echo(f"mailbot: {exc}", err=True)
        raise typer.Exit(1) from None


def _say(outcome: adoption.Outcome, what: str) -> None:
    """One line per application changed, and one for the waiting list's turn."""
    app_ = outcome.app
    mail = (f"queued to {', '.join(outcome.mail.to_addrs)}" if outcome.mail
            else "NOT queued: every address is held after a bounce (mailbot held)")
    typer.echo(f"{app_.reception_number}  {app_.company_name or '-'}: {what} {mail}")
    if outcome.promoted is not None:
        state = outcome.promoted.app.state
        _say(outcome.promoted, "moved up from the waiting list, now " + state + ";"
             + (" adoption mail" if state != "queued" else " 繰り上げ mail"))
