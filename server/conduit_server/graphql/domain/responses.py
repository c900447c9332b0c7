"""Answers to anonymous queries, shared for a few seconds (docs/decisions/0047-graphql-response-cache.md).

What an anonymous reader gets depends only on the document, its variables and the data: it is the same
for every anonymous caller, as REST's public pages are (`public, max-age` at the edge, decision 0043).
So the answer to an anonymous *query* is kept for `ttl` seconds and served to the next anonymous
caller who sends the same document and variables, without executing it again; a signed-in caller's
request, a mutation, a subscription and any answer with errors are never kept.

Concurrent misses of one key are one execution (single flight): a burst of the same query asks the
mesh once, and the execution runs in its own task, so a caller who disconnects does not cancel it for
the others waiting on it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import GraphQLError, OperationType, get_operation_ast, parse

from conduit_server.runtime.flight import SharedResults

# An answer bigger than this is served but not kept (a page of 100 articles is ~60 KiB).
MAX_ANSWER_BYTES = 1 << 20


@dataclass(frozen=True)
class Answer:
    """An HTTP answer as the ASGI view sent it."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    @property
    def keepable(self) -> bool:
        """200 with data and no errors: what every anonymous caller of the same document would get."""
        if self.status != 200 or len(self.body) > MAX_ANSWER_BYTES:
            return False
        try:
            payload = json.loads(self.body)
        except ValueError:
            return False
        return isinstance(payload, dict) and "data" in payload and not payload.get("errors")


@lru_cache(maxsize=256)
def _is_query(document: str, operation_name: str | None) -> bool:
    try:
        operation = get_operation_ast(parse(document), operation_name)
    except GraphQLError:
        return False  # the view answers the syntax error; nothing to keep
    return operation is not None and operation.operation == OperationType.QUERY


def key_of(request: Mapping[str, Any], accept: str) -> bytes | None:
    """The cache key of a GraphQL-over-HTTP request body, or None when it must not be shared: not a
    query (a mutation, a subscription, a syntax error) or not the usual `{query, variables,
    operationName}` shape. `accept` is part of it, since it chooses the answer's media type."""
    document, variables, name = request.get("query"), request.get("variables"), request.get("operationName")
    if not isinstance(document, str) or not isinstance(name, str | None) or not isinstance(variables, dict | None):
        return None
    if not _is_query(document, name):
        return None
    canonical = json.dumps([document, variables or {}, name, accept], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).digest()


class ResponseCache(SharedResults[bytes, Answer]):
    """At most `entries` answers, each for `ttl` seconds (least recently used dropped first); only
    `keepable` answers are kept."""

    def __init__(self, ttl: float, entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ttl, entries, keepable=lambda answer: answer.keepable, clock=clock)

    async def answer(self, key: bytes, execute: Callable[[], Awaitable[Answer]]) -> tuple[Answer, bool]:
        """(the answer, whether it came from the cache): a fresh kept one, the one being computed for
        the same key, or a new execution whose answer is kept when `keepable`."""
        return await self.get(key, execute)


__all__ = ["MAX_ANSWER_BYTES", "Answer", "ResponseCache", "key_of"]
