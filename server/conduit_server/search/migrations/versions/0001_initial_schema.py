"""search documents, generations and the typo-correction lexicon

Revision ID: 0001
Revises:
"""

from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # pg_trgm lives in this schema: `%` and similarity() resolve through the service's search_path.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA search")
    op.execute("CREATE TABLE state (id smallint CONSTRAINT pk_state PRIMARY KEY, live_generation integer NOT NULL, "
               "CONSTRAINT ck_state_single_row CHECK (id = 1))")
    op.execute("INSERT INTO state (id, live_generation) VALUES (1, 1)")
    op.execute("""
        CREATE TABLE documents (
            generation integer NOT NULL,
            article_id bigint NOT NULL,
            version bigint NOT NULL,
            deleted boolean NOT NULL DEFAULT false,
            slug text NOT NULL DEFAULT '',
            title text NOT NULL DEFAULT '',
            description text NOT NULL DEFAULT '',
            body text NOT NULL DEFAULT '',
            tags text[] NOT NULL DEFAULT '{}',
            author_id bigint NOT NULL DEFAULT 0,
            created_at timestamptz,
            indexed_at timestamptz NOT NULL DEFAULT now(),
            document tsvector NOT NULL DEFAULT ''::tsvector,
            CONSTRAINT pk_documents PRIMARY KEY (generation, article_id)
        )""")
    op.execute("CREATE INDEX ix_documents_document ON documents USING gin (document)")
    op.execute("CREATE INDEX ix_documents_tags ON documents USING gin (tags)")
    op.execute("CREATE INDEX ix_documents_author ON documents (generation, author_id)")
    op.execute("CREATE TABLE words (word text CONSTRAINT pk_words PRIMARY KEY)")
    op.execute("CREATE INDEX ix_words_trigrams ON words USING gin (word gin_trgm_ops)")


def downgrade() -> None:
    op.execute("DROP TABLE words")
    op.execute("DROP TABLE documents")
    op.execute("DROP TABLE state")
    op.execute("DROP EXTENSION IF EXISTS pg_trgm")
