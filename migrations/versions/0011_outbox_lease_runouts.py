"""outbox: how many of a row's leases ran out (WORKER_MAX_ATTEMPTS counts these, not sends)

Revision ID: 0011_outbox_lease_runouts
Revises: 0010_article_url_index
Create Date: 2026-12-01 21:00:00

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0011_outbox_lease_runouts'
down_revision = '0010_article_url_index'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('lease_runouts', sa.Integer(), server_default='0', nullable=False)
        )


def downgrade():
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('lease_runouts')
