"""The `mailbot` command: thin wrappers that parse arguments and call a use case.

    mailbot [--config PATH] run [--once]     the daemon, or one cycle
    mailbot [--config PATH] inspect FILE.pdf [--json]
    mailbot [--config PATH] status [--json]
    mailbot [--config PATH] messages [--class C] [--limit N] [--json]
    mailbot [--config PATH] quarantined [--json] | reprocess ID
    mailbot [--config PATH] held [--release ADDRESS]
    mailbot [--config PATH] digest --preview [--html] | --send
    mailbot [--config PATH] health                       exit 0/1 with the reasons
    mailbot [--config PATH] db upgrade | current         the database schema
    mailbot demo                              everything on 127.0.0.1, no outside server
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mailbot import config as config_module
from mailbot import logs
from mailbot.errors import ConfigError, PdfError, RulesError, SchemaError, TemplateError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])
state: dict[str, object] = {}


@app.callback()
def main(
    config: Path = typer.Option(Path("config.toml"), "--config", "-c", help="The config file."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug detail."),
) -> None:
    """mailbot: the e-mail intake of JETRO's trade-secret leakage prevention support."""
    state["config"] = config
    state["verbose"] = verbose
    # Plain text until the config is read: a config error is for a person at a terminal.
    logs.configure("text", verbose)


def load_services():
    """The services from --config; a bad config, rule, template or schema exits 1 with its message."""
    from mailbot.services import build

    try:
        settings = config_module.load(state["config"])
        logs.configure(settings.service.log_format, bool(state.get("verbose")),
                       secrets=logs.secrets_of(settings))
        return build(settings)
    except (ConfigError, RulesError, TemplateError, SchemaError) as exc:
        # The schema module does not know which config file was used; the command line does.
        message = str(exc).replace("--config <path>", f"--config {state['config']}")
        typer.echo(f"mailbot: {message}", err=True)
        raise typer.Exit(1) from None


@app.command()
def run(once: bool = typer.Option(False, "--once", help="Poll, process, send, then exit.")) -> None:
    """Watch the mailbox and answer applications (a daemon, or one cycle with --once)."""
    from mailbot import daemon

    services = load_services()
    if not once:
        try:
            daemon.run_forever(services)
        except ConfigError as exc:  # e.g. the metrics port is taken
            typer.echo(f"mailbot: {exc}", err=True)
            raise typer.Exit(1) from None
        return
    report = daemon.run_once(services)
    if report.poll is None:
        typer.echo("mailbot: the mailbox could not be polled (see the log)", err=True)
        raise typer.Exit(1)
    typer.echo(f"stored={report.poll.stored} processed={report.poll.processed} "
               f"moved={report.poll.moved} sent={report.sent} retried={report.retried} failed={report.failed}")


@app.command()
def inspect(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="The PDF to read."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON contract."),
) -> None:
    """Read one application PDF and show its fields, seal and problems (exit 2: unreadable)."""
    from mailbot import inspect as use_case

    services = load_services()
    try:
        reading, result = use_case.read_and_judge(file.read_bytes(), services.read_form, services.rulesets)
    except PdfError as exc:
        typer.echo(json.dumps(use_case.error_json(exc), ensure_ascii=False) if as_json
                   else f"{exc.code}: {exc.message}")
        raise typer.Exit(2) from None
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2) if as_json
               else use_case.as_text(reading, result))


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The applications in queue order, and the cap."""
    from mailbot import status as use_case

    services = load_services()
    result = use_case.status(services.engine, services.settings.program)
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2) if as_json else use_case.as_text(result))


@app.command()
def messages(
    mail_class: str = typer.Option(None, "--class", metavar="CLASS",
                                   help="Only this class: application, consultation, documents, "
                                        "question, automatic, junk."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The recent inbound mail, newest first: class, sender, subject and why it was sorted so."""
    from mailbot import status as use_case
    from mailbot.intake.classify import CLASSES

    if mail_class is not None and mail_class not in CLASSES:
        typer.echo(f"mailbot: --class must be one of {', '.join(CLASSES)}, not {mail_class!r}", err=True)
        raise typer.Exit(2)
    rows = use_case.messages(load_services().engine, mail_class, limit)
    typer.echo(json.dumps(rows, ensure_ascii=False, indent=2) if as_json else use_case.messages_as_text(rows))


@app.command()
def quarantined(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The mail that could not be processed, with its error (reprocess it by id)."""
    from mailbot import quarantine

    rows = quarantine.listing(load_services())
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        typer.echo(f"{row['id']:>6}  {row['arrived_at']}  {row['sender'] or '-'}  {row['subject'] or '-'}\n"
                   f"        {row['error']}")
    typer.echo(f"{len(rows)} quarantined" + ("; `mailbot reprocess ID` runs one again" if rows else ""))


@app.command()
def reprocess(raw_id: int = typer.Argument(..., metavar="ID", help="The stored message's id.")) -> None:
    """Run a quarantined message through the path again, once its cause is fixed."""
    from mailbot import quarantine
    from mailbot.errors import MailbotError

    try:
        outcome = quarantine.reprocess(load_services(), raw_id)
    except MailbotError as exc:
        typer.echo(f"mailbot: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"message {raw_id}: {outcome}")
    if outcome == "quarantined":
        raise typer.Exit(1)


@app.command()
def held(release: str = typer.Option(None, "--release", metavar="ADDRESS",
                                     help="Clear the hold on this address.")) -> None:
    """Addresses our mail bounced from (no automatic mail goes there); --release clears one."""
    from mailbot import bounces
    from mailbot.db import transaction

    services = load_services()
    with transaction(services.engine) as session:
        if release:
            released = bounces.release(session, release)
            typer.echo(f"{release}: {'released' if released else 'was not held'}")
            return
        rows = bounces.listing(session)
        for row in rows:
            typer.echo(f"{row.address}  {row.held_at:%Y-%m-%d %H:%M}  {row.reason}")
        typer.echo(f"{len(rows)} held")


@app.command()
def demo() -> None:
    """Run the whole path on sample mail with a local IMAP server and SMTP sink."""
    from mailbot import demo as use_case

    raise typer.Exit(use_case.main())


def _add_area_commands() -> None:
    """The commands of mailbot/commands/*.py (adoption, schedule, hours, ...)."""
    import importlib
    import pkgutil

    from mailbot import commands

    for module in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"{commands.__name__}.{module.name}")


_add_area_commands()

if __name__ == "__main__":
    # Run as `python -m mailbot.cli`, this file is __main__, a second copy of the module:
    # the area commands registered on mailbot.cli's app, so run that one.
    from mailbot.cli import app as _app

    _app()
