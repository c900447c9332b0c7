"""Subscriptions: the realtime service's watch streams as GraphQL subscriptions (graphql-transport-ws).

Each subscription opens one watch stream with the caller's metadata and yields its events, heartbeats
included: the first HEARTBEAT says the stream has joined (every change after it is delivered), and a
heartbeat's `eventId` is the stream's position. Every event carries its `eventId`: a client that
reconnects subscribes again with `after: <last eventId>` and gets every event after it, with no gap
(the realtime service replays from its stream; an id too old to replay is an OUT_OF_RANGE error).
The stream ends when the client unsubscribes or disconnects (the generator is closed, which cancels
the call).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import grpc
import strawberry
from strawberry.types import Info

from conduit.realtime.v1 import realtime_pb2
from conduit_server.graphql.api import Context, context_of, failure_of
from conduit_server.graphql.domain import types
from conduit_server.graphql.domain.errors import graphql_error, unauthenticated


async def _events(call: Any) -> AsyncGenerator[types.Event, None]:
    try:
        async for answer in call:
            for event in (answer.event, *answer.events) if answer.HasField("event") else answer.events:
                yield types.Event.from_pb(event)
    except grpc.aio.AioRpcError as error:
        raise graphql_error(failure_of(error)) from None
    finally:
        call.cancel()


def _open(context: Context, method: Any, request: Any) -> Any:
    return method(request, metadata=context.metadata)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="New, changed and deleted articles, optionally of one tag or author; "
                                         "`after`: the last eventId seen, to resume with no gap.")
    async def article_events(self, info: Info[Context, Any], tag: str | None = None, author: str | None = None,
                             after: str | None = None) -> AsyncIterator[types.Event]:
        context = context_of(info)
        request = realtime_pb2.WatchArticlesRequest(tag=tag or "", author=author or "", resume_token=after or "")
        async for event in _events(_open(context, context.mesh.realtime.WatchArticles, request)):
            yield event

    @strawberry.subscription(description="What happens to one article: edits, comments added and deleted, "
                                         "favorites; `after`: the last eventId seen.")
    async def article_activity(self, info: Info[Context, Any], slug: str, after: str | None = None
                               ) -> AsyncIterator[types.Event]:
        context = context_of(info)
        request = realtime_pb2.WatchArticleRequest(slug=slug, resume_token=after or "")
        async for event in _events(_open(context, context.mesh.realtime.WatchArticle, request)):
            yield event

    @strawberry.subscription(description="New articles by the users the caller follows (signed in); "
                                         "`after`: the last eventId seen.")
    async def feed_events(self, info: Info[Context, Any], after: str | None = None) -> AsyncIterator[types.Event]:
        context = context_of(info)
        if not context.signed_in:
            raise unauthenticated()
        request = realtime_pb2.WatchFeedRequest(resume_token=after or "")
        async for event in _events(_open(context, context.mesh.realtime.WatchFeed, request)):
            yield event


__all__ = ["Subscription"]
