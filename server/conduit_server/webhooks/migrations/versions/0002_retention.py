"""retention: when a message was dead-lettered, and the indexes pruning deletes by

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE messages ADD COLUMN dead_at timestamptz")
    # Dead letters from before this revision: their last attempt is when they died.
    op.execute("UPDATE messages m SET dead_at = coalesce((SELECT max(a.attempted_at) FROM attempts a "
               "WHERE a.message_id = m.id), m.created_at) WHERE state = 'dead'")
    op.execute("CREATE INDEX ix_messages_delivered_at ON messages (delivered_at) WHERE state = 'delivered'")
    op.execute("CREATE INDEX ix_messages_dead_at ON messages (dead_at) WHERE state = 'dead'")
    # Deleting a message cascades to its attempts: found by this index, not a scan per message.
    op.execute("CREATE INDEX ix_attempts_message_id ON attempts (message_id)")


def downgrade() -> None:
    op.execute("DROP INDEX ix_attempts_message_id")
    op.execute("DROP INDEX ix_messages_dead_at")
    op.execute("DROP INDEX ix_messages_delivered_at")
    op.execute("ALTER TABLE messages DROP COLUMN dead_at")
