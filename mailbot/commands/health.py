"""`mailbot health [--json]`: exit 0 when the service is healthy, 1 with the reasons when not.

With several programs every one is checked (or only --program's), each line
naming its program; one unhealthy program makes the exit 1.
"""

from __future__ import annotations

import json

import typer
from sqlalchemy.exc import SQLAlchemyError

from mailbot import checkup
from mailbot.cli import app, configure_logs, load_programs, services_of


@app.command()
def health(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """For monitoring: last poll age, outbox backlog, quarantine, database (exit 1: unhealthy)."""
    programs = load_programs()
    configure_logs(list(programs.values()))
    # Each program on its own: one database that cannot be opened does not hide the others.
    report = checkup.combine({program_id: _check(settings) for program_id, settings in programs.items()})
    if as_json:
        typer.echo(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
    else:
        for line in report.problems:
            typer.echo(f"PROBLEM  {line}")
        for line in report.facts:
            typer.echo(f"ok       {line}")
        typer.echo("healthy" if report.healthy else "unhealthy")
    if not report.healthy:
        raise typer.Exit(1)


def _check(settings) -> checkup.Checkup:
    try:
        return checkup.check(services_of(settings))
    except (OSError, SQLAlchemyError) as exc:  # the database cannot even be opened
        return checkup.Checkup(problems=[f"database unreachable: {type(exc).__name__}: {exc}"])
