"""The staff digest by hand: `mailbot digest --preview [--html]`, `mailbot digest --send`.

    mailbot digest --preview          the text digest as it would go out now (no mail, the period stays)
    mailbot digest --preview --html   the HTML part instead (to open in a browser)
    mailbot digest --send             queue one now, then send the outbox; the next one starts here

The daemon sends it on [staff] digest_schedule by itself (mailbot.digest.send_if_due).
"""

from __future__ import annotations

import typer

from mailbot import digest, outbox
from mailbot.cli import app, load_services


@app.command("digest")
def digest_command(
    preview: bool = typer.Option(False, "--preview", help="Print the digest; nothing is sent or recorded."),
    send: bool = typer.Option(False, "--send", help="Send a digest now (it ends the period)."),
    html: bool = typer.Option(False, "--html", help="With --preview: print the HTML part."),
) -> None:
    """The staff digest: --preview prints it, --send mails it now to the staff list (digest_to)."""
    if preview == send:
        typer.echo("mailbot: give one of --preview or --send", err=True)
        raise typer.Exit(2)
    if html and not preview:
        typer.echo("mailbot: --html goes with --preview", err=True)
        raise typer.Exit(2)
    services = load_services()
    if preview:
        shown = digest.preview(services)
        typer.echo(shown.html if html else f"件名：{shown.subject}\n\n{shown.text}", nl=False)
        return
    _send(services)


def _send(services) -> None:
    run = digest.send_now(services)
    if run.outbox_id is None:
        typer.echo(f"mailbot: digest NOT mailed ({run.outcome}): no usable address in [staff] digest_to",
                   err=True)
        raise typer.Exit(1)
    result = outbox.send_pending(services.engine, services.settings.smtp)
    typer.echo(f"digest queued (outbox {run.outbox_id}, needs a person: {run.needs_person}); "
               f"outbox: sent={result.sent} retried={result.retried} failed={result.failed}")
    for error in result.errors:
        typer.echo(f"  {error}", err=True)
    if result.failed or result.retried:
        raise typer.Exit(1)
