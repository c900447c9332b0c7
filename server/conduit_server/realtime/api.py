"""gRPC servicer of conduit.realtime.v1: requests in, serialized stream messages out.

Messages are serialized once per event in the hub and handed to every stream as bytes (a
batched stream's message is such bytes concatenated, see `enrich.batch`), so the handlers
are registered with a serializer that passes bytes through (the generated
`add_RealtimeServiceServicer_to_server` would serialize each message again per stream).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf.message import Message

from conduit.realtime.v1 import realtime_pb2
from conduit_server.realtime.domain.streams import Streams
from conduit_server.realtime.domain.watchers import ArticleSelector, ArticlesSelector, FeedSelector
from conduit_server.runtime import auth
from conduit_server.runtime.errors import PermissionDenied

SERVICE = realtime_pb2.DESCRIPTOR.services_by_name["RealtimeService"]
#: Initial metadata of every watch: the heartbeat interval, by which clients detect a silent stream.
HEARTBEAT_INTERVAL_KEY = "conduit-heartbeat-interval-ms"


def _viewer() -> int | None:
    """The calling user's id, for `following`; None for anonymous callers and service accounts."""
    principal = auth.current_principal()
    if principal is None or principal.is_service:
        return None
    return principal.user_id


class RealtimeApi:
    """WatchFeed, WatchArticle, WatchArticles."""

    def __init__(self, streams: Streams) -> None:
        self._streams = streams
        self._announce = ((HEARTBEAT_INTERVAL_KEY, str(round(streams.config.heartbeat_seconds * 1000))),)

    async def _announced(self, context: Any, messages: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """`messages`, with the heartbeat interval in the initial metadata sent just before the first one:
        a stream refused before it starts (per-client cap, shutting down) still ends trailers-only, so
        Envoy can answer REST/SSE callers with its status (429 + Retry-After), not a 200 and a cut."""
        announced = False
        async for message in messages:
            if not announced:
                await context.send_initial_metadata(self._announce)
                announced = True
            yield message

    async def WatchFeed(self, request: realtime_pb2.WatchFeedRequest, context: Any) -> AsyncIterator[bytes]:
        user_id = _viewer()
        if user_id is None:  # the contract lets service accounts in; a feed needs a user, as in ListFeed
            raise PermissionDenied("only users may have a feed", reason="USER_ONLY")

        def feed(followees: Any) -> FeedSelector:
            return FeedSelector(followees)

        stream = self._streams.watch("WatchFeed", feed, resume_token=request.resume_token, user_id=user_id,
                                     batched=request.batched, client=auth.client_key(context))
        async for message in self._announced(context, stream):
            yield message

    async def WatchArticle(self, request: realtime_pb2.WatchArticleRequest,
                           context: Any) -> AsyncIterator[bytes]:
        def article(followees: Any) -> ArticleSelector:
            return ArticleSelector(request.slug, followees)

        stream = self._streams.watch("WatchArticle", article, resume_token=request.resume_token, user_id=_viewer(),
                                     batched=request.batched, client=auth.client_key(context))
        async for message in self._announced(context, stream):
            yield message

    async def WatchArticles(self, request: realtime_pb2.WatchArticlesRequest,
                            context: Any) -> AsyncIterator[bytes]:
        def articles(followees: Any) -> ArticlesSelector:
            return ArticlesSelector(request.tag, request.author, followees)

        stream = self._streams.watch("WatchArticles", articles, resume_token=request.resume_token, user_id=_viewer(),
                                     batched=request.batched, client=auth.client_key(context))
        async for message in self._announced(context, stream):
            yield message


def _serialize(message: bytes | Message) -> bytes:
    return message if isinstance(message, bytes) else message.SerializeToString()


def register(servicer: RealtimeApi, server: grpc.aio.Server) -> None:
    """Like the generated `add_RealtimeServiceServicer_to_server`, with pre-serialized responses."""
    requests: dict[str, Any] = {"WatchFeed": realtime_pb2.WatchFeedRequest,
                                "WatchArticle": realtime_pb2.WatchArticleRequest,
                                "WatchArticles": realtime_pb2.WatchArticlesRequest}
    handlers = {
        name: grpc.unary_stream_rpc_method_handler(getattr(servicer, name),
                                                   request_deserializer=request.FromString,
                                                   response_serializer=_serialize)
        for name, request in requests.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),))
    server.add_registered_method_handlers(SERVICE.full_name, handlers)  # type: ignore[attr-defined]
