"""Every query of the articles tables. Callers pass the session of their unit of work."""

from __future__ import annotations

from sqlalchemy import func, select
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
