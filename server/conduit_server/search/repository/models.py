"""Tables of the PostgreSQL search backend (schema `search`), never the articles tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, Index, Integer, SmallInteger, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from conduit_server.runtime.db import schema_metadata

SCHEMA = "search"


class Base(DeclarativeBase):
    metadata = schema_metadata()


class State(Base):
    """One row: the generation searches read and the indexer writes."""

    __tablename__ = "state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    live_generation: Mapped[int] = mapped_column(Integer)


class DocumentRow(Base):
    """An article's document (or tombstone) in one generation of the index, with its version."""

    __tablename__ = "documents"
    __table_args__ = (
        # GIN without a pending list (migration 0003, docs/decisions/0051).
        Index("ix_documents_document", "document", postgresql_using="gin", postgresql_with={"fastupdate": "off"}),
        Index("ix_documents_tags", "tags", postgresql_using="gin", postgresql_with={"fastupdate": "off"}),
        Index("ix_documents_author", "generation", "author_id"),
        Index("ix_documents_head", "head", postgresql_using="gin", postgresql_with={"fastupdate": "off"}),
        Index("ix_documents_recent", "generation", text("created_at DESC"), "article_id"),
    )

    generation: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    article_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)
    deleted: Mapped[bool] = mapped_column(Boolean, server_default="false")
    slug: Mapped[str] = mapped_column(Text, server_default="")
    title: Mapped[str] = mapped_column(Text, server_default="")
    description: Mapped[str] = mapped_column(Text, server_default="")
    body: Mapped[str] = mapped_column(Text, server_default="")
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    author_id: Mapped[int] = mapped_column(BigInteger, server_default="0")
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    indexed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    document: Mapped[str] = mapped_column(TSVECTOR, server_default="")
    # Title (A), description and tags (B) only: the matches a bounded candidate set must never miss.
    head: Mapped[str] = mapped_column(TSVECTOR, server_default="")
    # `document` with at most three positions per lexeme: what ts_rank reads (bounded cost per match).
    ranking: Mapped[str] = mapped_column(TSVECTOR, server_default="")


class Word(Base):
    """A word seen in some document, unstemmed: the candidates of typo correction (pg_trgm)."""

    __tablename__ = "words"
    __table_args__ = (Index("ix_words_trigrams", "word", postgresql_using="gin",
                            postgresql_ops={"word": "gin_trgm_ops"}, postgresql_with={"fastupdate": "off"}),)

    word: Mapped[str] = mapped_column(Text, primary_key=True)
