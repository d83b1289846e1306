"""Step 03 staff commands: `mailbot documents`, `mailbot request-documents`.

    mailbot documents ID [--json] [--save DIR]   what arrived, what is still missing; --save writes the files
    mailbot request-documents ID --reason TEXT [--note TEXT] [--by NAME]
                                                 a received document is unusable: ask again (blanks attached)

The files themselves stay in the raw mails they came with; --save takes
them out of there, so staff can open them without going to the mailbox.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlmodel import Session

from mailbot import adoption
from mailbot import documents as step03
from mailbot.cli import app, load_services
from mailbot.commands import by_option
from mailbot.db import WITHOUT_RAW, raw_mail, transaction
from mailbot.errors import MailError, WorkflowError
from mailbot.intake import mime
from mailbot.models import RawMessage


@app.command("documents")
def documents_command(
    number: str = typer.Argument(..., metavar="ID", help="The reception number."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    save: Path = typer.Option(None, "--save", metavar="DIR", file_okay=False,
                              help="Also write the received files into DIR."),
) -> None:
    """The step-03 documents of one application: received files and what is still missing."""
    with Session(load_services().engine) as session:
        data = step03.summary(session, _find(session, number))
        saved = _save(session, data["documents"], save) if save else []
    if as_json:
        typer.echo(json.dumps({**data, "saved": [str(p) for p in saved]}, ensure_ascii=False, indent=2))
        return
    _print(Console(), data)
    for path in saved:
        typer.echo(f"saved {path}")


@app.command("request-documents")
def request_documents(
    number: str = typer.Argument(..., metavar="ID", help="The reception number."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the history)."),
    note: str = typer.Option(None, "--note", help="Text for the applicant, quoted in the mail."),
    by: str = by_option(),
) -> None:
    """Ask again for the documents (documents_received -> documents_requested); the blanks are attached."""
    services = load_services()
    try:
        with transaction(services.engine) as session:
            app_ = _find(session, number)
            mail = step03.request_again(session, services, app_, actor=by, reason=reason, note=note)
            to = ", ".join(mail.to_addrs) if mail else None
    except WorkflowError as exc:
        typer.echo(f"mailbot: {exc}", err=True)
        raise typer.Exit(1) from None
    sent = f"mail queued to {to}" if to else "NO mail: every address is held after a bounce"
    typer.echo(f"{number}: documents_requested again; {sent}")


def _find(session: Session, number: str):
    try:
        return adoption.find(session, number)
    except WorkflowError as exc:
        typer.echo(f"mailbot: {exc}", err=True)
        raise typer.Exit(1) from None


def _save(session: Session, files: list[dict], folder: Path) -> list[Path]:
    """Write each recorded file, taken from its raw mail by its sha256, as DIR/<id>-<name>."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for number, item in enumerate(files, 1):
        data = _file_bytes(session, item["raw_message_id"], item["sha256"])
        if data is None:
            typer.echo(f"mailbot: {item['filename']}: not found in its mail any more", err=True)
            continue
        # Only the last path part of the applicant's name: "../x" must not leave DIR.
        path = folder / f"{number:02d}-{Path(item['filename']).name or 'document'}"
        path.write_bytes(data)
        written.append(path)
    return written


def _file_bytes(session: Session, raw_id: int | None, sha256: str) -> bytes | None:
    if not raw_id or session.get(RawMessage, raw_id, options=[WITHOUT_RAW]) is None:
        return None
    try:
        attachments = mime.parse(raw_mail(session, raw_id)).attachments
    except MailError:
        return None
    return next((a.data for a in attachments if hashlib.sha256(a.data).hexdigest() == sha256), None)


def _print(console: Console, data: dict) -> None:
    missing = "、".join(step03.TITLES[k] for k in data["missing"]) or "-"
    console.print(f"[bold]{data['reception_number']}[/bold]  {data['state']}  "
                  f"requested: {_short(data['requested_at'])}  missing: {missing}")
    table = Table(title="documents received", title_justify="left")
    for column in ("received", "document", "file", "size", "sha256", "mail", "this request"):
        table.add_column(column)
    for doc in data["documents"]:
        table.add_row(*(Text(str(cell)) for cell in (
            _short(doc["received_at"]), doc["title"], doc["filename"], doc["size"], doc["sha256"][:12],
            doc["raw_message_id"] or "-", "yes" if doc["current_request"] else "no")))
    console.print(table)


def _short(iso: str | None) -> str:
    return iso[:16].replace("T", " ") if iso else "-"
