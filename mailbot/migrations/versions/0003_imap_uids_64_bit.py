"""IMAP uid, uidvalidity and uidnext columns as 64-bit integers

IMAP gives UIDs and UIDVALIDITY as 32-bit unsigned numbers (up to
4294967295): past PostgreSQL's INTEGER, whose limit is 2147483647, and a
server that numbers that high would make every poll fail. SQLite's INTEGER
holds 64 bits already; there the batch copies the tables once and nothing else
changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 03:11:58
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

#: table -> its IMAP number columns and whether each may be NULL
COLUMNS = {
    "application": {"queued_uid": True},
    "folder_state": {"uidvalidity": True, "uidnext": True},
    "raw_message": {"uidvalidity": False, "uid": False},
}


def upgrade() -> None:
    _retype(sa.INTEGER(), sa.BigInteger())


def downgrade() -> None:
    _retype(sa.BigInteger(), sa.INTEGER())


def _retype(was, becomes) -> None:
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, nullable in columns.items():
                batch_op.alter_column(column, existing_type=was, type_=becomes, existing_nullable=nullable)
