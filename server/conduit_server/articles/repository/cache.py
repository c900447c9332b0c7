"""What the articles service caches in Redis, under which names, and how it is encoded.

Cached values are viewer-independent (no `favorited`, no `following`); the
domain personalises them after reading. Values are `ArticleRecord` protobufs.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence

import redis.asyncio as aioredis

from conduit.articles.v1 import events_pb2
from conduit_server.articles.domain.records import StoredArticle
from conduit_server.articles.events import article_record, stored_article
from conduit_server.runtime.cache import Cache, pack_messages, unpack_messages

NAMESPACE = "conduit:articles:cache"
# Requests for the unfiltered list at offset 0 with at most this limit are served from the cache.
FRONT_PAGE_SIZE = 20
ARTICLE_TTL_SECONDS = 60.0
FRONT_PAGE_TTL_SECONDS = 15.0
TAGS_TTL_SECONDS = 60.0
_TAGS = "tags"
_FRONT = "front"


def _article_name(slug: str) -> str:
    return f"article:{slug}"


def _encode_article(article: StoredArticle) -> bytes:
    return article_record(article).SerializeToString()


# Decoding is memoised by the cached bytes: the same value read again (the common case for hot
# articles and the front page) is not parsed again. The results are immutable, so sharing is safe.
@functools.lru_cache(maxsize=64)  # values carry bodies (≤ 200,000 characters): a few MiB at most
def _decode_article(data: bytes) -> StoredArticle:
    return stored_article(events_pb2.ArticleRecord.FromString(data))


def _encode_front(front: tuple[int, Sequence[StoredArticle]]) -> bytes:
    total, articles = front
    return pack_messages([article_record(article) for article in articles], header=total)


@functools.lru_cache(maxsize=8)
def _decode_front(data: bytes) -> tuple[int, tuple[StoredArticle, ...]]:
    total, records = unpack_messages(data, events_pb2.ArticleRecord)
    return total, tuple(stored_article(record) for record in records)


def _encode_tags(tags: list[str]) -> bytes:
    return "\n".join(tags).encode()


def _decode_tags(data: bytes) -> list[str]:
    return data.decode().split("\n") if data else []


class ArticleCache:
    """Articles by slug, the front page of the public list, and the tag list."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.cache = Cache(redis, NAMESPACE, default_ttl_seconds=ARTICLE_TTL_SECONDS)

    async def article(self, slug: str, load: Callable[[], Awaitable[StoredArticle | None]]
                      ) -> StoredArticle | None:
        return await self.cache.get_or_load(_article_name(slug), load, _encode_article, _decode_article,
                                            ARTICLE_TTL_SECONDS)

    async def front_page(self, load: Callable[[], Awaitable[tuple[int, Sequence[StoredArticle]]]]
                         ) -> tuple[int, Sequence[StoredArticle]]:
        """The total count of articles and the newest FRONT_PAGE_SIZE of them (without bodies)."""
        found = await self.cache.get_or_load(_FRONT, load, _encode_front, _decode_front,
                                             FRONT_PAGE_TTL_SECONDS)
        assert found is not None  # the loader never returns None
        return found

    async def tags(self, load: Callable[[], Awaitable[list[str]]]) -> list[str]:
        found = await self.cache.get_or_load(_TAGS, load, _encode_tags, _decode_tags, TAGS_TTL_SECONDS)
        return found or []

    async def invalidate(self, *, slugs: Iterable[str] = (), lists: bool = False, tags: bool = False) -> None:
        """Drop what a committed write changed: the articles by slug, the list front page, the tags."""
        names = [_article_name(slug) for slug in slugs]
        if lists:
            names.append(_FRONT)
        if tags:
            names.append(_TAGS)
        await self.cache.invalidate(names)
