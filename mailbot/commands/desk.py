"""Staff command of the consultation desk: `mailbot consultations [--state S] [--json]`.

Scheduling a desk meeting is `mailbot schedule TS-C-... --step consultation`
(mailbot/commands/schedule.py).
"""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from mailbot import desk, schedule, staff
from mailbot.cli import app, load_services
from mailbot.db import transaction


@app.command("consultations")
def consultations(
    state: str = typer.Option(None, "--state", help="Only this state: received, needs_fix, scheduled, done, refused."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Consultation-desk requests (個別相談窓口), oldest first, with their meeting when set."""
    if state is not None and state not in desk.MOVES:
        typer.echo(f"mailbot: --state must be one of {', '.join(s for s in desk.MOVES if s != 'new')}", err=True)
        raise typer.Exit(2)
    services = load_services()
    with transaction(services.engine) as session:
        rows = [_row(session, request) for request in desk.listing(session, state)]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    Console().print(_table(rows))


def _row(session, request) -> dict:
    meeting = schedule.active(session, request, "consultation")
    return {
        "number": request.number, "id": request.id, "state": request.state,
        "program_year": request.program_year, "company_name": request.company_name,
        "corporate_number": request.corporate_number, "contact_name": request.contact_name,
        "contact_email": request.contact_email or request.sender, "received_at": request.created_at.isoformat(),
        "meeting": schedule.when(meeting.starts_at, meeting.minutes) if meeting else None,
        "expert": meeting.expert if meeting else None,
        "repeat_of": request.repeat_of, "problems": [p["code"] for p in request.problems],
        "topic": request.fields.get("topic"),
    }


def _table(rows: list[dict]) -> Table:
    table = Table(title=f"個別相談のお申し込み（{len(rows)}件）")
    for column in ("受付番号", "状態", "受信", "企業名", "担当者", "日時・専門家"):
        table.add_column(column)
    for row in rows:
        when = staff.when(_parse(row["received_at"]))
        meeting = f"{row['meeting']} {row['expert']}" if row["meeting"] else ", ".join(row["problems"])
        table.add_row(row["number"], row["state"], when, row["company_name"] or "-",
                      f"{row['contact_name'] or '-'} <{row['contact_email']}>", meeting or "-")
    return table


def _parse(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text)
