"""The PostgreSQL backend: weighted tsvector, GIN, websearch_to_tsquery, pg_trgm for misspellings.

Its own schema (`search`), never the articles tables. Documents of every
generation share one table; `state.live_generation` says which one searches
read and the indexer writes, so a rebuild fills generation n+1 beside the live
one and the swap is a one-row update.
"""

# ruff: noqa: S608 - statements are composed of this module's constants; values are always bound

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event, text

from conduit_server.runtime.db import Database
from conduit_server.search.domain.documents import MARK_CLOSE, MARK_OPEN, Change, Document, Tombstone, latest
from conduit_server.search.domain.ports import IndexStats
from conduit_server.search.domain.query import FACET_SIZE, BackendHit, BackendPage, SearchQuery

LIVE = "(SELECT live_generation FROM state WHERE id = 1)"
# Written out wherever it is used (not a CTE): planned per call, the planner folds it into a constant
# and estimates its selectivity from the column statistics.
_QUERY = "websearch_to_tsquery('english', CAST(:q AS text))"
_WORD_CHARS = (3, 32)
# How many matches a search ranks, counts and facets at most, besides as many title/description/tag
# matches (docs/decisions/0022).
SEARCH_WINDOW = 500
# Positions per lexeme in the ranking vector: ts_rank's cost grows with the product of the query words'
# positions; three keep term frequency (saturating, as BM25 does), title occurrences first.
_RANKED_POSITIONS = 3
# The planner picks the recency walk (broad) or the GIN bitmap (selective) from the tables' statistics.
# After a bulk load they are missing or stale until autovacuum gets to them (a minute or more): a
# selective search then walks every document (measured on 10,000 freshly indexed articles: 171 instead
# of ~550 searches/s at 16 callers, 13.6 instead of 4.4 ms alone). So the backend analyzes its tables
# itself once it has written as many rows as ANALYZE_FRACTION of the documents it last counted (at
# least ANALYZE_MIN_ROWS), and after every swap.
ANALYZE_MIN_ROWS = 1_000
ANALYZE_FRACTION = 0.2


def default_concurrency() -> int:
    """The CPUs this process may run on: PostgreSQL's, when it runs beside it (embedded, `make run`)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

_UPSERT = text(f"""
INSERT INTO documents AS d (generation, article_id, version, deleted, slug, title, description, body, tags,
                            author_id, created_at, head, document, ranking)
SELECT coalesce(CAST(:generation AS int), {LIVE}), c.article_id, c.version, c.deleted, c.slug, c.title,
       c.description, c.body, c.tags, c.author_id, c.created_at, h.head, v.document,
       capped_positions(v.document, {_RANKED_POSITIONS})
FROM jsonb_to_recordset(CAST(:changes AS jsonb)) AS c(article_id bigint, version bigint, deleted boolean,
     slug text, title text, description text, body text, tags text[], author_id bigint, created_at timestamptz),
     LATERAL (SELECT setweight(to_tsvector('english', c.title), 'A')
                     || setweight(to_tsvector('english', c.description || ' ' || array_to_string(c.tags, ' ')),
                                  'B') AS head) AS h,
     LATERAL (SELECT h.head || setweight(to_tsvector('english', c.body), 'C') AS document) AS v
ON CONFLICT (generation, article_id) DO UPDATE SET
    version = excluded.version, deleted = excluded.deleted, slug = excluded.slug, title = excluded.title,
    description = excluded.description, body = excluded.body, tags = excluded.tags,
    author_id = excluded.author_id, created_at = excluded.created_at, head = excluded.head,
    document = excluded.document, ranking = excluded.ranking, indexed_at = now()
WHERE d.version < excluded.version
""")
# Unstemmed words of the documents, for typo correction by trigram similarity. Sorted, so that two
# writers insert in one order and cannot deadlock.
_WORDS = text(f"""
INSERT INTO words (word)
SELECT DISTINCT w.lexeme
FROM jsonb_to_recordset(CAST(:changes AS jsonb)) AS c(title text, description text, body text, tags text[]),
     unnest(to_tsvector('simple', c.title || ' ' || c.description || ' ' || array_to_string(c.tags, ' ')
                        || ' ' || c.body)) AS w
WHERE length(w.lexeme) BETWEEN {_WORD_CHARS[0]} AND {_WORD_CHARS[1]}
ORDER BY w.lexeme
ON CONFLICT (word) DO NOTHING
""")
_CORRECTIONS = text("""
SELECT q.word, (SELECT w.word FROM words AS w WHERE w.word % q.word
                ORDER BY similarity(w.word, q.word) DESC, w.word LIMIT 1) AS correction
FROM unnest(CAST(:words AS text[])) AS q(word)
WHERE NOT EXISTS (SELECT 1 FROM words AS w WHERE w.word = q.word)
""")
_QUERY_WORDS = text("SELECT lexeme FROM unnest(to_tsvector('simple', :q))")
# One excerpt around the best cover (the snippet shows SNIPPET_CHARS of it): cheaper than fragments.
_HEADLINE = f"StartSel={MARK_OPEN}, StopSel={MARK_CLOSE}, MaxWords=35, MinWords=15"
# ts_headline parses all the text it is given, at a cost that grows with its length and its matches:
# a snippet comes from the first part of a long body.
_HEADLINE_SOURCE_CHARS = 500
_TITLE_HEADLINE = f"StartSel={MARK_OPEN}, StopSel={MARK_CLOSE}, HighlightAll=true"


def _search_statement(*, tag: bool, author: bool) -> Any:
    """One round trip, bounded work whatever the query matches (docs/decisions/0022).

    `hits`: the newest `window` (+1, to tell) matches. With a planned-per-call statement the planner
    sees the query's selectivity: a broad query walks the recency index and stops after `window` rows,
    a selective one takes the GIN bitmap and sorts its few rows. `head`: likewise among matches in
    title, description or tags (their own small GIN index), so a title match is a candidate however
    many bodies match. The candidates `hits UNION head` are what the answer is about: ranked (on the
    capped `ranking` vector), counted (the total: every page is reachable) and faceted; all of the
    matches whenever no more than `window` match. `ts_headline` runs on the page's rows only.
    """
    filters = "".join([" AND d.tags @> ARRAY[CAST(:tag AS text)]" if tag else "",
                       " AND d.author_id = :author_id" if author else ""])
    return text(f"""
WITH hits AS MATERIALIZED (
    SELECT d.article_id, d.tags, d.created_at, d.ranking FROM documents AS d
    WHERE d.generation = {LIVE} AND NOT d.deleted AND d.document @@ {_QUERY}{filters}
    ORDER BY d.created_at DESC, d.article_id LIMIT :window + 1
),
head AS MATERIALIZED (
    SELECT d.article_id, d.tags, d.created_at, d.ranking FROM documents AS d
    WHERE d.generation = {LIVE} AND NOT d.deleted AND d.head @@ {_QUERY}{filters}
    ORDER BY d.created_at DESC, d.article_id LIMIT :window
),
candidates AS MATERIALIZED (
    SELECT c.article_id, c.tags, c.created_at, ts_rank(c.ranking, {_QUERY}) AS score
    FROM (SELECT * FROM hits
          UNION ALL SELECT * FROM head WHERE article_id NOT IN (SELECT article_id FROM hits)) AS c
),
page AS (
    SELECT article_id, score FROM candidates
    ORDER BY score DESC, created_at DESC, article_id LIMIT :limit OFFSET :offset
)
SELECT (SELECT count(*) FROM candidates) AS total, (SELECT count(*) FROM hits) AS matched,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(f.tag, f.n)), '[]') FROM (
            SELECT t.tag, count(*) AS n FROM (SELECT unnest(tags) AS tag FROM candidates) AS t
            GROUP BY t.tag ORDER BY n DESC, t.tag LIMIT {FACET_SIZE}) AS f) AS facets,
       p.score, d.article_id, d.slug, d.title, d.description, d.tags, d.author_id, d.created_at,
       ts_headline('english', d.title, {_QUERY}, '{_TITLE_HEADLINE}') AS title_marked,
       ts_headline('english', CASE WHEN d.body = '' THEN d.description ELSE left(d.body, {_HEADLINE_SOURCE_CHARS}) END,
                   {_QUERY}, '{_HEADLINE}') AS snippet_marked
FROM (SELECT 1) AS one
LEFT JOIN page AS p ON true
LEFT JOIN documents AS d ON d.generation = {LIVE} AND d.article_id = p.article_id
ORDER BY p.score DESC NULLS LAST, d.created_at DESC, d.article_id
""")


_SEARCHES = {(tag, author): _search_statement(tag=tag, author=author) for tag in (False, True)
             for author in (False, True)}


def search_sql(*, tag: bool = False, author: bool = False) -> str:
    """The search statement's text (for `EXPLAIN` in the bench)."""
    return str(_SEARCHES[(tag, author)])


def _plan_each_statement(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET plan_cache_mode = force_custom_plan")
    cursor.close()
    dbapi_connection.commit()  # the driver opened a transaction: its rollback would undo the SET


def _row(change: Change) -> dict[str, Any]:
    if isinstance(change, Tombstone):
        return {"article_id": change.article_id, "version": change.version, "deleted": True, "slug": "",
                "title": "", "description": "", "body": "", "tags": [], "author_id": 0, "created_at": None}
    document = change.cleaned()
    return {"article_id": document.article_id, "version": document.version, "deleted": False,
            "slug": document.slug, "title": document.title, "description": document.description,
            "body": document.body, "tags": list(document.tags), "author_id": document.author_id,
            "created_at": document.created_at.isoformat()}


class PostgresBackend:
    name = "postgresql"

    def __init__(self, database: Database, *, batch_rows: int = 200, window: int = SEARCH_WINDOW,
                 analyze_min_rows: int = ANALYZE_MIN_ROWS, concurrency: int = 0) -> None:
        self.database = database
        # At most this many searches run on PostgreSQL at once; the others wait their turn in arrival
        # order (docs/decisions/0053). More at once only share the same CPUs, and the slowest of them
        # make the tail.
        self.concurrency = concurrency or default_concurrency()
        self._running = asyncio.Semaphore(self.concurrency)
        self._batch_rows = batch_rows
        self._window = window
        self._analyze_min_rows = analyze_min_rows
        self._written_since_analyze = 0
        self._analyzed_documents = 0.0
        # Every search is planned with its own words: a plan cached for some query (after five
        # executions PostgreSQL may switch to a generic plan) would take the GIN bitmap and sort every
        # match of a broad one. Set on each connection the engine opens from now on.
        event.listen(database.engine.sync_engine, "connect", _plan_each_statement)

    async def prepare(self) -> None:
        return None  # the migrations create everything (app.start runs them)

    async def apply(self, changes: Sequence[Change], target: str | None = None) -> int:
        """One transaction per chunk of rows: documents, then the words they bring."""
        written = 0
        rows = [_row(change) for change in latest(changes)]
        generation = int(target) if target is not None else None
        for start in range(0, len(rows), self._batch_rows):
            payload = json.dumps(rows[start:start + self._batch_rows])
            async with self.database.transaction() as session:
                result = await session.execute(_UPSERT, {"generation": generation, "changes": payload})
                written += int(getattr(result, "rowcount", 0) or 0)
                await session.execute(_WORDS, {"changes": payload})
        self._written_since_analyze += len(rows)
        if self._written_since_analyze >= max(self._analyze_min_rows, ANALYZE_FRACTION * self._analyzed_documents):
            await self.analyze()
        return written

    async def analyze(self) -> None:
        """Fresh planner statistics for the documents and the words (see ANALYZE_MIN_ROWS)."""
        self._written_since_analyze = 0
        async with self.database.transaction() as session:
            await session.execute(text("ANALYZE documents, words"))
            self._analyzed_documents = float(await session.scalar(text(
                "SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = CAST('documents' AS regclass)")) or 0)

    async def search(self, query: SearchQuery, *, fuzzy: bool) -> BackendPage:
        async with self._running:
            return await self._search(query, fuzzy=fuzzy)

    async def _search(self, query: SearchQuery, *, fuzzy: bool) -> BackendPage:
        text_query = query.text
        if fuzzy:
            corrected = await self._corrected(text_query)
            if corrected is None:
                return BackendPage([], 0, [])
            text_query = corrected
        params: dict[str, Any] = {"q": text_query, "limit": query.limit, "offset": query.offset,
                                  "window": self._window}
        if query.tag:
            params["tag"] = query.tag
        if query.author_id is not None:
            params["author_id"] = query.author_id
        rows = await self.database.fetch(_SEARCHES[(bool(query.tag), query.author_id is not None)], params)
        first = rows[0]
        hits = [BackendHit(row["article_id"], float(row["score"]), row["slug"], row["title"], row["description"],
                           tuple(row["tags"]), row["author_id"], row["created_at"],
                           row["title_marked"] or row["title"], row["snippet_marked"] or "")
                for row in rows if row["article_id"] is not None]
        return BackendPage(hits, int(first["total"]), [(tag, int(count)) for tag, count in first["facets"]],
                           total_exact=int(first["matched"]) <= self._window)

    async def _corrected(self, query: str) -> str | None:
        """The query with each unknown word replaced by the closest known one; None when none is."""
        words = [row[0] for row in await self.database.fetch(_QUERY_WORDS, {"q": query})]
        # A word shorter than the vocabulary's shortest is never corrected (as Elasticsearch's AUTO
        # fuzziness allows no edit under 3 characters): "7" is not a misspelt "700", and looking
        # for it by trigrams matched every number it starts, ~20 ms of PostgreSQL per search.
        correctable = [word for word in words if len(word) >= _WORD_CHARS[0]]
        if not correctable:
            return None
        corrections = {row["word"]: row["correction"]
                       for row in await self.database.fetch(_CORRECTIONS, {"words": correctable})
                       if row["correction"]}
        if not corrections:
            return None
        return " ".join(corrections.get(word, word) for word in words)

    async def begin_rebuild(self) -> str:
        async with self.database.transaction() as session:
            live = int(await session.scalar(text(f"SELECT {LIVE}")) or 1)
            await session.execute(text("DELETE FROM documents WHERE generation <> :live"), {"live": live})
        return str(live + 1)

    async def swap(self, target: str) -> None:
        async with self.database.transaction() as session:
            await session.execute(text("UPDATE state SET live_generation = :g WHERE id = 1"), {"g": int(target)})
        async with self.database.transaction() as session:
            await session.execute(text("DELETE FROM documents WHERE generation < :g"), {"g": int(target)})
        await self.analyze()  # the live documents are now all new

    async def discard(self, target: str) -> None:
        async with self.database.transaction() as session:
            await session.execute(text(f"DELETE FROM documents WHERE generation = :g AND :g <> {LIVE}"),
                                  {"g": int(target)})

    async def documents(self) -> dict[int, Document]:
        async with self.database.read() as session:
            rows = await session.execute(text(
                "SELECT article_id, version, slug, title, description, body, tags, author_id, created_at "
                f"FROM documents WHERE generation = {LIVE} AND NOT deleted"))
            return {row.article_id: Document(row.article_id, row.version, row.slug, row.title, row.description,
                                             row.body, tuple(row.tags), row.author_id, row.created_at)
                    for row in rows}

    async def refresh(self) -> None:
        return None  # a committed write is visible at once

    async def stats(self) -> IndexStats:
        async with self.database.read() as session:
            row = (await session.execute(text(
                "SELECT count(*) FILTER (WHERE NOT deleted) AS documents, count(*) FILTER (WHERE deleted) "
                f"AS tombstones, coalesce(max(version), 0) AS newest FROM documents WHERE generation = {LIVE}"
            ))).one()
        return IndexStats(self.name, int(row.documents), int(row.tombstones), int(row.newest))

    async def close(self) -> None:
        await self.database.close()
