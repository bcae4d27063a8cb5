"""the digest ledger is each subscriber's cursor; lean digest outbox rows

Revision ID: 0005_ledger_cursor
Revises: 0004_digests
Create Date: 2026-11-25 10:20:00

The ledger is re-keyed by (subscriber, frequency, window end), so planning finds where a
subscriber's next digest starts without rewriting their subscription rows, and it loses
its foreign keys and surrogate id (one index per row instead of four checks and three
indexes). Outbox rows may leave address, subject and Message-ID for the worker to fill
in, and lose their foreign keys and the unique index on the Message-ID; the alert ledger
loses its foreign keys too.
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_ledger_cursor'
down_revision = '0004_digests'
branch_labels = None
depends_on = None


def _postgres() -> bool:
    return op.get_bind().dialect.name == 'postgresql'


def upgrade():
    op.rename_table('digest_deliveries', 'digest_deliveries_0004')
    if _postgres():
        # Constraint and index names follow the table on SQLite's copy, not on PostgreSQL's.
        op.execute('ALTER TABLE digest_deliveries_0004 DROP CONSTRAINT pk_digest_deliveries')
        op.execute('DROP INDEX ix_digest_deliveries_subscriber_id')
    op.create_table('digest_deliveries',
    sa.Column('subscriber_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('frequency', sa.String(length=16), nullable=False),
    sa.Column('window_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('body_id', sa.Integer(), nullable=True),
    sa.Column('article_count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('subscriber_id', 'frequency', 'window_end', name=op.f('pk_digest_deliveries'))
    )
    op.execute(
        'INSERT INTO digest_deliveries (subscriber_id, frequency, window_end, run_id, body_id, article_count)'
        ' SELECT d.subscriber_id, r.frequency, r.window_end, d.run_id, d.body_id, d.article_count'
        ' FROM digest_deliveries_0004 d JOIN digest_runs r ON r.id = d.run_id'
    )
    op.drop_table('digest_deliveries_0004')

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_outbox_message_id'), type_='unique')
        batch_op.drop_constraint(batch_op.f('fk_outbox_subscriber_id_subscribers'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_outbox_body_id_email_bodies'), type_='foreignkey')
        batch_op.alter_column('to_address', existing_type=sa.String(length=320), nullable=True)
        batch_op.alter_column('subject', existing_type=sa.String(length=300), nullable=True)
        batch_op.alter_column('message_id', existing_type=sa.String(length=255), nullable=True)

    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('carried_position', sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.create_index('ix_subscriptions_carried', ['subscriber_id'], unique=False, sqlite_where=sa.text('carried_position'), postgresql_where=sa.text('carried_position'))
    with op.batch_alter_table('alert_deliveries', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_alert_deliveries_article_id_articles'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_alert_deliveries_digest_run_id_digest_runs'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_alert_deliveries_subscriber_id_subscribers'), type_='foreignkey')
        batch_op.create_index('ix_alert_deliveries_held_back', ['subscriber_id'], unique=False, sqlite_where=sa.text('carried_over AND digest_run_id IS NULL'), postgresql_where=sa.text('carried_over AND digest_run_id IS NULL'))
    if _postgres():
        # Planning no longer updates subscription rows in place: no room needed for HOT.
        op.execute('ALTER TABLE subscriptions RESET (fillfactor)')


def downgrade():
    if _postgres():
        op.execute('ALTER TABLE subscriptions SET (fillfactor = 70)')
    # Positions the ledger holds go back onto the subscription rows.
    op.execute(
        'UPDATE subscriptions SET delivered_until = ('
        ' SELECT max(d.window_end) FROM digest_deliveries d'
        ' WHERE d.subscriber_id = subscriptions.subscriber_id AND d.frequency = subscriptions.frequency)'
        ' WHERE carried_position = false AND ended_at IS NULL AND delivered_until < ('
        ' SELECT max(d.window_end) FROM digest_deliveries d'
        ' WHERE d.subscriber_id = subscriptions.subscriber_id AND d.frequency = subscriptions.frequency)'
    )
    with op.batch_alter_table('alert_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_deliveries_held_back', sqlite_where=sa.text('carried_over AND digest_run_id IS NULL'), postgresql_where=sa.text('carried_over AND digest_run_id IS NULL'))
        batch_op.create_foreign_key(batch_op.f('fk_alert_deliveries_subscriber_id_subscribers'), 'subscribers', ['subscriber_id'], ['id'], ondelete='CASCADE')
        batch_op.create_foreign_key(batch_op.f('fk_alert_deliveries_digest_run_id_digest_runs'), 'digest_runs', ['digest_run_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_alert_deliveries_article_id_articles'), 'articles', ['article_id'], ['id'], ondelete='CASCADE')
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_index('ix_subscriptions_carried', sqlite_where=sa.text('carried_position'), postgresql_where=sa.text('carried_position'))
        batch_op.drop_column('carried_position')

    op.execute(
        "UPDATE outbox SET to_address = coalesce(to_address, ''),"
        " subject = coalesce(subject, ''),"
        " message_id = coalesce(message_id, '<outbox-' || CAST(id AS VARCHAR(20)) || '@alertsvc.invalid>')"
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('message_id', existing_type=sa.String(length=255), nullable=False)
        batch_op.alter_column('subject', existing_type=sa.String(length=300), nullable=False)
        batch_op.alter_column('to_address', existing_type=sa.String(length=320), nullable=False)
        batch_op.create_foreign_key(batch_op.f('fk_outbox_body_id_email_bodies'), 'email_bodies', ['body_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_outbox_subscriber_id_subscribers'), 'subscribers', ['subscriber_id'], ['id'], ondelete='SET NULL')
        batch_op.create_unique_constraint(batch_op.f('uq_outbox_message_id'), ['message_id'])

    op.rename_table('digest_deliveries', 'digest_deliveries_0005')
    if _postgres():
        op.execute('ALTER TABLE digest_deliveries_0005 DROP CONSTRAINT pk_digest_deliveries')
    op.create_table('digest_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('body_id', sa.Integer(), nullable=False),
    sa.Column('article_count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['body_id'], ['email_bodies.id'], name=op.f('fk_digest_deliveries_body_id_email_bodies')),
    sa.ForeignKeyConstraint(['run_id'], ['digest_runs.id'], name=op.f('fk_digest_deliveries_run_id_digest_runs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_digest_deliveries_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_digest_deliveries')),
    sa.UniqueConstraint('run_id', 'subscriber_id', name=op.f('uq_digest_deliveries_run_id'))
    )
    with op.batch_alter_table('digest_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_digest_deliveries_subscriber_id'), ['subscriber_id'], unique=False)
    # Rows for subscribers who had nothing new have no place in the old ledger.
    op.execute(
        'INSERT INTO digest_deliveries (run_id, subscriber_id, body_id, article_count)'
        ' SELECT run_id, subscriber_id, body_id, article_count FROM digest_deliveries_0005'
        ' WHERE body_id IS NOT NULL'
    )
    op.drop_table('digest_deliveries_0005')
