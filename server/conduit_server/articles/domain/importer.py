"""Bulk import: normalise raw articles, resolve their authors, store them in batches.

Memory is bounded whatever the stream length: at most one batch (BATCH_SIZE
items or BATCH_BYTES of text) is held at a time, plus the capped list of
rejections. Each batch is one transaction: its articles, their tags, and one
ArticleCreated outbox event per stored article (consumers index articles one by
one). A bad item is rejected alone; it never aborts the other items.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from conduit_server.articles import events
from conduit_server.articles.domain import normalise, slugs
from conduit_server.articles.domain.records import Caller, StoredArticle
from conduit_server.articles.repository import ImportRepository, ImportRow, TagRepository
from conduit_server.articles.repository.cache import ArticleCache
from conduit_server.runtime.db import Database
from conduit_server.users.client.calls import UsersClient

BATCH_SIZE = 500
BATCH_BYTES = 8 * 1024 * 1024
# The contract reports at most this many rejected items (the count covers all of them).
MAX_REPORTED = 10_000
# Rounds of fresh slug suffixes for items whose slug was taken by a concurrent writer.
SLUG_ROUNDS = 5


@dataclass(frozen=True)
class RawItem:
    """One valid item of the stream, before normalisation."""

    index: int
    title: str
    description: str
    body: str
    tags: tuple[str, ...]
    author: str
    created_at: datetime | None = None

    @property
    def size(self) -> int:
        return len(self.title) + len(self.description) + len(self.body) + sum(map(len, self.tags))


@dataclass(frozen=True)
class Rejection:
    """An item that was not stored, and why (naming the field)."""

    index: int
    reason: str


@dataclass
class ImportReport:
    created: int = 0
    rejected_count: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def reject(self, rejections: list[Rejection]) -> None:
        self.rejected_count += len(rejections)
        room = MAX_REPORTED - len(self.rejected)
        self.rejected.extend(sorted(rejections, key=lambda r: r.index)[:max(room, 0)])


@dataclass(frozen=True)
class _Prepared:
    item: RawItem
    row: ImportRow
    tags: tuple[str, ...]


class Importer:
    def __init__(self, database: Database, imports: ImportRepository, tags: TagRepository,
                 cache: ArticleCache, users: UsersClient, *, batch_size: int = BATCH_SIZE,
                 batch_bytes: int = BATCH_BYTES) -> None:
        self._database = database
        self._imports = imports
        self._tags = tags
        self._cache = cache
        self._users = users
        self._batch_size = batch_size
        self._batch_bytes = batch_bytes

    async def run(self, items: AsyncIterable[RawItem | Rejection], caller: Caller) -> ImportReport:
        """Store every valid item of the stream; report the others with their reasons, in stream order."""
        report = ImportReport()
        batch: list[RawItem | Rejection] = []
        size = 0
        async for item in items:
            batch.append(item)
            size += item.size if isinstance(item, RawItem) else 0
            if len(batch) >= self._batch_size or size >= self._batch_bytes:
                await self._store(batch, caller, report)
                batch, size = [], 0
        if batch:
            await self._store(batch, caller, report)
        return report

    async def _store(self, batch: list[RawItem | Rejection], caller: Caller, report: ImportReport) -> None:
        rejected = [item for item in batch if isinstance(item, Rejection)]
        raw = [item for item in batch if isinstance(item, RawItem)]
        authors = await self._users.resolve({item.author for item in raw}, caller.deadline) if raw else {}
        prepared: list[_Prepared] = []
        now = datetime.now(UTC)
        for item in raw:
            problem = _problem(item, authors)
            if problem:
                rejected.append(Rejection(item.index, problem))
            else:
                prepared.append(_prepare(item, authors[item.author], now))
        if prepared:
            async with self._database.transaction() as session:
                stored, unplaced = await self._insert(session, prepared)
                await events.articles_created(session, stored, self._imports.add_events)
            rejected.extend(Rejection(p.item.index, "slug: no free slug for this title") for p in unplaced)
            report.created += len(stored)
            await self._cache.invalidate(lists=True, tags=any(article.tags for article in stored))
        report.reject(rejected)

    async def _insert(self, session: AsyncSession, prepared: list[_Prepared]
                      ) -> tuple[list[StoredArticle], list[_Prepared]]:
        """Insert the batch with one multi-row statement per round; taken slugs get new suffixes."""
        pending = _unique_slugs(prepared)
        stored: list[StoredArticle] = []
        links: list[tuple[int, str, int]] = []
        for _ in range(SLUG_ROUNDS):
            if not pending:
                break
            inserted = await self._imports.insert_many(session, [p.row for p in pending])
            retry: list[_Prepared] = []
            for p in pending:
                done = inserted.get(p.row.slug)
                if done is None:
                    retry.append(_reslug(p))
                    continue
                stored.append(StoredArticle(
                    id=done.id, slug=done.slug, title=p.row.title, description=p.row.description,
                    body=p.row.body, tags=p.tags, author_id=p.row.author_id, created_at=done.created_at,
                    updated_at=done.updated_at, favorites_count=0))
                links.extend((done.id, name, position) for position, name in enumerate(p.tags))
            pending = _unique_slugs(retry)
        tag_ids = await self._tags.ensure(session, sorted({name for _, name, _ in links}))
        await self._tags.attach(session, [(article_id, tag_ids[name], position)
                                          for article_id, name, position in links])
        return stored, pending


def _problem(item: RawItem, authors: dict[str, int]) -> str:
    if not item.title.strip():
        return "title: can't be blank"
    if not item.body.strip():
        return "body: can't be blank"
    if item.author not in authors:
        return f"author: unknown user '{item.author}'"
    return ""


def _prepare(item: RawItem, author_id: int, now: datetime) -> _Prepared:
    title = item.title.strip()
    description = item.description.strip() or normalise.description_from_body(item.body) or title
    row = ImportRow(slug=slugs.slugify(title), title=title, description=description, body=item.body,
                    excerpt=normalise.excerpt(item.body),
                    reading_time_minutes=normalise.reading_time_minutes(item.body),
                    author_id=author_id, created_at=item.created_at or now)
    return _Prepared(item, row, tuple(normalise.normalise_tags(item.tags)))


def _reslug(prepared: _Prepared) -> _Prepared:
    row = replace(prepared.row, slug=slugs.with_suffix(slugs.slugify(prepared.row.title)))
    return replace(prepared, row=row)


def _unique_slugs(prepared: list[_Prepared]) -> list[_Prepared]:
    """The batch with no slug twice (and none reserved): later duplicates get a suffix."""
    seen: set[str] = set()
    unique: list[_Prepared] = []
    for original in prepared:
        p = original
        while p.row.slug in seen or p.row.slug in slugs.RESERVED:
            p = _reslug(p)
        seen.add(p.row.slug)
        unique.append(p)
    return unique
