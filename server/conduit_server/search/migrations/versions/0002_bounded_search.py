"""bounded search: a head vector (title, description, tags) with its own GIN index, a ranking vector
keeping at most three positions per lexeme, and a recency index (docs/decisions/0022)

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# The vector as text, each lexeme quoted (quotes doubled, backslashes escaped), with its first
# `per_lexeme` positions and their weights; cast back. Positions are ascending, so title (A) positions,
# which come first, are always kept.
CAPPED_POSITIONS = r"""
CREATE FUNCTION capped_positions(v tsvector, per_lexeme integer) RETURNS tsvector
IMMUTABLE STRICT PARALLEL SAFE LANGUAGE sql AS $$
SELECT coalesce(string_agg(
    '''' || replace(replace(u.lexeme, '\', '\\'), '''', '''''') || ''':'
    || (SELECT string_agg(p.pos::text || p.w::text, ',' ORDER BY p.pos)
        FROM unnest(u.positions[1:per_lexeme], u.weights[1:per_lexeme]) AS p(pos, w)), ' '), '')::tsvector
FROM unnest(v) AS u
$$
"""


def upgrade() -> None:
    op.execute(CAPPED_POSITIONS)
    op.execute("ALTER TABLE documents ADD COLUMN head tsvector NOT NULL DEFAULT ''::tsvector")
    op.execute("ALTER TABLE documents ADD COLUMN ranking tsvector NOT NULL DEFAULT ''::tsvector")
    op.execute("UPDATE documents SET head = setweight(to_tsvector('english', title), 'A') "
               "|| setweight(to_tsvector('english', description || ' ' || array_to_string(tags, ' ')), 'B'), "
               "ranking = capped_positions(document, 3) WHERE NOT deleted")
    op.execute("CREATE INDEX ix_documents_head ON documents USING gin (head)")
    op.execute("CREATE INDEX ix_documents_recent ON documents (generation, created_at DESC, article_id)")


def downgrade() -> None:
    op.execute("DROP INDEX ix_documents_recent")
    op.execute("DROP INDEX ix_documents_head")
    op.execute("ALTER TABLE documents DROP COLUMN ranking")
    op.execute("ALTER TABLE documents DROP COLUMN head")
    op.execute("DROP FUNCTION capped_positions(tsvector, integer)")
