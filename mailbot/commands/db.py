"""`mailbot db upgrade` and `mailbot db current`: the database schema's revision, and the upgrade.

Both open the database without the schema check every other command does
(that check is what refuses an old database), from the config alone: no
rules, templates or mail server are needed to upgrade. With several programs
(config ``[[programs]]``) each program's database is upgraded or shown in
turn, its lines prefixed with the program's id (``--program ID``: that one only).
"""

from __future__ import annotations

import typer
from sqlalchemy.exc import SQLAlchemyError

from mailbot import schema
from mailbot.cli import app, load_programs, state
from mailbot.config import DEFAULT_PROGRAM
from mailbot.db import open_engine
from mailbot.errors import SchemaError

db_app = typer.Typer(no_args_is_help=True, help="The database schema: its revision, and the upgrade.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def upgrade() -> None:
    """Bring the database of every program (or --program's) to this mailbot's schema (back it up first)."""
    failed = False
    for prefix, url, _option in _database_urls():
        try:
            before = _current(url)
            reached = schema.upgrade(url)
        except (SchemaError, SQLAlchemyError) as exc:
            typer.echo(f"mailbot: {prefix}{exc}", err=True)
            failed = True  # the next program's database is still upgraded
            continue
        typer.echo(f"{prefix}database schema: {before or 'none'} -> {reached}"
                   + (" (already up to date)" if before == reached else ""))
    if failed:
        raise typer.Exit(1)


@db_app.command("current")
def current() -> None:
    """Each database's schema revision and this mailbot's (exit 1: an upgrade or a newer mailbot is needed)."""
    verdicts = [_show_current(*database) for database in _database_urls()]
    if not all(verdicts):
        raise typer.Exit(1)


def _show_current(prefix: str, url: str, option: str) -> bool:
    """Print one database's revision and what to do; True when it is usable as it is."""
    engine = open_engine(url)
    try:
        found, empty = schema.current(engine), schema.is_empty(engine)
    except SQLAlchemyError as exc:
        typer.echo(f"mailbot: {prefix}the database cannot be read: {exc}", err=True)
        return False
    finally:
        engine.dispose()
    typer.echo(f"{prefix}current: {found or 'none'}\n{prefix}head:    {schema.head()}")
    if found == schema.head() or empty:
        typer.echo(prefix + ("up to date" if found else "empty: the first start creates it at the head"))
        return True
    if found is not None and not schema.knows(found):
        typer.echo(f"{prefix}newer than this mailbot: run the mailbot that upgraded it (no downgrade is done)")
        return False
    typer.echo(f"{prefix}upgrade needed: mailbot --config {state['config']} db upgrade{option}")
    return False


def _database_urls() -> list[tuple[str, str, str]]:
    """(line prefix, [database] url, --program option) of every program from --config, or
    --program's; both empty for a config without [[programs]]. A bad config exits 1 with its message."""
    return [("", settings.database_url, "") if program_id == DEFAULT_PROGRAM
            else (f"{program_id}: ", settings.database_url, f" --program {program_id}")
            for program_id, settings in load_programs().items()]


def _current(url: str) -> str | None:
    engine = open_engine(url)
    try:
        return schema.current(engine)
    finally:
        engine.dispose()
