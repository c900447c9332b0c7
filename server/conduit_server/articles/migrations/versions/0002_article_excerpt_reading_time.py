"""article excerpt and reading time

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('articles', sa.Column('excerpt', sa.Text(), server_default='', nullable=False))
    op.add_column('articles', sa.Column('reading_time_minutes', sa.SmallInteger(), server_default='1', nullable=False))


def downgrade() -> None:
    op.drop_column('articles', 'reading_time_minutes')
    op.drop_column('articles', 'excerpt')
