"""`mailbot db upgrade` and `mailbot db current`: the database schema's revision, and the upgrade.

Both open the database without the schema check every other command does
(that check is what refuses an old database), from the config alone: no
rules, templates or mail server are needed to upgrade.
"""

from __future__ import annotations

import typer
from sqlalchemy.exc import SQLAlchemyError

from mailbot import config as config_module
from mailbot import schema
from mailbot.cli import app, state
from mailbot.db import open_engine
from mailbot.errors import ConfigError, SchemaError

db_app = typer.Typer(no_args_is_help=True, help="The database schema: its revision, and the upgrade.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def upgrade() -> None:
    """Bring the database to this mailbot's schema (back the database up first)."""
    url = _database_url()
    try:
        before = _current(url)
        reached = schema.upgrade(url)
    except (SchemaError, SQLAlchemyError) as exc:
        typer.echo(f"mailbot: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"database schema: {before or 'none'} -> {reached}"
               + (" (already up to date)" if before == reached else ""))


@db_app.command("current")
def current() -> None:
    """The database's schema revision and this mailbot's (exit 1: an upgrade or a newer mailbot is needed)."""
    engine = open_engine(_database_url())
    try:
        found, empty = schema.current(engine), schema.is_empty(engine)
    except SQLAlchemyError as exc:
        typer.echo(f"mailbot: the database cannot be read: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    typer.echo(f"current: {found or 'none'}\nhead:    {schema.head()}")
    if found == schema.head() or empty:
        typer.echo("up to date" if found else "empty: the first start creates it at the head")
    elif found is not None and not schema.knows(found):
        typer.echo("newer than this mailbot: run the mailbot that upgraded it (no downgrade is done)")
        raise typer.Exit(1)
    else:
        typer.echo(f"upgrade needed: mailbot --config {state['config']} db upgrade")
        raise typer.Exit(1)


def _database_url() -> str:
    """[database] url from --config; a bad config exits 1 with its message."""
    try:
        return config_module.load(state["config"]).database_url
    except ConfigError as exc:
        typer.echo(f"mailbot: {exc}", err=True)
        raise typer.Exit(1) from None


def _current(url: str) -> str | None:
    engine = open_engine(url)
    try:
        return schema.current(engine)
    finally:
        engine.dispose()
