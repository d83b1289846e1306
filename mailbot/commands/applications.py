"""What staff look at for step 02 onwards: `mailbot applications` and `mailbot show`.

    mailbot applications [--state S] [--json]   every application in queue order
    mailbot show ID [--json]                    one application: fields, seal, problems,
                                                history, every mail sent to it, step-03
                                                documents, meetings, hours

Both read only. ``listing`` and ``details`` give the same data as plain
dicts (the --json output) for other tools; the position shown is where an
application stands now (``admission.live_positions``), which after a
withdrawal can be ahead of the number its receipt gave.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlmodel import Session, select

from mailbot import admission, documents, hours, schedule, workflow
from mailbot.cli import app, load_services
from mailbot.errors import WorkflowError
from mailbot.models import Application, OutboxMessage, RawMessage


@app.command()
def applications(
    state: str = typer.Option(None, "--state", metavar="STATE", help="Only this state."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every application in queue order: state, company, region, hours, position, seal."""
    if state is not None and state not in workflow.STATES:
        typer.echo(f"mailbot: --state must be one of {', '.join(sorted(workflow.STATES))}, "
                   f"not {state!r}", err=True)
        raise typer.Exit(2)
    with Session(load_services().engine) as session:
        rows = listing(session, state)
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    Console().print(_listing_table(rows))
    typer.echo(f"{len(rows)} application(s)")


@app.command()
def show(
    number: str = typer.Argument(..., metavar="ID", help="The reception number."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """One application: fields, seal verdict, problems, full history, every mail sent."""
    services = load_services()
    with Session(services.engine) as session:
        try:
            data = details(session, services, number)
        except WorkflowError as exc:
            typer.echo(f"mailbot: {exc}", err=True)
            raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    _print_details(Console(), data)


# --- the data ---------------------------------------------------------------------


def listing(session: Session, state: str | None = None) -> list[dict[str, Any]]:
    """The applications (of one state when given) in queue order, as plain dicts."""
    query = select(Application, RawMessage.arrived_at).join(
        RawMessage, RawMessage.id == Application.raw_message_id, isouter=True)
    if state is not None:
        query = query.where(Application.state == state)
    found = sorted(session.exec(query).all(), key=lambda row: _queue_key(row[0]))
    positions = admission.live_positions(session)
    return [_summary(app_, arrived, positions.get(app_.id)) for app_, arrived in found]


def details(session: Session, services, reception_number: str) -> dict[str, Any]:
    """One application: its summary, fields, seal, problems, history, mails and hours."""
    app_ = session.exec(select(Application).where(
        Application.reception_number == reception_number.strip())).first()
    if app_ is None:
        raise WorkflowError(f"no application {reception_number!r}")
    arrived = session.get(RawMessage, app_.raw_message_id).arrived_at if app_.raw_message_id else None
    data = _summary(app_, arrived, admission.live_positions(session).get(app_.id))
    data.update(
        sender=app_.sender, contact_email=app_.contact_email, corporate_number=app_.corporate_number,
        position_given=app_.position, fields=app_.fields, seal_reading=app_.seal, problems=app_.problems,
        history=[_transition(t) for t in workflow.history(session, app_)],
        mails=[_mail(m) for m in session.exec(select(OutboxMessage).where(
            OutboxMessage.application_id == app_.id).order_by(OutboxMessage.id))],
        documents=documents.summary(session, app_),
        meetings=[_meeting(m) for m in schedule.appointments(session, app_)],
        hours=hours.summary(session, services, app_).as_json(),
    )
    return data


def _meeting(row) -> dict[str, Any]:
    return {"step": row.step, "state": row.state, "starts_at": _iso(row.starts_at), "minutes": row.minutes,
            "when": schedule.when(admission.as_utc(row.starts_at), row.minutes), "place": row.place,
            "url": row.url, "expert": row.expert, "uid": row.uid, "sequence": row.sequence}


def seal_verdict(seal: dict[str, Any] | None) -> str:
    """The seal in one word for the table: ok, away from the field, missing, or - (not read)."""
    if not seal:
        return "-"
    if not seal.get("present"):
        return "missing"
    return "ok" if seal.get("near_field") else "away from the field"


def _summary(app_: Application, arrived, position: int | None) -> dict[str, Any]:
    return {
        "reception_number": app_.reception_number, "state": app_.state,
        "company_name": app_.company_name, "country": app_.country,
        "hours_requested": app_.hours_requested, "received_at": _iso(arrived or app_.created_at),
        "queued_at": _iso(app_.queued_at), "position": position, "seal": seal_verdict(app_.seal),
    }


def _transition(row) -> dict[str, Any]:
    return {"from": row.from_state, "to": row.to_state, "by": row.actor, "at": _iso(row.at),
            "reason": row.reason}


def _mail(row: OutboxMessage) -> dict[str, Any]:
    return {"kind": row.kind, "subject": row.subject, "status": row.status, "to": row.to_addrs,
            "created_at": _iso(row.created_at), "sent_at": _iso(row.sent_at),
            "error": row.last_error}


def _queue_key(app_: Application):
    # Queued and waitlisted by the arrival of the complete form; the others after, by number.
    return (app_.queued_at is None, admission.as_utc(app_.queued_at or app_.created_at),
            app_.queued_uid or 0, app_.reception_number)


def _iso(moment) -> str | None:
    return admission.as_utc(moment).isoformat(timespec="seconds") if moment else None


# --- the terminal -------------------------------------------------------------------


def _listing_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="applications in queue order (times in Japan time)")
    for column in ("reception", "state", "company", "region", "hours", "received", "queued",
                   "pos", "seal"):
        table.add_column(column, justify="right" if column in ("hours", "pos") else "left")
    for row in rows:
        # Text, not markup: a company name like "[株]" must print as written.
        table.add_row(*(Text(_text(cell)) for cell in (
            row["reception_number"], row["state"], row["company_name"], row["country"],
            row["hours_requested"], _short(row["received_at"]), _short(row["queued_at"]),
            row["position"], row["seal"])))
    return table


def _print_details(console: Console, data: dict[str, Any]) -> None:
    console.print(f"[bold]{data['reception_number']}[/bold]  {data['state']}  "
                  f"{escape(data['company_name'] or '-')}  ({escape(data['country'] or '-')})")
    console.print(f"position now: {_text(data['position'])} (given: {_text(data['position_given'])})  "
                  f"seal: {data['seal']} {escape(_text(data['seal_reading']))}  "
                  f"hours asked: {_text(data['hours_requested'])}")
    console.print(_pairs("fields", {**data["fields"], "sender": data["sender"]}))
    if data["problems"]:
        console.print(_rows("problems", ["code", "severity", "message"], [
            [p.get("code"), p.get("severity"), p.get("message_ja") or p.get("message")]
            for p in data["problems"]]))
    console.print(_rows("history", ["at", "from", "to", "by", "why"], [
        [_short(h["at"]), h["from"] or "-", h["to"], h["by"], h["reason"]] for h in data["history"]]))
    console.print(_rows("mails", ["created", "kind", "status", "to", "subject"], [
        [_short(m["created_at"]), m["kind"], m["status"], ", ".join(m["to"]), m["subject"]]
        for m in data["mails"]]))
    _print_documents(console, data["documents"])
    if data["meetings"]:
        console.print(_rows("meetings", ["step", "state", "when (Japan time)", "place / url", "expert"], [
            [m["step"], m["state"], m["when"], m["place"] or m["url"], m["expert"]]
            for m in data["meetings"]]))
    _print_hours(console, data["hours"])


def _print_documents(console: Console, summary: dict[str, Any]) -> None:
    """Step 03: the files received (this request or earlier) and what is still missing."""
    if not summary["documents"] and not summary["requested_at"]:
        return
    console.print(_rows("step-03 documents", ["received", "document", "file", "this request"], [
        [_short(d["received_at"]), d["title"], d["filename"], "yes" if d["current_request"] else "no"]
        for d in summary["documents"]]))
    if summary["missing"]:
        missing = "、".join(documents.TITLES[kind] for kind in summary["missing"])
        console.print(f"still missing: {escape(missing)}")


def _print_hours(console: Console, ledger: dict[str, Any]) -> None:
    """The company's hours in this region (mailbot.hours.summary): used, left, each session."""
    kinds = "  ".join(f"{kind} {hours.hours_text(used)}" for kind, used in ledger["by_kind"].items())
    console.print(f"hours: {hours.hours_text(ledger['used'])} used of {hours.hours_text(ledger['cap'])}, "
                  f"{hours.hours_text(ledger['left'])} left ({ledger['percent_used']}%)  {kinds}  "
                  f"support ends {ledger['support_ends']}")
    if ledger["sessions"]:
        console.print(_rows("sessions", ["date", "kind", "hours", "by", "application", "note"], [
            [s["held_on"], s["kind"], s["hours"], s["recorded_by"], s["reception_number"], s["note"]]
            for s in ledger["sessions"]]))


def _pairs(title: str, values: dict[str, Any]) -> Table:
    return _rows(title, ["field", "value"], [[key, value] for key, value in values.items()])


def _rows(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(Text(_text(cell)) for cell in row))
    return table


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _short(iso: str | None) -> str:
    """An ISO UTC time as staff in Tokyo read it: 2026-06-01 09:01 (JST)."""
    if not iso:
        return "-"
    return datetime.fromisoformat(iso).astimezone(admission.TOKYO).strftime("%Y-%m-%d %H:%M")
