"""Multi-row writes of the bulk import: one statement per batch, whatever its size."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# Arrays instead of a VALUES list: ten parameters per statement, never PostgreSQL's 32,767 limit.
_INSERT = text(
    "INSERT INTO articles (slug, title, description, body, excerpt, reading_time_minutes, author_id, "
    "created_at, updated_at) "
    "SELECT s, t, d, b, e, r, a, c, c FROM unnest("
    "CAST(:slugs AS varchar[]), CAST(:titles AS varchar[]), CAST(:descriptions AS text[]), "
    "CAST(:bodies AS text[]), CAST(:excerpts AS text[]), CAST(:reading AS smallint[]), "
    "CAST(:authors AS bigint[]), CAST(:created AS timestamptz[])) AS v(s, t, d, b, e, r, a, c) "
    "ON CONFLICT (slug) DO NOTHING RETURNING id, slug, created_at, updated_at")


@dataclass(frozen=True)
class ImportRow:
    """One normalised article of an import batch, its slug already chosen."""

    slug: str
    title: str
    description: str
    body: str
    excerpt: str
    reading_time_minutes: int
    author_id: int
    created_at: datetime


@dataclass(frozen=True)
class Inserted:
    id: int
    slug: str
    created_at: datetime
    updated_at: datetime


_EVENTS = text(
    "INSERT INTO outbox (event_id, event_type, payload) SELECT * FROM unnest("
    "CAST(:ids AS uuid[]), CAST(:types AS varchar[]), CAST(:payloads AS bytea[]))")


class ImportRepository:
    async def insert_many(self, session: AsyncSession, rows: Sequence[ImportRow]) -> dict[str, Inserted]:
        """Insert the rows whose slug is free; the inserted ones by slug (taken slugs are absent)."""
        if not rows:
            return {}
        result = await session.execute(_INSERT, {
            "slugs": [row.slug for row in rows], "titles": [row.title for row in rows],
            "descriptions": [row.description for row in rows], "bodies": [row.body for row in rows],
            "excerpts": [row.excerpt for row in rows],
            "reading": [row.reading_time_minutes for row in rows],
            "authors": [row.author_id for row in rows], "created": [row.created_at for row in rows]})
        return {row.slug: Inserted(row.id, row.slug, row.created_at, row.updated_at) for row in result}

    async def add_events(self, session: AsyncSession, rows: Sequence[tuple[uuid.UUID, str, bytes]]) -> None:
        """Outbox rows in one statement. Only after `outbox.append` in the same transaction, which
        gives the transaction its xid before any of these ids is drawn (see runtime/outbox.py)."""
        if not rows:
            return
        await session.execute(_EVENTS, {"ids": [row[0] for row in rows], "types": [row[1] for row in rows],
                                        "payloads": [row[2] for row in rows]})
