"""folder_state: failed_polls and poll_error

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 02:30:15.290769
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('folder_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failed_polls', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('poll_error', sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('folder_state', schema=None) as batch_op:
        batch_op.drop_column('poll_error')
        batch_op.drop_column('failed_polls')
