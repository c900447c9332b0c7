"""How every call goes out: the method table's policy, one budget, the token, a key, typed errors.

One unary operation (`Transport.unary`): every attempt gets the method's
per-attempt timeout cut to what the operation budget has left; the same
idempotency key (non-idempotent methods, `idempotency-key` metadata, made
once per operation or given with `with_options(idempotency_key=...)`); the
current access token. After an UNAUTHENTICATED answer the token source is
asked once for a new token and the attempt replayed. Then `_retry.decide`
says whether to wait and try again.
"""

# ruff: noqa: ASYNC109 - `timeout` is the gRPC deadline sent with the call, not a local wait

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Self

import grpc
import grpc.aio
from google.protobuf.message import Message

from conduit.client import _telemetry
from conduit.client._auth import AsyncTokenSource, Metadata, SyncTokenSource, bearer
from conduit.client._contract import IDEMPOTENCY_KEY_HEADER
from conduit.client._errors import ConduitError, DeadlineExceeded, Unauthenticated, from_rpc_error
from conduit.client._methods import Method, Req, Resp
from conduit.client._policy import MethodPolicy, MethodTable
from conduit.client._retry import Budget, RetryPolicy, decide

#: The budget of one unary operation (all its attempts and waits) when none is set, in seconds;
#: at least one whole attempt always fits.
DEFAULT_DEADLINE = 30.0


@dataclass(frozen=True)
class CallOptions:
    """Options of the calls of one client copy (`with_options`)."""

    timeout: float | None = None
    """Seconds per attempt; None: the method's default from the contract."""
    deadline: float | None = None
    """Seconds for the whole operation (retries, pages, reconnects); None: 30 s for a unary call,
    unbounded for pagers and watches."""
    retries: int | None = None
    """Retries after the first attempt; None: the method's table entry; 0 turns retries off."""
    metadata: tuple[tuple[str, str], ...] = ()
    """Extra request metadata sent with every call."""
    idempotency_key: str | None = None
    """The key of the next non-idempotent call; None: a new random key per operation."""

    def __post_init__(self) -> None:
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.deadline is not None and self.deadline <= 0:
            raise ValueError("deadline must be positive")
        if self.retries is not None and self.retries < 0:
            raise ValueError("retries must not be negative")
        for key, _ in self.metadata:
            if key.lower() in ("authorization", IDEMPOTENCY_KEY_HEADER):
                raise ValueError(f"{key} is set by the client; use credentials or idempotency_key")


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


class _Operation:
    """The state of one operation across its attempts (shared by the sync and async transports)."""

    def __init__(self, method: Method[Any, Any], policy: MethodPolicy, options: CallOptions,
                 timeout: float | None, budget: Budget | None) -> None:
        self.method = method
        self.policy = policy
        self.per_attempt = timeout if timeout is not None else (
            options.timeout if options.timeout is not None else policy.timeout)
        if budget is None:
            seconds = options.deadline if options.deadline is not None else (
                max(DEFAULT_DEADLINE, self.per_attempt) if self.per_attempt is not None else None)
            budget = Budget(seconds)
        self.budget = budget
        self.backoff: RetryPolicy = policy.backoff if options.retries is None else dataclasses.replace(
            policy.backoff, max_attempts=options.retries + 1)
        self.key = (options.idempotency_key or uuid.uuid4().hex) if policy.idempotency_key else None
        self.extra = options.metadata
        self.attempts = 0
        self.retries = 0
        self.reauthenticated = False
        self.last_delay = 0.0
        self.last_reason: str | None = None

    def next_timeout(self) -> tuple[float | None, str]:
        timeout, limit = self.budget.attempt_timeout(self.per_attempt)
        if timeout is not None and timeout <= 0:
            raise self.budget.error(self.method.name, attempts=self.attempts)
        self.attempts += 1
        return timeout, limit

    def metadata(self, auth: Metadata) -> Metadata:
        key = ((IDEMPOTENCY_KEY_HEADER, self.key),) if self.key else ()
        return (*auth, *key, *self.extra, *_telemetry.trace_metadata())

    def reauthenticate(self, error: ConduitError, can_refresh: bool) -> bool:
        """True to replay at once with a new token (once per operation)."""
        if isinstance(error, Unauthenticated) and can_refresh and not self.reauthenticated:
            self.reauthenticated = True
            self.last_delay, self.last_reason = 0.0, "UNAUTHENTICATED: token refreshed"
            _telemetry.log.debug("%s: UNAUTHENTICATED, refreshing the token and replaying", self.method.name)
            return True
        return False

    def failed(self, error: ConduitError, timeout: float | None, limit: str) -> float:
        """Seconds to wait before the next attempt; raises the error to give the caller otherwise."""
        if error.code == grpc.StatusCode.DEADLINE_EXCEEDED:
            if limit == "operation":
                raise self.budget.error(self.method.name, attempts=self.attempts, cause=error)
            error = DeadlineExceeded(
                f"attempt {self.attempts} of {self.method.name} timed out after {timeout:g}s",
                details=error.details, trailing_metadata=error.trailing_metadata, budget="attempt",
                spent=self.budget.spent(), limit=timeout, attempts=self.attempts)
        delay, why = decide(error, retry=self.retries, policy=self.backoff, remaining=self.budget.remaining(),
                            retry_codes=self.policy.retry_codes)
        if delay is None:
            _telemetry.log.debug("%s: not retried after attempt %d: %s", self.method.name, self.attempts, why)
            error.attempts = self.attempts
            error.add_note(f"not retried: {why}")
            raise error
        _telemetry.log.debug("%s: retrying in %.3fs after attempt %d (%s)", self.method.name, delay,
                             self.attempts, why)
        self.retries += 1
        self.last_delay, self.last_reason = delay, why
        return delay


class _Shared:
    """What both transports do the same way: copies with other settings, budgets, token refresh."""

    auth: Any
    options: CallOptions

    def _copy(self, **changes: Any) -> Self:
        raise NotImplementedError

    def with_auth(self, auth: Any) -> Self:
        """The same channel and settings with another token source."""
        return self._copy(auth=auth)

    def with_options(self, options: CallOptions) -> Self:
        return self._copy(options=options)

    def with_table(self, table: MethodTable) -> Self:
        return self._copy(table=table)

    def budget(self) -> Budget:
        """A budget for a multi-call operation (a pager, a watch): the options' deadline, else unbounded."""
        return Budget(self.options.deadline)

    def _refresh(self) -> bool:
        """Tell the token source the server refused its token; False when it cannot get another."""
        invalidate = getattr(self.auth, "invalidate", None)
        if invalidate is None:
            return False
        invalidate()
        return True


class Transport(_Shared):
    """Sync calls over one channel (thread-safe, as the channel is)."""

    def __init__(self, channel: grpc.Channel, *, table: MethodTable, auth: SyncTokenSource | None = None,
                 options: CallOptions | None = None, callables: dict[str, Any] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.channel = channel
        self.table = table
        self.auth = auth
        self.options = options or CallOptions()
        self._sleep = sleep
        self._callables: dict[str, Any] = callables if callables is not None else {}

    def _copy(self, **changes: Any) -> Self:
        fields = {"table": self.table, "auth": self.auth, "options": self.options, "sleep": self._sleep, **changes}
        return type(self)(self.channel, callables=self._callables, **fields)

    def metadata(self) -> Metadata:
        token = self.auth.token() if self.auth is not None else None
        return bearer(token) if token else ()

    def unary(self, method: Method[Req, Resp], request: Req, *, timeout: float | None = None,
              authenticate: bool = True, budget: Budget | None = None) -> Resp:
        """Call a unary RPC under its policy: attempts, waits and pages within one budget."""
        stub: grpc.UnaryUnaryMultiCallable[Req, Resp] = self._callable(method)
        policy = self.table.for_path(method.path)
        op = _Operation(method, policy, self.options, timeout, budget)
        with _telemetry.operation_span(method.name, kind=method.kind, idempotency=method.idempotency) as span:
            while True:
                attempt_timeout, limit = op.next_timeout()
                with _telemetry.attempt_span(method.name, op.attempts, backoff=op.last_delay,
                                             reason=op.last_reason, timeout=attempt_timeout):
                    try:
                        response, call = stub.with_call(
                            request, timeout=attempt_timeout,
                            metadata=op.metadata(self.metadata() if authenticate else ()))
                    except grpc.RpcError as exc:
                        error, cause = from_rpc_error(exc), exc
                        _record(method, error.code, None, exc, op.attempts)
                    else:
                        _record(method, grpc.StatusCode.OK, response, call, op.attempts)
                        span.set_attribute("conduit.attempts", op.attempts)
                        return response
                if op.reauthenticate(error, authenticate and self._refresh()):
                    continue
                try:
                    delay = op.failed(error, attempt_timeout, limit)
                except ConduitError as final:
                    span.set_attribute("conduit.attempts", op.attempts)
                    raise final from cause
                self._sleep(delay)

    def server_stream(self, method: Method[Req, Resp], request: Req, *,
                      budget: Budget | None = None) -> grpc.CallIterator[Resp]:
        """Open a server stream; its deadline is what `budget` has left (none when unbounded)."""
        stub: grpc.UnaryStreamMultiCallable[Req, Resp] = self._callable(method)
        remaining = budget.remaining() if budget is not None else None
        if remaining is not None and remaining <= 0 and budget is not None:
            raise budget.error(method.name, attempts=0)
        metadata = (*self.metadata(), *self.options.metadata, *_telemetry.trace_metadata())
        return stub(request, timeout=remaining, metadata=metadata)

    def client_stream(self, method: Method[Req, Resp], requests: Iterable[Req], *,
                      timeout: float | None = None) -> Resp:
        """Send a client stream (never retried: the requests may be consumed)."""
        stub: grpc.StreamUnaryMultiCallable[Req, Resp] = self._callable(method)
        policy = self.table.for_path(method.path)
        op = _Operation(method, policy, self.options, timeout, None)
        attempt_timeout, _ = op.next_timeout()
        with _telemetry.operation_span(method.name, kind=method.kind, idempotency=method.idempotency):
            try:
                return stub(iter(requests), timeout=attempt_timeout, metadata=op.metadata(self.metadata()))
            except grpc.RpcError as exc:
                raise from_rpc_error(exc) from exc

    def _callable(self, method: Method[Any, Any]) -> Any:
        return _callable(self._callables, self.channel, method)


class AsyncTransport(_Shared):
    """`grpc.aio` calls over one channel; use it from the event loop that created the channel."""

    def __init__(self, channel: grpc.aio.Channel, *, table: MethodTable, auth: AsyncTokenSource | None = None,
                 options: CallOptions | None = None, callables: dict[str, Any] | None = None) -> None:
        self.channel = channel
        self.table = table
        self.auth = auth
        self.options = options or CallOptions()
        self._callables: dict[str, Any] = callables if callables is not None else {}

    def _copy(self, **changes: Any) -> Self:
        fields = {"table": self.table, "auth": self.auth, "options": self.options, **changes}
        return type(self)(self.channel, callables=self._callables, **fields)

    async def metadata(self) -> Metadata:
        token = await self.auth.token() if self.auth is not None else None
        return bearer(token) if token else ()

    async def unary(self, method: Method[Req, Resp], request: Req, *, timeout: float | None = None,
                    authenticate: bool = True, budget: Budget | None = None) -> Resp:
        """Call a unary RPC under its policy: attempts, waits and pages within one budget."""
        stub: grpc.aio.UnaryUnaryMultiCallable[Req, Resp] = self._callable(method)
        policy = self.table.for_path(method.path)
        op = _Operation(method, policy, self.options, timeout, budget)
        with _telemetry.operation_span(method.name, kind=method.kind, idempotency=method.idempotency) as span:
            while True:
                attempt_timeout, limit = op.next_timeout()
                with _telemetry.attempt_span(method.name, op.attempts, backoff=op.last_delay,
                                             reason=op.last_reason, timeout=attempt_timeout):
                    auth = await self.metadata() if authenticate else ()
                    call = stub(request, timeout=attempt_timeout, metadata=op.metadata(auth))
                    try:
                        response = await call
                    except grpc.RpcError as exc:
                        error, cause = from_rpc_error(exc), exc
                        if _telemetry.capturing():
                            _telemetry.record(method.name, error.code, None, initial=await call.initial_metadata(),
                                              trailing=await call.trailing_metadata(), attempts=op.attempts)
                    else:
                        if _telemetry.capturing():
                            _telemetry.record(method.name, grpc.StatusCode.OK, response,
                                              initial=await call.initial_metadata(),
                                              trailing=await call.trailing_metadata(), attempts=op.attempts)
                        span.set_attribute("conduit.attempts", op.attempts)
                        return response
                if op.reauthenticate(error, authenticate and self._refresh()):
                    continue
                try:
                    delay = op.failed(error, attempt_timeout, limit)
                except ConduitError as final:
                    span.set_attribute("conduit.attempts", op.attempts)
                    raise final from cause
                await asyncio.sleep(delay)

    async def server_stream(self, method: Method[Req, Resp], request: Req, *,
                            budget: Budget | None = None) -> grpc.aio.UnaryStreamCall[Req, Resp]:
        """Open a server stream; its deadline is what `budget` has left (none when unbounded)."""
        stub: grpc.aio.UnaryStreamMultiCallable[Req, Resp] = self._callable(method)
        remaining = budget.remaining() if budget is not None else None
        if remaining is not None and remaining <= 0 and budget is not None:
            raise budget.error(method.name, attempts=0)
        metadata = (*await self.metadata(), *self.options.metadata, *_telemetry.trace_metadata())
        return stub(request, timeout=remaining, metadata=metadata)

    async def client_stream(self, method: Method[Req, Resp], requests: Iterable[Req] | AsyncIterable[Req], *,
                            timeout: float | None = None) -> Resp:
        """Send a client stream (never retried: the requests may be consumed)."""
        stub: grpc.aio.StreamUnaryMultiCallable[Req, Resp] = self._callable(method)
        policy = self.table.for_path(method.path)
        op = _Operation(method, policy, self.options, timeout, None)
        attempt_timeout, _ = op.next_timeout()
        source: Any = requests if isinstance(requests, AsyncIterable) else iter(requests)
        with _telemetry.operation_span(method.name, kind=method.kind, idempotency=method.idempotency):
            try:
                return await stub(source, timeout=attempt_timeout, metadata=op.metadata(await self.metadata()))
            except grpc.RpcError as exc:
                raise from_rpc_error(exc) from exc

    def _callable(self, method: Method[Any, Any]) -> Any:
        return _callable(self._callables, self.channel, method)


def _record(method: Method[Any, Any], code: grpc.StatusCode, response: Message | None, call: Any,
            attempts: int) -> None:
    if not _telemetry.capturing():
        return
    initial = call.initial_metadata() if hasattr(call, "initial_metadata") else ()
    trailing = call.trailing_metadata() if hasattr(call, "trailing_metadata") else ()
    _telemetry.record(method.name, code, response, initial=initial, trailing=trailing, attempts=attempts)


def _callable(cache: dict[str, Any], channel: Any, method: Method[Any, Any]) -> Any:
    found = cache.get(method.path)
    if found is None:
        factory = {"unary": channel.unary_unary, "server_stream": channel.unary_stream,
                   "client_stream": channel.stream_unary}[method.kind]
        found = factory(method.path, request_serializer=_serialize,
                        response_deserializer=method.response_type.FromString)
        cache[method.path] = found
    return found
