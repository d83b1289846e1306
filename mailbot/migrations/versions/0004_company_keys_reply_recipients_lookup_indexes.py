"""application company keys, reply_recipient, indexes for the per-message lookups

Three lookups made every new message cost more than the one before it in an
opening-day burst; each is now an indexed lookup:
- "has this company applied already" compared each new application with
  every active one of its region in Python: the application now keeps its
  name and corporate number as compared (mailbot.companies) in two indexed
  columns, filled here for the rows there are;
- the loop guard ("how many automatic mails went to this address lately")
  searched the recipients' text of every reply of the window: reply_recipient
  holds one row per recipient of each automatic mail, filled here from the
  outbox;
- each processed message's log line reads back the mails and transitions it
  wrote: outbox.raw_message_id and transition.raw_message_id are indexed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 06:10:00
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from mailbot.companies import company_key, corporate_digits

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'reply_recipient',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('outbox_id', sa.Integer(), nullable=False),
        sa.Column('address', sa.String(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('reply_recipient', schema=None) as batch_op:
        batch_op.create_index('ix_reply_recipient_address_created_at', ['address', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_reply_recipient_outbox_id'), ['outbox_id'], unique=False)
    _fill_reply_recipients()

    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.add_column(sa.Column('company_key', sa.String(), nullable=True))
        batch_op.add_column(sa.Column('corporate_digits', sa.String(), nullable=True))
        batch_op.create_index(batch_op.f('ix_application_company_key'), ['company_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_application_corporate_digits'), ['corporate_digits'], unique=False)
    _fill_company_keys()

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_raw_message_id'), ['raw_message_id'], unique=False)

    with op.batch_alter_table('transition', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transition_raw_message_id'), ['raw_message_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('transition', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transition_raw_message_id'))

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_raw_message_id'))

    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_application_corporate_digits'))
        batch_op.drop_index(batch_op.f('ix_application_company_key'))
        batch_op.drop_column('corporate_digits')
        batch_op.drop_column('company_key')

    with op.batch_alter_table('reply_recipient', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reply_recipient_outbox_id'))
        batch_op.drop_index('ix_reply_recipient_address_created_at')
    op.drop_table('reply_recipient')


def _fill_reply_recipients() -> None:
    """One row per recipient of each automatic mail already queued or sent (as models.py writes them)."""
    outbox = sa.table("outbox", sa.column("id", sa.Integer), sa.column("to_addrs", sa.Text),
                      sa.column("automatic", sa.Boolean), sa.column("created_at", sa.DateTime(timezone=True)))
    recipients = sa.table("reply_recipient", sa.column("outbox_id", sa.Integer), sa.column("address", sa.String),
                          sa.column("created_at", sa.DateTime(timezone=True)))
    conn = op.get_bind()
    rows = conn.execute(sa.select(outbox.c.id, outbox.c.to_addrs, outbox.c.created_at)
                        .where(outbox.c.automatic == sa.true())).all()
    values = [{"outbox_id": row_id, "address": address.lower(), "created_at": created_at}
              for row_id, to_addrs, created_at in rows for address in _addresses(to_addrs)]
    if values:
        conn.execute(recipients.insert(), values)


def _addresses(to_addrs) -> list[str]:
    """The JSON column as read through a plain table: text on SQLite, already a list on PostgreSQL."""
    return json.loads(to_addrs) if isinstance(to_addrs, str) else list(to_addrs)


def _fill_company_keys() -> None:
    """The keys of the applications already stored, as the model computes them on every write."""
    application = sa.table("application", sa.column("id", sa.Integer), sa.column("company_name", sa.String),
                           sa.column("corporate_number", sa.String), sa.column("company_key", sa.String),
                           sa.column("corporate_digits", sa.String))
    conn = op.get_bind()
    rows = conn.execute(sa.select(application.c.id, application.c.company_name,
                                  application.c.corporate_number)).all()
    for app_id, name, number in rows:
        conn.execute(application.update().where(application.c.id == app_id).values(
            company_key=company_key(name), corporate_digits=corporate_digits(number)))
