"""articles found by their address (the Register For Alerts box)

Revision ID: 0010_article_url_index
Revises: 0009_operators
Create Date: 2026-12-01 18:40:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0010_article_url_index'
down_revision = '0009_operators'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_articles_url', 'articles', ['url'], unique=False, postgresql_using='hash')


def downgrade():
    op.drop_index('ix_articles_url', table_name='articles', postgresql_using='hash')
