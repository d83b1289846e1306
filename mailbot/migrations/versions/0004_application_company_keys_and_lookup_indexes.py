"""application company keys; indexes for the per-message lookups

"Has this company applied already" compared each new application with every
active one of its region in Python (quadratic in an opening-day burst): the
application now keeps its name and corporate number as compared
(mailbot.companies) in two indexed columns, filled here for the rows there
are. Each processed message's log line reads back the mails and transitions
it wrote (outbox.raw_message_id, transition.raw_message_id), and the loop
guard counts a window of replies (outbox.created_at): indexed too.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 06:01:13.319986
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailbot.companies import company_key, corporate_digits

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.add_column(sa.Column('company_key', sa.String(), nullable=True))
        batch_op.add_column(sa.Column('corporate_digits', sa.String(), nullable=True))
        batch_op.create_index(batch_op.f('ix_application_company_key'), ['company_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_application_corporate_digits'), ['corporate_digits'], unique=False)
    _fill_company_keys()

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_raw_message_id'), ['raw_message_id'], unique=False)

    with op.batch_alter_table('transition', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transition_raw_message_id'), ['raw_message_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('transition', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transition_raw_message_id'))

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_raw_message_id'))
        batch_op.drop_index(batch_op.f('ix_outbox_created_at'))

    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_application_corporate_digits'))
        batch_op.drop_index(batch_op.f('ix_application_company_key'))
        batch_op.drop_column('corporate_digits')
        batch_op.drop_column('company_key')


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
