"""`mailbot health [--json]`: exit 0 when the service is healthy, 1 with the reasons when not."""

from __future__ import annotations

import json

import typer
from sqlalchemy.exc import SQLAlchemyError

from mailbot import checkup
from mailbot.cli import app, load_services


@app.command()
def health(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """For monitoring: last poll age, outbox backlog, quarantine, database (exit 1: unhealthy)."""
    try:
        report = checkup.check(load_services())
    except (OSError, SQLAlchemyError) as exc:  # the database cannot even be opened
        report = checkup.Checkup(problems=[f"database unreachable: {type(exc).__name__}: {exc}"])
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
