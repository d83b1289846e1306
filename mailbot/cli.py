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

With several programs in the config ([[programs]]), every command takes
``--program ID``; it is needed for a staff command (exit 2 naming the ids
without it), while ``run``, ``health`` and ``db upgrade|current`` serve every
program when none is named.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
import inspect as introspect
import json
from pathlib import Path
from typing import Optional

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


def load_programs() -> dict[str, config_module.Settings]:
    """The programs from --config (only the one --program names, if given); a bad config exits 1,
    an unknown --program exits 2 naming the ids."""
    try:
        programs = config_module.load_programs(state["config"])
        chosen = state.get("program")
        return programs if chosen is None else {chosen: config_module.choose(programs, chosen)}
    except config_module.ProgramChoiceError as exc:
        typer.echo(f"mailbot: {exc}", err=True)
        raise typer.Exit(2) from None
    except ConfigError as exc:
        typer.echo(f"mailbot: {exc}", err=True)
        raise typer.Exit(1) from None


def load_settings() -> config_module.Settings:
    """The one program a staff command works on: the only one, or --program's (exit 2 without it)."""
    programs = load_programs()
    if len(programs) > 1:
        typer.echo(f"mailbot: the config has several programs ({', '.join(programs)}): "
                   f"name one with --program ID", err=True)
        raise typer.Exit(2)
    return next(iter(programs.values()))


def load_services():
    """The services of the program a staff command works on (see load_settings); a bad config,
    rule, template or schema exits 1 with its message."""
    settings = load_settings()
    configure_logs([settings])
    return services_of(settings)


def load_all_services() -> list:
    """Every program's services (or --program's), sharing one PDF reader pool: what `run` serves."""
    from mailbot.services import build_all

    programs = load_programs()
    configure_logs(list(programs.values()))
    with _start_errors():
        return build_all(programs)


def services_of(settings: config_module.Settings):
    """One program's services; a bad rule, template or schema exits 1 with its message."""
    from mailbot.services import build

    with _start_errors():
        return build(settings)


def configure_logs(programs: list[config_module.Settings]) -> None:
    """The log as [service] log_format says (shared by every program), every program's secrets scrubbed."""
    logs.configure(programs[0].service.log_format, bool(state.get("verbose")),
                   secrets=[secret for settings in programs for secret in logs.secrets_of(settings)])


@contextmanager
def _start_errors() -> Iterator[None]:
    """A bad rule, template or schema exits 1 with its message (naming the file)."""
    try:
        yield
    except (ConfigError, RulesError, TemplateError, SchemaError) as exc:
        # The schema module does not know which config file was used; the command line does.
        message = str(exc).replace("--config <path>", f"--config {state['config']}")
        typer.echo(f"mailbot: {message}", err=True)
        raise typer.Exit(1) from None


@app.command()
def run(once: bool = typer.Option(False, "--once", help="Poll, process, send, then exit.")) -> None:
    """Watch the mailboxes and answer applications (a daemon, or one cycle with --once), for every
    program of the config (or --program's)."""
    from mailbot import daemon, programs

    every = load_all_services()
    if not once:
        try:
            daemon.run_forever(every)
        except ConfigError as exc:  # e.g. the metrics port is taken
            typer.echo(f"mailbot: {exc}", err=True)
            raise typer.Exit(1) from None
        return
    programs.label_log_lines()
    unreachable = []
    for services in every:
        with programs.working_on(services.program_id):
            report = daemon.run_once(services)
        named = "" if services.program_id == config_module.DEFAULT_PROGRAM else f"program={services.program_id} "
        if report.poll is None:
            unreachable.append(services.program_id)
            continue
        typer.echo(f"{named}stored={report.poll.stored} processed={report.poll.processed} "
                   f"moved={report.poll.moved} sent={report.sent} retried={report.retried} failed={report.failed}")
    if unreachable:
        which = "" if unreachable == [config_module.DEFAULT_PROGRAM] else f" of {', '.join(unreachable)}"
        typer.echo(f"mailbot: the mailbox{which} could not be polled (see the log)", err=True)
        raise typer.Exit(1)


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


#: Commands about no program's data: no --program.
WITHOUT_PROGRAM = {"demo"}


def _program_option_on_every_command() -> None:
    """``--program ID`` on every command (db's too) but demo, without each one declaring it:
    the option is stored in ``state`` before the command runs, and load_programs reads it."""
    infos = [*app.registered_commands,
             *(info for group in app.registered_groups for info in group.typer_instance.registered_commands)]
    for info in infos:
        name = info.name or info.callback.__name__
        if name not in WITHOUT_PROGRAM:
            info.callback = _with_program_option(info.callback)


def _with_program_option(callback):
    @functools.wraps(callback)
    def command(*args, program: Optional[str] = None, **kwargs):
        state["program"] = program
        return callback(*args, **kwargs)

    signature = introspect.signature(callback, eval_str=True)
    option = introspect.Parameter(
        "program", introspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
        default=typer.Option(None, "--program", metavar="ID",
                             help="The program (its id in the config) when the config has several."))
    command.__signature__ = signature.replace(parameters=[*signature.parameters.values(), option])
    command.__annotations__ = {**callback.__annotations__, "program": Optional[str]}
    return command


_add_area_commands()
_program_option_on_every_command()

if __name__ == "__main__":
    # Run as `python -m mailbot.cli`, this file is __main__, a second copy of the module:
    # the area commands registered on mailbot.cli's app, so run that one.
    from mailbot.cli import app as _app

    _app()
