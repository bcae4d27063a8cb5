"""suppressions, delivery events, SNS messages, sending pauses; outbox delivered and suppressed

Revision ID: 0008_delivery_feedback
Revises: 0007_unit_failures
Create Date: 2026-12-01 14:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0008_delivery_feedback'
down_revision = '0007_unit_failures'
branch_labels = None
depends_on = None

OLD_STATUSES = "status IN ('queued', 'sending', 'sent', 'failed')"
NEW_STATUSES = "status IN ('queued', 'sending', 'sent', 'delivered', 'failed', 'suppressed')"


def upgrade():
    op.create_table('delivery_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('outbox_id', sa.Integer(), nullable=True),
    sa.Column('provider_message_id', sa.String(length=255), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.CheckConstraint("kind IN ('delivery', 'permanent_bounce', 'transient_bounce', 'complaint')", name=op.f('ck_delivery_events_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_events'))
    )
    with op.batch_alter_table('delivery_events', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_events_email', ['email', 'kind', 'occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_delivery_events_outbox_id'), ['outbox_id'], unique=False)
        batch_op.create_index('ix_delivery_events_provider_message_id', ['provider_message_id'], unique=False)

    op.create_table('sending_pauses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('paused_by', sa.String(length=64), nullable=False),
    sa.Column('paused_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resumed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resumed_by', sa.String(length=64), nullable=True),
    sa.CheckConstraint("scope IN ('subscriptions', 'all')", name=op.f('ck_sending_pauses_scope')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sending_pauses'))
    )
    with op.batch_alter_table('sending_pauses', schema=None) as batch_op:
        batch_op.create_index('uq_sending_pauses_in_force', ['scope'], unique=True, sqlite_where=sa.text('resumed_at IS NULL'), postgresql_where=sa.text('resumed_at IS NULL'))

    op.create_table('sns_messages',
    sa.Column('message_id', sa.String(length=100), nullable=False),
    sa.Column('topic_arn', sa.String(length=256), nullable=False),
    sa.Column('message_type', sa.String(length=64), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('message_id', name=op.f('pk_sns_messages'))
    )
    with op.batch_alter_table('sns_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sns_messages_received_at'), ['received_at'], unique=False)

    op.create_table('suppressions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("reason IN ('bounce', 'complaint', 'transient_bounces', 'operator')", name=op.f('ck_suppressions_reason')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppressions')),
    sa.UniqueConstraint('email', name=op.f('uq_suppressions_email'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_outbox_provider_message_id', ['provider_message_id'], unique=False)
        batch_op.create_index('ix_outbox_sent_at', ['sent_at'], unique=False)
        # In the claim's order (status, next_attempt_at, id): a claim reads only what it takes.
        batch_op.drop_index('ix_outbox_claim')
        batch_op.create_index('ix_outbox_claim', ['status', 'next_attempt_at', 'id'], unique=False)
        batch_op.drop_constraint(op.f('ck_outbox_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_outbox_status'), NEW_STATUSES)



def downgrade():
    # The old constraint knows neither new status: delivered mail was sent, suppressed was not.
    op.execute("UPDATE outbox SET status = 'sent' WHERE status = 'delivered'")
    op.execute(
        "UPDATE outbox SET status = 'failed', last_error = 'suppressed address'"
        " WHERE status = 'suppressed'"
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_sent_at')
        batch_op.drop_index('ix_outbox_claim')
        batch_op.create_index('ix_outbox_claim', ['status', 'next_attempt_at'], unique=False)
        batch_op.drop_index('ix_outbox_provider_message_id')
        batch_op.drop_column('delivered_at')
        batch_op.drop_constraint(op.f('ck_outbox_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_outbox_status'), OLD_STATUSES)

    op.drop_table('suppressions')
    with op.batch_alter_table('sns_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sns_messages_received_at'))

    op.drop_table('sns_messages')
    with op.batch_alter_table('sending_pauses', schema=None) as batch_op:
        batch_op.drop_index('uq_sending_pauses_in_force', sqlite_where=sa.text('resumed_at IS NULL'), postgresql_where=sa.text('resumed_at IS NULL'))

    op.drop_table('sending_pauses')
    with op.batch_alter_table('delivery_events', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_events_provider_message_id')
        batch_op.drop_index(batch_op.f('ix_delivery_events_outbox_id'))
        batch_op.drop_index('ix_delivery_events_email')

    op.drop_table('delivery_events')
