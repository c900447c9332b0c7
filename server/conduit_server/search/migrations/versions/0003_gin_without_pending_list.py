"""GIN indexes without a pending list: every write goes into the index itself, so no search ever
scans a list of recent entries (docs/decisions/0051)

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

INDEXES = ("ix_documents_document", "ix_documents_head", "ix_documents_tags", "ix_words_trigrams")


def upgrade() -> None:
    for index in INDEXES:
        op.execute(f"ALTER INDEX {index} SET (fastupdate = off)")
        # What an existing pending list holds moves into the index now, not at the next vacuum.
        op.execute(f"SELECT gin_clean_pending_list(CAST('{index}' AS regclass))")


def downgrade() -> None:
    for index in INDEXES:
        op.execute(f"ALTER INDEX {index} RESET (fastupdate)")
