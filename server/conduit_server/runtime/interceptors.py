"""The server interceptor chain: logging → errors → authorization → validation.

Validation is also where every request's strings are checked once for what cannot be stored
(U+0000, bytes that are not UTF-8: `runtime.text`), for every RPC of every service.

Each stage wraps the method handlers once per method (cached), so the per-call
cost is a function call, not a handler rebuild. Order matters: errors must see
what authorization and validation raise, and logging must see the final code.
"""

from __future__ import annotations

import hmac
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, cast

import grpc
import protovalidate
from google.protobuf import descriptor_pool
from google.protobuf.message import DecodeError, Message

from conduit_server.runtime import auth
from conduit_server.runtime.errors import (
    ConduitError,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
    StatusPayload,
    internal_status,
    to_status,
)
from conduit_server.runtime.idempotency import IdempotencyGuard
from conduit_server.runtime.logs import request_id_var, trace_id_var
from conduit_server.runtime.text import INVALID_CHARACTER, Undecodable, unstorable_fields
from conduit_server.runtime.tokens import AccessTokenVerifier, parse_authorization_header

log = logging.getLogger("conduit.rpc")

Context = grpc.aio.ServicerContext[Any, Any]
UnaryBehavior = Callable[[Any, Context], Awaitable[Any]]
StreamBehavior = Callable[[Any, Context], AsyncIterator[Any]]
HEALTH_PREFIX = "/grpc.health.v1.Health/"
INTERNAL_TOKEN_KEY = "x-conduit-internal"  # noqa: S105 - a metadata key, not a secret


class _Stage:
    """Wraps a handler's behaviour; subclasses implement `unary` and `stream` around calls."""

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        raise NotImplementedError

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        raise NotImplementedError

    def wrap_deserializer(self, method: str, deserializer: Any) -> Any:
        return deserializer


def _generating(behavior: Any) -> StreamBehavior:
    """A streaming behaviour as an async generator. grpc also accepts a coroutine that sends with
    `context.write()` (grpc_health's Watch is one); the stages iterate, so such a one is adapted once."""
    if inspect.isasyncgenfunction(behavior) or not inspect.iscoroutinefunction(behavior):
        return cast("StreamBehavior", behavior)

    async def generate(request: Any, context: Context) -> AsyncIterator[Any]:
        await behavior(request, context)
        return
        yield  # an async generator that yields nothing: the coroutine wrote its messages itself

    return generate


def _rebuild(handler: Any, method: str, stage: _Stage) -> Any:
    kwargs = {"request_deserializer": stage.wrap_deserializer(method, handler.request_deserializer),
              "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(stage.wrap_unary(method, handler.unary_unary), **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(stage.wrap_unary(method, handler.stream_unary), **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(stage.wrap_stream(method, _generating(handler.unary_stream)),
                                                    **kwargs)
    return grpc.stream_stream_rpc_method_handler(stage.wrap_stream(method, _generating(handler.stream_stream)),
                                                 **kwargs)


class StageInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Applies one stage to every method, caching the wrapped handler per method."""

    def __init__(self, stage: _Stage) -> None:
        self._stage = stage
        self._cache: dict[str, tuple[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        cached = self._cache.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = _rebuild(handler, method, self._stage)
        self._cache[method] = (handler, wrapped)
        return wrapped


def _metadata(context: Context) -> dict[str, str]:
    return {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}


class LoggingStage(_Stage):
    """Request id (from Envoy's `x-request-id` or new), trace id, one JSON line per call."""

    def _begin(self, context: Context) -> tuple[Any, Any, float]:
        metadata = _metadata(context)
        request_id = metadata.get("x-request-id") or uuid.uuid4().hex
        traceparent = metadata.get("traceparent", "")
        trace_id = traceparent.split("-")[1] if traceparent.count("-") >= 3 else ""
        return request_id_var.set(request_id), trace_id_var.set(trace_id), time.perf_counter()

    def _end(self, method: str, context: Context, tokens: tuple[Any, Any, float], failed: bool) -> None:
        code = context.code() if failed else None
        status = code.name if isinstance(code, grpc.StatusCode) else ("UNKNOWN" if failed else "OK")
        # Envoy's health checks call every second per service: successful ones are DEBUG, so a
        # newcomer's terminal shows what matters.
        level = logging.DEBUG if method.startswith(HEALTH_PREFIX) and status == "OK" else logging.INFO
        log.log(level, "rpc", extra={"method": method, "code": status,
                                     "duration_ms": round((time.perf_counter() - tokens[2]) * 1000, 2)})
        auth.restore(request_id_var, tokens[0])
        auth.restore(trace_id_var, tokens[1])

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        async def call(request: Any, context: Context) -> Any:
            tokens = self._begin(context)
            failed = True
            try:
                response = await behavior(request, context)
                failed = False
                return response
            finally:
                self._end(method, context, tokens, failed)
        return call

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        async def call(request: Any, context: Context) -> AsyncIterator[Any]:
            tokens = self._begin(context)
            failed = True
            try:
                async for item in behavior(request, context):
                    yield item
                failed = False
            finally:
                self._end(method, context, tokens, failed)
        return call


class ErrorStage(_Stage):
    """The one place where exceptions become statuses (see errors.to_status)."""

    @staticmethod
    async def _abort(context: Context, payload: StatusPayload) -> None:
        await context.abort(payload.code, payload.message, trailing_metadata=payload.trailing_metadata)

    async def _handle(self, method: str, context: Context, error: BaseException) -> None:
        if isinstance(error, ConduitError):
            await self._abort(context, to_status(error))
        if isinstance(error, NotImplementedError):  # generated servicer base: not built yet
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented yet")
        log.error("unhandled error in %s", method, exc_info=error)
        await self._abort(context, internal_status())

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        async def call(request: Any, context: Context) -> Any:
            try:
                return await behavior(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as error:  # noqa: BLE001 - every failure must become a status
                await self._handle(method, context, error)
        return call

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        async def call(request: Any, context: Context) -> AsyncIterator[Any]:
            try:
                async for item in behavior(request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as error:  # noqa: BLE001 - every failure must become a status
                await self._handle(method, context, error)
        return call


class AuthStage(_Stage):
    """Enforces the method's rule from the contract and exposes the verified caller."""

    def __init__(self, rules: Mapping[str, auth.MethodRule], verifier: AccessTokenVerifier | None,
                 internal_token: str) -> None:
        self._rules = rules
        self._verifier = verifier
        self._internal_token = internal_token.encode()

    async def _authorize(self, method: str, context: Context) -> Any:
        rule = self._rules.get(method)
        if rule is None:  # reflection, health: not part of the contract
            return auth.set_principal(None)
        metadata = _metadata(context)
        if rule.internal:
            presented = metadata.get(INTERNAL_TOKEN_KEY, "").encode()
            if not self._internal_token or not hmac.compare_digest(presented, self._internal_token):
                raise PermissionDenied("internal method", reason="INTERNAL_ONLY")
            return auth.set_principal(None)
        principal = None
        token = parse_authorization_header(metadata.get("authorization", ""))
        if token is not None and self._verifier is not None:
            principal = await self._verifier.verify(token)
        rule.check(principal)
        return auth.set_principal(principal)

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        async def call(request: Any, context: Context) -> Any:
            token = await self._authorize(method, context)
            try:
                return await behavior(request, context)
            finally:
                auth.reset_principal(token)
        return call

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        async def call(request: Any, context: Context) -> AsyncIterator[Any]:
            token = await self._authorize(method, context)
            try:
                async for item in behavior(request, context):
                    yield item
            finally:
                auth.reset_principal(token)
        return call


def _limit(violation: Any) -> Any:
    value = violation.rule_value
    return value if isinstance(value, int | float | str) else None


def describe(violation: Any) -> FieldViolation:
    """A protovalidate violation as a field path and a RealWorld-style message."""
    path = ".".join(element.field_name for element in violation.proto.field.elements)
    rule_id: str = violation.proto.rule_id
    limit = _limit(violation)
    if rule_id == "required" or (rule_id.endswith(".min_len") and limit == 1):
        message = "can't be blank"
    elif rule_id.endswith(".min_len"):
        message = f"is too short (minimum is {limit} characters)"
    elif rule_id.endswith(".max_len"):
        message = f"is too long (maximum is {limit} characters)"
    elif rule_id in {"string.email", "string.uri", "string.pattern"}:
        message = "is invalid"
    else:
        message = violation.proto.message
    return FieldViolation(path or "body", message)


def check_text(request: Any) -> None:
    """Raise InvalidArgument naming every string field that cannot be stored (`runtime.text`)."""
    if isinstance(request, Undecodable):
        field = request.field()
        raise InvalidArgument([FieldViolation(field, INVALID_CHARACTER) if field is not None
                               else FieldViolation("body", "is not a valid message")])
    paths = list(unstorable_fields(request))
    if paths:
        raise InvalidArgument([FieldViolation(path, INVALID_CHARACTER) for path in paths])


def validate(message: Message | Undecodable) -> None:
    """Raise InvalidArgument for strings that cannot be stored, else with every protovalidate
    violation of `message`. The chain calls it on every unary request; a handler of a client
    stream calls it on each item."""
    check_text(message)
    assert isinstance(message, Message)  # an Undecodable always raised above
    try:
        protovalidate.validate(message)
    except protovalidate.ValidationError as error:
        raise InvalidArgument([describe(v) for v in error.violations]) from None


class ValidationStage(_Stage):
    """Checks unary requests with `validate` (client streams validate per item in their handler)."""

    def wrap_deserializer(self, method: str, deserializer: Any) -> Any:
        try:
            message = descriptor_pool.Default().FindMethodByName(method.strip("/").replace("/", ".")).input_type
        except KeyError:
            return deserializer
        if deserializer is None:
            return None

        def parse(data: bytes) -> Any:
            try:
                return deserializer(data)
            except DecodeError:
                # Answered by `validate` as a 422 naming the field, not by grpc as INTERNAL.
                return Undecodable(message, data)
        return parse

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        async def call(request: Any, context: Context) -> Any:
            if isinstance(request, Message | Undecodable):
                validate(request)
            return await behavior(request, context)
        return call

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        async def call(request: Any, context: Context) -> AsyncIterator[Any]:
            if isinstance(request, Message | Undecodable):
                validate(request)
            async for item in behavior(request, context):
                yield item
        return call


class IdempotencyStage(_Stage):
    """Keyed non-idempotent unary calls run once per key (runtime.idempotency); innermost, so that
    the caller is known and invalid requests never claim a key."""

    def __init__(self, guard: IdempotencyGuard) -> None:
        self.guard = guard

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        if method not in self.guard.methods:
            return behavior

        async def call(request: Any, context: Context) -> Any:
            return await self.guard.run(method, request, context, behavior)
        return call

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        return behavior


def chain(rules: Mapping[str, auth.MethodRule], verifier: AccessTokenVerifier | None,
          internal_token: str, idempotency: IdempotencyGuard | None = None) -> list[StageInterceptor]:
    """The interceptors of every service, outermost first."""
    stages: list[_Stage] = [LoggingStage(), ErrorStage(), AuthStage(rules, verifier, internal_token),
                            ValidationStage()]
    if idempotency is not None:
        stages.append(IdempotencyStage(idempotency))
    return [StageInterceptor(stage) for stage in stages]
