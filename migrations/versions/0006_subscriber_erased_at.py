"""subscribers.erased_at: erasure recorded as a time, not read from the address

Revision ID: 0006_subscriber_erased_at
Revises: 0005_ledger_cursor
Create Date: 2026-11-25 11:15:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0006_subscriber_erased_at'
down_revision = '0005_ledger_cursor'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True))
    # Subscribers erased before the column existed are known by their anonymised address.
    op.execute(
        "UPDATE subscribers SET erased_at = CURRENT_TIMESTAMP"
        " WHERE email LIKE '%@erased.invalid'"
    )


def downgrade():
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_column('erased_at')
