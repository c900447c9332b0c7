"""Queries of tags and article_tags."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# The most used tags: a bounded list, whatever the number of tags (docs/decisions/0011).
POPULAR_TAGS = 1000
_BY_USE = text("SELECT t.name FROM tags AS t JOIN article_tags AS at ON at.tag_id = t.id "
               "GROUP BY t.name ORDER BY count(at.article_id) DESC, t.name LIMIT :limit")
_ENSURE = text("INSERT INTO tags (name) SELECT unnest(CAST(:names AS varchar[])) ON CONFLICT (name) DO NOTHING")
_IDS = text("SELECT name, id FROM tags WHERE name = ANY(CAST(:names AS varchar[]))")
_ATTACH = text("INSERT INTO article_tags (article_id, tag_id, position) SELECT * FROM unnest("
               "CAST(:articles AS bigint[]), CAST(:tags AS integer[]), CAST(:positions AS smallint[]))")


class TagRepository:
    async def names_by_use(self, session: AsyncSession) -> list[str]:
        """The POPULAR_TAGS tags attached to the most articles, most used first, then by name."""
        return list((await session.execute(_BY_USE, {"limit": POPULAR_TAGS})).scalars())

    async def ensure(self, session: AsyncSession, names: Sequence[str]) -> dict[str, int]:
        """Ids of the named tags, creating the missing ones (safe under concurrent writers)."""
        if not names:
            return {}
        # Sorted, so concurrent writers take the unique-index locks in the same order (no deadlock).
        ordered = sorted(set(names))
        await session.execute(_ENSURE, {"names": ordered})
        # A statement of its own: its snapshot sees tags that concurrent writers committed meanwhile.
        rows = await session.execute(_IDS, {"names": ordered})
        return {row.name: row.id for row in rows}

    async def attach(self, session: AsyncSession, links: Sequence[tuple[int, int, int]]) -> None:
        """Insert (article id, tag id, position) links in one statement."""
        if not links:
            return
        articles, tags, positions = (list(column) for column in zip(*links, strict=True))
        await session.execute(_ATTACH, {"articles": articles, "tags": tags, "positions": positions})
