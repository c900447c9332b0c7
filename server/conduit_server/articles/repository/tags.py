"""Queries of tags and article_tags."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from conduit_server.articles.models import ArticleTag, Tag


class TagRepository:
    async def names_by_use(self, session: AsyncSession) -> list[str]:
        """Every tag attached to at least one article, most used first, then by name."""
        uses = func.count(ArticleTag.article_id)
        rows = await session.execute(
            select(Tag.name).join(ArticleTag, ArticleTag.tag_id == Tag.id)
            .group_by(Tag.name).order_by(uses.desc(), Tag.name)
        )
        return list(rows.scalars())

    async def ensure(self, session: AsyncSession, names: Sequence[str]) -> dict[str, int]:
        """Ids of the named tags, creating the missing ones (safe under concurrent writers)."""
        if not names:
            return {}
        # Sorted, so concurrent writers take the unique-index locks in the same order (no deadlock).
        ordered = sorted(set(names))
        await session.execute(text(
            "INSERT INTO tags (name) SELECT unnest(CAST(:names AS varchar[])) ON CONFLICT (name) DO NOTHING"),
            {"names": ordered})
        rows = await session.execute(select(Tag.name, Tag.id).where(Tag.name.in_(ordered)))
        return {row.name: row.id for row in rows}

    async def attach(self, session: AsyncSession, links: Sequence[tuple[int, int, int]]) -> None:
        """Insert (article id, tag id, position) links in one statement."""
        if not links:
            return
        articles, tags, positions = (list(column) for column in zip(*links, strict=True))
        await session.execute(text(
            "INSERT INTO article_tags (article_id, tag_id, position) SELECT * FROM unnest("
            "CAST(:articles AS bigint[]), CAST(:tags AS integer[]), CAST(:positions AS smallint[]))"),
            {"articles": articles, "tags": tags, "positions": positions})
