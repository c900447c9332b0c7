"""The Elasticsearch backend (official async client), used when CONDUIT_ELASTICSEARCH_URL is set.

An index template gives every index of the family (`<alias>-*`) explicit
mappings and analyzers; the alias names the live index. Writes go through the
bulk helper with external versions (the outbox sequence), so an older change is
refused by Elasticsearch itself (409, ignored here). A rebuild creates a new
index, fills it, and one `_aliases` call moves the alias atomically.

Kept to the APIs that 7.10 (tested), 8.x and OpenSearch serve alike: index
templates (legacy `_template`), bulk, search with highlight and terms
aggregation, `_aliases`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, cast

from elasticsearch import AsyncElasticsearch, NotFoundError
from elasticsearch.helpers import async_bulk, async_scan

from conduit_server.search.domain.documents import MARK_CLOSE, MARK_OPEN, Change, Document, Tombstone, latest
from conduit_server.search.domain.ports import IndexStats
from conduit_server.search.domain.query import FACET_SIZE, BackendHit, BackendPage, SearchQuery

_CONFLICT = 409
_FIELDS = ["title^4", "description^2", "tags.text^2", "body"]
_SOURCE = ["article_id", "slug", "title", "description", "tags", "author_id", "created_at"]

REFRESH_INTERVAL = "500ms"
SETTINGS: dict[str, Any] = {
    "number_of_shards": 1,
    "number_of_replicas": 0,
    # Half a second: a new article is searchable well within the 2 s the service promises.
    "refresh_interval": REFRESH_INTERVAL,
    "analysis": {
        "filter": {
            "english_stop": {"type": "stop", "stopwords": "_english_"},
            "english_stemmer": {"type": "stemmer", "language": "english"},
            "english_possessive": {"type": "stemmer", "language": "possessive_english"},
        },
        "analyzer": {
            "conduit_english": {
                "type": "custom", "tokenizer": "standard",
                "filter": ["english_possessive", "lowercase", "asciifolding", "english_stop", "english_stemmer"],
            },
            "conduit_tag": {"type": "custom", "tokenizer": "keyword", "filter": ["lowercase"]},
        },
    },
}
MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "article_id": {"type": "long"},
        "version": {"type": "long"},
        "deleted": {"type": "boolean"},
        "slug": {"type": "keyword"},
        "title": {"type": "text", "analyzer": "conduit_english"},
        "description": {"type": "text", "analyzer": "conduit_english"},
        "body": {"type": "text", "analyzer": "conduit_english"},
        "tags": {"type": "keyword", "fields": {"text": {"type": "text", "analyzer": "conduit_english"}}},
        "author_id": {"type": "long"},
        "created_at": {"type": "date"},
    },
}


def _source(change: Change) -> dict[str, Any]:
    if isinstance(change, Tombstone):
        return {"article_id": change.article_id, "version": change.version, "deleted": True}
    document = change.cleaned()
    return {"article_id": document.article_id, "version": document.version, "deleted": False,
            "slug": document.slug, "title": document.title,
            "description": document.description, "body": document.body, "tags": list(document.tags),
            "author_id": document.author_id, "created_at": document.created_at.isoformat()}


def _websearch(text: str) -> str:
    """Web-search syntax (quotes, `-`, `or`) in simple_query_string's terms (`|` for or)."""
    return " ".join("|" if word.lower() == "or" else word for word in text.split())


class ElasticBackend:
    name = "elasticsearch"

    def __init__(self, url: str, *, alias: str = "conduit-articles") -> None:
        self.client = AsyncElasticsearch(url, retry_on_timeout=True, max_retries=3)
        self.alias = alias

    async def prepare(self) -> None:
        await self.client.indices.put_template(name=self.alias, body={
            "index_patterns": [f"{self.alias}-*"], "settings": SETTINGS, "mappings": MAPPINGS})
        if not await self.client.indices.exists_alias(name=self.alias):
            # A fixed first name: replicas preparing at once create it once (the others get a 400).
            await self.client.indices.create(index=f"{self.alias}-000001", body={"aliases": {self.alias: {}}},
                                             ignore=400)

    async def apply(self, changes: Sequence[Change], target: str | None = None) -> int:
        index = target or self.alias
        actions = [{"_op_type": "index", "_index": index, "_id": str(change.article_id),
                    "version": change.version, "version_type": "external", "_source": _source(change)}
                   for change in latest(changes)]
        if not actions:
            return 0
        # A live write refreshes the index before it returns, so it is searchable then (as a PostgreSQL
        # commit is) and the shared answers forgotten after it (decision 0048) are never refilled from
        # before it. One refresh per indexer batch: `wait_for` (the next periodic refresh) kept each
        # batch waiting up to REFRESH_INTERVAL, and the batch behind it as long again. A rebuild's index
        # is refreshed once, at its swap.
        written, errors = await async_bulk(self.client, actions, raise_on_error=False, raise_on_exception=True,
                                           chunk_size=500, max_retries=3, refresh=target is None)
        failures = [error for error in cast("list[dict[str, Any]]", errors) if _status(error) != _CONFLICT]
        if failures:
            raise RuntimeError(f"elasticsearch refused {len(failures)} writes, e.g. {failures[0]}")
        return int(written)

    async def search(self, query: SearchQuery, *, fuzzy: bool) -> BackendPage:
        match: dict[str, Any] = (
            {"multi_match": {"query": query.text, "fields": _FIELDS, "fuzziness": "AUTO", "operator": "and"}}
            if fuzzy else
            {"simple_query_string": {"query": _websearch(query.text), "fields": _FIELDS, "default_operator": "and"}})
        filters: list[dict[str, Any]] = [{"term": {"deleted": False}}]
        if query.tag:
            filters.append({"term": {"tags": query.tag}})
        if query.author_id is not None:
            filters.append({"term": {"author_id": query.author_id}})
        body = {
            "query": {"bool": {"must": [match], "filter": filters}},
            "from": query.offset, "size": query.limit, "track_total_hits": True, "_source": _SOURCE,
            "sort": [{"_score": "desc"}, {"created_at": "desc"}, {"article_id": "asc"}],
            "highlight": {"pre_tags": [MARK_OPEN], "post_tags": [MARK_CLOSE], "encoder": "default",
                          "fields": {"title": {"number_of_fragments": 0},
                                     "body": {"fragment_size": 120, "number_of_fragments": 2,
                                              "no_match_size": 160},
                                     "description": {"number_of_fragments": 0}}},
            "aggs": {"tags": {"terms": {"field": "tags", "size": FACET_SIZE,
                                        "order": [{"_count": "desc"}, {"_key": "asc"}]}}},
        }
        answer = await self.client.search(index=self.alias, body=body)
        hits = [_hit(hit) for hit in answer["hits"]["hits"]]
        facets = [(bucket["key"], int(bucket["doc_count"])) for bucket in answer["aggregations"]["tags"]["buckets"]]
        return BackendPage(hits, int(answer["hits"]["total"]["value"]), facets)

    async def begin_rebuild(self) -> str:
        index = f"{self.alias}-{time.time_ns() // 1_000_000}"
        # No refreshes while it fills (nothing searches it yet); swap() turns them back on.
        await self.client.indices.create(index=index, body={"settings": {"refresh_interval": "-1"}})
        return index

    async def swap(self, target: str) -> None:
        await self.client.indices.put_settings(index=target, body={"refresh_interval": REFRESH_INTERVAL})
        await self.client.indices.refresh(index=target)
        current = await self._live_indices()
        actions: list[dict[str, Any]] = [{"remove": {"index": name, "alias": self.alias}} for name in current]
        actions.append({"add": {"index": target, "alias": self.alias}})
        await self.client.indices.update_aliases(body={"actions": actions})
        for name in current:
            if name != target:
                await self.client.indices.delete(index=name, ignore=404)

    async def discard(self, target: str) -> None:
        if target not in await self._live_indices():
            await self.client.indices.delete(index=target, ignore=404)

    async def _live_indices(self) -> list[str]:
        try:
            return list(await self.client.indices.get_alias(name=self.alias))
        except NotFoundError:
            return []

    async def documents(self) -> dict[int, Document]:
        await self.refresh()
        found: dict[int, Document] = {}
        # The 7.x stubs type the scan's items as int; they are the hits.
        hits = cast("AsyncIterator[dict[str, Any]]", async_scan(self.client, index=self.alias,
                                                                query={"query": {"term": {"deleted": False}}}))
        async for hit in hits:
            source = hit["_source"]
            found[int(source["article_id"])] = Document(
                int(source["article_id"]), int(source["version"]), source["slug"], source["title"],
                source["description"], source["body"], tuple(source["tags"]), int(source["author_id"]),
                datetime.fromisoformat(source["created_at"]))
        return found

    async def refresh(self) -> None:
        await self.client.indices.refresh(index=self.alias)

    async def stats(self) -> IndexStats:
        documents = await self.client.count(index=self.alias, body={"query": {"term": {"deleted": False}}})
        tombstones = await self.client.count(index=self.alias, body={"query": {"term": {"deleted": True}}})
        newest = await self.client.search(index=self.alias, body={
            "size": 0, "aggs": {"newest": {"max": {"field": "version"}}}})
        return IndexStats(self.name, int(documents["count"]), int(tombstones["count"]),
                          int(newest["aggregations"]["newest"]["value"] or 0))

    async def close(self) -> None:
        await self.client.close()


def _status(error: dict[str, Any]) -> int:
    (details,) = error.values()
    return int(details.get("status", 0))


def _hit(hit: dict[str, Any]) -> BackendHit:
    source, marks = hit["_source"], hit.get("highlight", {})
    snippet = " … ".join(marks.get("body") or marks.get("description") or [source["description"]])
    return BackendHit(int(source["article_id"]), float(hit["_score"] or 0.0), source["slug"], source["title"],
                      source["description"], tuple(source["tags"]), int(source["author_id"]),
                      datetime.fromisoformat(source["created_at"]),
                      (marks.get("title") or [source["title"]])[0], snippet)
