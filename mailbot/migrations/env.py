"""alembic's entry point: compare and migrate against every mailbot table.

mailbot.schema always hands over an open connection (config.attributes
["connection"]), so this file never builds an engine of its own and the
SQLite tuning of mailbot.db applies to migrations too.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from mailbot import models, tables  # noqa: F401  (registers the tables on SQLModel.metadata)

target_metadata = SQLModel.metadata


def render_item(kind: str, item, autogen_context):
    """Write mailbot's column types as plain SQLAlchemy types in new revisions.

    A revision must not import mailbot.models: the models move on, the
    revision stays as it was. UtcDateTime only converts in Python; in the
    database it is a DateTime with time zone.
    """
    if kind != "type":
        return False
    if isinstance(item, AutoString):
        return f"sa.String(length={item.length})" if item.length else "sa.String()"
    if isinstance(item, models.UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_online() -> None:
    """Run the pending revisions on the connection mailbot.schema opened."""
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place: batch mode copies the table; a no-op elsewhere.
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("mailbot migrations run online only: use `mailbot db upgrade`")
run_migrations_online()
