"""failures of scheduled work: attempts, next attempt, last error and parking

Revision ID: 0007_unit_failures
Revises: 0006_subscriber_erased_at
Create Date: 2026-11-26 09:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0007_unit_failures'
down_revision = '0006_subscriber_erased_at'
branch_labels = None
depends_on = None


def upgrade():
    # Feeds already count failures in a row and back off (consecutive_failures,
    # next_poll_at, last_error); they only need to be parkable.
    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parked_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('alert_attempts', sa.Integer(), server_default='0', nullable=False)
        )
        batch_op.add_column(
            sa.Column('alert_next_attempt_at', sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column('alert_last_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('alert_parked_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('digest_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('parked_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('digest_runs', schema=None) as batch_op:
        batch_op.drop_column('parked_at')
        batch_op.drop_column('last_error')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('attempts')
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.drop_column('alert_parked_at')
        batch_op.drop_column('alert_last_error')
        batch_op.drop_column('alert_next_attempt_at')
        batch_op.drop_column('alert_attempts')
    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.drop_column('parked_at')
