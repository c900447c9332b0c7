"""Subscriptions: the realtime service's watch streams as GraphQL subscriptions (graphql-transport-ws).

Each subscription opens one watch stream with the caller's metadata and yields its events, heartbeats
included: the first HEARTBEAT says the stream has joined (every change after it is delivered), and a
heartbeat's `eventId` is the stream's position. Every event carries its `eventId`: a client that
reconnects subscribes again with `after: <last eventId>` and gets every event after it, with no gap
(the realtime service replays from its stream; an id too old to replay is an OUT_OF_RANGE error).
The stream ends when the client unsubscribes or disconnects (the generator is closed, which cancels
the call).

Identical subscriptions (the same document, variables and credentials, not resuming) share one watch
stream and one execution per event (`SharingSchema`, domain/sharing.py, decision 0050): a thousand
readers of the same public events cost the realtime service one stream and this process one
execution per event, not a thousand.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncGenerator, AsyncIterator, Hashable
from functools import lru_cache
from typing import Any

import grpc
import strawberry
from google.protobuf.timestamp_pb2 import Timestamp
from graphql import (
    ArgumentNode,
    DocumentNode,
    Executor,
    FieldNode,
    GraphQLError,
    GraphQLSyntaxError,
    NullValueNode,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    execute_subscription_event,
    parse,
)
from strawberry.types import ExecutionResult, Info

from conduit.realtime.v1 import realtime_pb2
from conduit_server.graphql.api import Context, context_of, failure_of
from conduit_server.graphql.domain import types
from conduit_server.graphql.domain.errors import CallFailure, graphql_error, unauthenticated
from conduit_server.graphql.domain.sharing import Opened, SharedSubscriptions, TooManySubscriptions

# The argument by which a subscription resumes after an event id: such a subscription is never shared.
RESUME_ARGUMENT = "after"


async def _events(call: Any, context: Context) -> AsyncGenerator[types.Event, None]:
    try:
        async for answer in call:
            for event in (answer.event, *answer.events) if answer.HasField("event") else answer.events:
                context.watch_position = event.event_id
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
        async for event in _events(_open(context, context.mesh.realtime.WatchArticles, request), context):
            yield event

    @strawberry.subscription(description="What happens to one article: edits, comments added and deleted, "
                                         "favorites; `after`: the last eventId seen.")
    async def article_activity(self, info: Info[Context, Any], slug: str, after: str | None = None
                               ) -> AsyncIterator[types.Event]:
        context = context_of(info)
        request = realtime_pb2.WatchArticleRequest(slug=slug, resume_token=after or "")
        async for event in _events(_open(context, context.mesh.realtime.WatchArticle, request), context):
            yield event

    @strawberry.subscription(description="New articles by the users the caller follows (signed in); "
                                         "`after`: the last eventId seen.")
    async def feed_events(self, info: Info[Context, Any], after: str | None = None) -> AsyncIterator[types.Event]:
        context = context_of(info)
        if not context.signed_in:
            raise unauthenticated()
        request = realtime_pb2.WatchFeedRequest(resume_token=after or "")
        async for event in _events(_open(context, context.mesh.realtime.WatchFeed, request), context):
            yield event


@lru_cache(maxsize=256)
def _document(query: str) -> DocumentNode | None:
    try:
        return parse(query)
    except (GraphQLSyntaxError, RecursionError):
        return None


def _resumes(argument: ArgumentNode, variables: dict[str, Any]) -> bool:
    value = argument.value
    if isinstance(value, VariableNode):
        return variables.get(value.name.value) not in (None, "")
    return not isinstance(value, NullValueNode) and getattr(value, "value", "") != ""


def shareable(query: str, variables: dict[str, Any] | None, operation_name: str | None) -> bool:
    """Whether this document subscribes to one field, not resuming: then its results are the same for
    every subscriber with the same variables and credentials. Anything else (queries, several root
    fields, fragments at the root, a document that does not parse) runs on its own, as before."""
    document = _document(query) if len(query) <= 16_384 else None
    if document is None:
        return False
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)
                  and (operation_name is None or (d.name is not None and d.name.value == operation_name))]
    if len(operations) != 1 or operations[0].operation != OperationType.SUBSCRIPTION:
        return False
    selections = operations[0].selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return False
    arguments = selections[0].arguments or ()
    return not any(a.name.value == RESUME_ARGUMENT and _resumes(a, variables or {}) for a in arguments)


def _client_of(context: Context) -> str:
    """Who the per-client cap counts, as the realtime service would: the user, else the address."""
    if context.viewer_id:
        return f"user:{context.viewer_id}"
    hops = [hop.strip() for hop in dict(context.metadata).get("x-forwarded-for", "").split(",") if hop.strip()]
    return f"ip:{hops[-1] if hops else 'unknown'}"


def _failure(code: str, message: str) -> ExecutionResult:
    return ExecutionResult(data=None, errors=[graphql_error(CallFailure(code, message))])


async def _one(result: ExecutionResult) -> AsyncIterator[ExecutionResult]:
    yield result


class SharingSchema:
    """Stands in for the schema in the WebSocket handler: a shareable subscription joins the feed of its
    key (one watch stream, one execution per event); every other operation goes to the schema."""

    def __init__(self, schema: strawberry.Schema, shared: SharedSubscriptions[ExecutionResult]) -> None:
        self.schema = schema
        self.shared = shared

    async def stream(self, query: str, variable_values: dict[str, Any] | None = None,
                     context_value: Any = None, root_value: Any = None, operation_name: str | None = None,
                     **rest: Any) -> Any:
        if rest or not isinstance(context_value, Context) or not shareable(query, variable_values, operation_name):
            return await self.schema.stream(query, variable_values=variable_values, context_value=context_value,
                                            root_value=root_value, operation_name=operation_name, **rest)
        context = context_value
        key: Hashable = (query, operation_name, json.dumps(variable_values or {}, sort_keys=True, default=str),
                         dict(context.metadata).get("authorization", ""))

        async def open_source() -> Opened[ExecutionResult]:
            # The feed's own context: its position is the feed's alone (one connection has several streams).
            own = Context(context.mesh, context.metadata, context.viewer_id)
            source = await self.schema.stream(query, variable_values=variable_values, context_value=own,
                                              root_value=root_value, operation_name=operation_name)
            return source, lambda: own.watch_position  # type: ignore[return-value]

        async def joined(position: str) -> ExecutionResult:
            return await heartbeat_result(self.schema, query, variables=variable_values, operation_name=operation_name,
                                          context=context, position=position)

        def fell_behind() -> ExecutionResult:
            return _failure("RESOURCE_EXHAUSTED", "this subscription fell too far behind and was ended: subscribe "
                                                  "again with `after` set to the last eventId received")
        try:
            return self.shared.results(key, _client_of(context), open_source, joined, fell_behind)
        except TooManySubscriptions as refused:
            return _one(_failure("RESOURCE_EXHAUSTED", str(refused)))


async def heartbeat_result(schema: strawberry.Schema, query: str, *, variables: dict[str, Any] | None,
                           operation_name: str | None, context: Context, position: str) -> ExecutionResult:
    """The document executed for a heartbeat at `position`, as its own stream would have sent it."""
    document = _document(query)
    if document is None:  # parsed when it was found shareable
        raise GraphQLError("the subscription document no longer parses")
    executor = Executor.build(schema._schema, document, context_value=context,
                              raw_variable_values=variables, operation_name=operation_name)
    if isinstance(executor, list):
        return ExecutionResult(data=None, errors=executor)
    occurred = Timestamp()
    occurred.GetCurrentTime()
    event = types.Event.from_pb(realtime_pb2.Event(event_id=position, type=realtime_pb2.EVENT_TYPE_HEARTBEAT,
                                                    occurred_at=occurred))
    result = execute_subscription_event(executor.build_per_event_executor(event))
    if inspect.isawaitable(result):
        result = await result
    return ExecutionResult(data=result.data, errors=result.errors, extensions=result.extensions)


__all__ = ["SharingSchema", "Subscription", "heartbeat_result", "shareable"]
