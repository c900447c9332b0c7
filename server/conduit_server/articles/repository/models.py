"""Tables of the articles service (schema `articles`). Only the repository package queries them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from conduit_server.runtime.db import schema_metadata
from conduit_server.runtime.outbox import OutboxRow

SCHEMA = "articles"


class Base(DeclarativeBase):
    metadata = schema_metadata()


class Article(Base):
    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    slug: Mapped[str] = mapped_column(String(300), unique=True)
    title: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    # Derived from the body on every write (plain-text opening, minutes at 200 words a minute);
    # kept for the search index and future list views, not exposed by the v1 contract.
    excerpt: Mapped[str] = mapped_column(Text, server_default="")
    reading_time_minutes: Mapped[int] = mapped_column(SmallInteger, server_default="1")
    author_id: Mapped[int] = mapped_column(BigInteger)
    # Denormalised so a page never counts favorites row by row; kept exact by
    # updating it in the same statement batch as the favorites row.
    favorites_count: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("ix_articles_created", created_at.desc(), id.desc()),
        Index("ix_articles_author_created", author_id, created_at.desc(), id.desc()),
    )


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)


class ArticleTag(Base):
    __tablename__ = "article_tags"

    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)
    # The author's order of tags (RealWorld keeps insertion order).
    position: Mapped[int] = mapped_column(SmallInteger)

    __table_args__ = (Index("ix_article_tags_tag", tag_id, article_id),)


class Favorite(Base):
    __tablename__ = "favorites"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_favorites_article", article_id),)


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(BigInteger)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_comments_article", article_id, id),)


class OutboxEvent(OutboxRow, Base):
    """A domain event written in the same transaction as the change it reports."""
