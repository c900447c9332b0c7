"""Resumable watches: iterate events; reconnect after a drop with the last event id.

Watches ask for batched streams (several events per message when the client or
the server is behind, which saves the per-message cost on both sides) and hand
the events over one by one. A stream that ends with UNAVAILABLE (a restart, a
lost connection) or RESOURCE_EXHAUSTED (a slow consumer cut off) is reopened
with the id of the last event handed over as its resume token, so nothing is
missed or repeated.
Reconnects back off exponentially with jitter (a server's RetryInfo wins);
after `max_reconnects` failures in a row the error is raised, and any event
received resets the count. A token older than the server's window raises
`StreamExpired`. A stream the server ends cleanly ends the iteration.

A connection can also die without closing (a half-open TCP connection, a
server that stops sending): the server sends a heartbeat every interval
(announced in the initial metadata `conduit-heartbeat-interval-ms`, 15 s by
default), so a watch that hears nothing for `heartbeat_gap` (3 intervals)
cancels the call and reconnects with its resume token. Channel keepalive
pings (`_channel.KEEPALIVE_OPTIONS`) catch a dead connection under it too.

Every reconnect counts in `reconnects`, calls `on_reconnect(Reconnect(...))`,
and adds a `reconnect` event to the watch's span (`conduit.client/Watch...`,
ended when the watch ends). A budget (`with_options(deadline=...)`) bounds
the whole watch across reconnects: when it runs out the watch raises
`DeadlineExceeded` with `budget == "operation"`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import grpc
import grpc.aio
from opentelemetry import trace

from conduit.client._errors import ConduitError, StreamExpired, Unavailable, from_rpc_error
from conduit.client._retry import Budget, RetryPolicy
from conduit.client._telemetry import tracer
from conduit.realtime.v1 import realtime_pb2

log = logging.getLogger("conduit.client")

# The three Watch*Response messages all carry `Event event = 1` and `repeated Event events = 2`.
WatchResponse = realtime_pb2.WatchArticleResponse | realtime_pb2.WatchArticlesResponse | \
    realtime_pb2.WatchFeedResponse

#: The ErrorInfo metadata key that carries the last event id the server sent.
LAST_EVENT_ID_KEY = "last_event_id"
RESUMABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
#: How gRPC reports a stream that a proxy reset (HTTP/2 RST_STREAM): INTERNAL, "Stream removed (RST_STREAM …)".
STREAM_RESET = "RST_STREAM"
#: How gRPC words a CANCELLED that this process caused: its own cancel(), or its channel closing.
LOCAL_CANCELS = ("Locally cancelled by application!", "Channel closed!")
#: Failed reconnects in a row before a watch gives up (with the default backoff, about half a minute).
MAX_RECONNECTS = 20
#: The initial metadata key in which the realtime service announces its heartbeat interval.
HEARTBEAT_INTERVAL_KEY = "conduit-heartbeat-interval-ms"
#: The server's heartbeat interval when it announces none (the realtime service's default).
DEFAULT_HEARTBEAT_INTERVAL = 15.0
#: Heartbeat intervals without any message after which a watch reconnects.
HEARTBEAT_GAP_INTERVALS = 3.0


@dataclass(frozen=True)
class Reconnect:
    """What `on_reconnect` is told before a watch reconnects."""

    count: int
    """Reconnects of this watch so far, this one included."""
    reason: str
    """Why: the status code (and ErrorInfo reason), or `heartbeat gap`."""
    delay: float
    """Seconds the watch waits before reconnecting."""
    resume_token: str
    """The token it resumes after."""


ReconnectHook = Callable[[Reconnect], None]
OpenStream = Callable[[str, Budget], Any]


def resumable(error: ConduitError) -> bool:
    """Whether a reconnect after the resume token can fix what ended the stream.

    UNAVAILABLE and RESOURCE_EXHAUSTED (shutdown, slow consumer), CANCELLED by the other side, and a stream
    reset by a proxy: when a
    replica dies under a watch that goes through Envoy, Envoy has already sent the response headers and
    can only reset the stream, which gRPC reports as INTERNAL "Stream removed (RST_STREAM …)". A watch is
    read-only and resumes after its token with no gap or duplicate, so it reconnects; an INTERNAL the
    server sent (a bug) is raised as before.
    """
    if error.code in RESUMABLE:
        return True
    if error.code == grpc.StatusCode.CANCELLED:
        # Not by this process (a watch that closes itself never gets here): the server or a proxy ended
        # the stream, as a server stopping does once its grace period is over (RST_STREAM CANCEL).
        return not any(words in error.message for words in LOCAL_CANCELS)
    return error.code == grpc.StatusCode.INTERNAL and STREAM_RESET in error.message


def _interval(metadata: Any) -> float | None:
    for key, value in metadata or ():
        if key == HEARTBEAT_INTERVAL_KEY:
            try:
                seconds = int(value) / 1000
            except ValueError:
                return None
            return seconds if seconds > 0 else None
    return None


def _events_of(response: WatchResponse) -> Sequence[realtime_pb2.Event]:
    """The events of one message: `events` when batched, else `event` (a server may not batch)."""
    return response.events or (response.event,)


class _Resume:
    """The resume token and reconnect budget of one watch (shared by the sync and async iterators)."""

    def __init__(self, resume_token: str | None, *, policy: RetryPolicy, max_reconnects: int,
                 include_heartbeats: bool, method: str = "Watch", budget: Budget | None = None,
                 heartbeat_gap: float | None = None, on_reconnect: ReconnectHook | None = None) -> None:
        if max_reconnects < 0:
            raise ValueError("max_reconnects must not be negative")
        if heartbeat_gap is not None and heartbeat_gap <= 0:
            raise ValueError("heartbeat_gap must be positive")
        self.token = resume_token or ""
        self.policy = policy
        self.max_reconnects = max_reconnects
        self.include_heartbeats = include_heartbeats
        self.failures = 0
        self.received = False  # on the current connection
        self.method = method
        self.budget = budget or Budget(None)
        self.fixed_gap = heartbeat_gap
        self.gap = heartbeat_gap or DEFAULT_HEARTBEAT_INTERVAL * HEARTBEAT_GAP_INTERVALS
        self.on_reconnect = on_reconnect
        self.reconnects = 0
        self.gap_expired = False
        self.span = tracer.start_span(f"conduit.client/{method}", kind=trace.SpanKind.CLIENT,
                                      attributes={"rpc.system": "grpc", "rpc.method": method,
                                                  "conduit.watch.reconnects": 0})
        self.span_open = True

    def announced(self, metadata: Any) -> None:
        """The server's initial metadata: its heartbeat interval sets the gap (unless fixed)."""
        interval = _interval(metadata)
        if interval is not None and self.fixed_gap is None:
            self.gap = interval * HEARTBEAT_GAP_INTERVALS

    def end(self, error: BaseException | None = None) -> None:
        if self.span_open:
            self.span_open = False
            if error is not None:
                self.span.record_exception(error)
                self.span.set_status(trace.StatusCode.ERROR, str(error))
            self.span.end()

    def connected(self) -> None:
        self.received = False

    def on_event(self, event: realtime_pb2.Event) -> bool:
        """Record progress as `event` is handed over; True when it is for the caller."""
        self.failures = 0
        self.received = True
        if event.event_id:
            self.token = event.event_id
        return self.include_heartbeats or event.type != realtime_pb2.EVENT_TYPE_HEARTBEAT

    def on_error(self, error: ConduitError, cause: BaseException | None = None) -> float:
        """Seconds to wait before reconnecting; raises when the watch cannot go on."""
        try:
            return self._on_error(error, cause)
        except BaseException as final:
            self.end(final)
            raise

    def _on_error(self, error: ConduitError, cause: BaseException | None) -> float:
        exc = cause if cause is not None else error
        if self.gap_expired:
            self.gap_expired = False
            error = Unavailable(f"no message for {self.gap:g}s (heartbeat gap)")
            reason = "heartbeat gap"
        else:
            reason = error.code.name + (f" [{error.reason}]" if error.reason else "")
        remaining = self.budget.remaining()
        if error.code == grpc.StatusCode.DEADLINE_EXCEEDED and remaining is not None and remaining <= 0.05:
            raise self.budget.error(self.method, attempts=self.reconnects + 1, cause=error) from exc
        if error.code == grpc.StatusCode.OUT_OF_RANGE:
            raise StreamExpired(error.message, code=error.code, details=error.details,
                                trailing_metadata=error.trailing_metadata, resume_token=self.token) from exc
        if not resumable(error):
            raise error from cause
        hint = error.metadata.get(LAST_EVENT_ID_KEY, "")
        if hint and not self.received:
            # Nothing arrived on this connection: the server's position avoids a gap.
            self.token = hint
        if self.failures >= self.max_reconnects:
            raise error from cause
        delay = (min(error.retry_after, self.policy.max_server_delay) if error.retry_after is not None
                 else self.policy.backoff(self.failures))
        if remaining is not None and delay >= remaining:
            raise self.budget.error(self.method, attempts=self.reconnects + 1, cause=error) from exc
        self.failures += 1
        self.reconnects += 1
        log.info("watch %s dropped (%s); reconnect %d resumes after %r in %.2fs", self.method, reason,
                 self.reconnects, self.token, delay)
        self.span.set_attribute("conduit.watch.reconnects", self.reconnects)
        self.span.add_event("reconnect", {"conduit.reconnect": self.reconnects, "conduit.retry_reason": reason,
                                          "conduit.backoff_seconds": delay, "conduit.resume_token": self.token})
        if self.on_reconnect is not None:
            self.on_reconnect(Reconnect(self.reconnects, reason, delay, self.token))
        return delay


def watch_options(transport: Any, method: Any, **options: Any) -> dict[str, Any]:
    """The keyword arguments of a `Watch`/`AsyncWatch` for `method` on a transport: its backoff from the
    method table, its name, and a budget from the transport's options (with `options` added)."""
    return {"policy": transport.table.for_path(method.path).backoff, "method": method.name,
            "budget": transport.budget(), **options}


class _Watchdog:
    """Cancels a sync watch's call when nothing arrives within its heartbeat gap (one thread a watch)."""

    def __init__(self, state: _Resume, expire: Callable[[], None]) -> None:
        self._state = state
        self._expire = expire
        self._seen = time.monotonic()
        self._stopped = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def touch(self) -> None:
        self._seen = time.monotonic()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="conduit-watchdog", daemon=True)
            self._thread.start()

    def poke(self) -> None:
        """The gap changed (the server announced its interval): measure again."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stopped:
            left = self._seen + self._state.gap - time.monotonic()
            if left <= 0:
                self._seen = time.monotonic()
                self._expire()
                continue
            self._wake.wait(left)
            self._wake.clear()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()


class _Progress:
    """What both watches report: the resume token, reconnects so far, the silence gap."""

    _state: _Resume

    @property
    def resume_token(self) -> str:
        return self._state.token

    @property
    def reconnects(self) -> int:
        return self._state.reconnects

    @property
    def heartbeat_gap(self) -> float:
        """Seconds without a message after which the watch reconnects."""
        return self._state.gap


class Watch(_Progress):
    """An iterator of `realtime_pb2.Event` that survives drops; close it (or use `with`) to stop.

    `resume_token` is the id of the last event handed over (events of a batch
    not yet iterated do not count): store it to continue later with
    `watch(..., resume_token=...)`. `reconnects` counts reconnects so far.
    """

    def __init__(self, open_stream: OpenStream, *, resume_token: str | None,
                 include_heartbeats: bool, policy: RetryPolicy, max_reconnects: int = MAX_RECONNECTS,
                 method: str = "Watch", budget: Budget | None = None, heartbeat_gap: float | None = None,
                 on_reconnect: ReconnectHook | None = None) -> None:
        self._open = open_stream
        self._state = _Resume(resume_token, policy=policy, max_reconnects=max_reconnects,
                              include_heartbeats=include_heartbeats, method=method, budget=budget,
                              heartbeat_gap=heartbeat_gap, on_reconnect=on_reconnect)
        self._call: grpc.CallIterator[Any] | None = None
        self._responses: Iterator[WatchResponse] | None = None
        # Received, not yet handed over: the rest of a batch (read again only once it is empty).
        self._unread: deque[realtime_pb2.Event] = deque()
        self._closed = False
        self._wakeup = threading.Event()
        self._watchdog = _Watchdog(self._state, self._gap_expired)

    def _gap_expired(self) -> None:
        call = self._call
        if call is not None and not self._closed:
            self._state.gap_expired = True
            call.cancel()  # type: ignore[no-untyped-call]  # untyped in grpc-stubs

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> realtime_pb2.Event:
        while True:
            if self._closed:
                raise StopIteration
            if self._unread:
                event = self._unread.popleft()
                if self._state.on_event(event):
                    return event
                continue
            try:
                if self._responses is None:
                    # Opening may renew the token, which can fail like the stream itself.
                    self._call = self._open(self._state.token, self._state.budget)
                    self._responses = iter(self._call)
                    self._state.connected()
                    self._watchdog.touch()
                    if self._closed:  # closed while opening: end the new call too
                        self.close()
                response = next(self._responses)
                self._watchdog.touch()
                if not self._state.received and self._call is not None:
                    self._state.announced(self._call.initial_metadata())
                    self._watchdog.poke()
            except StopIteration:
                self.close()
                raise
            except (grpc.RpcError, ConduitError) as exc:
                self._call = self._responses = None
                if self._closed:
                    raise StopIteration from None
                delay = self._on_error(exc)
                if self._wakeup.wait(delay):
                    raise StopIteration from None
                continue
            self._unread.extend(_events_of(response))

    def _on_error(self, exc: grpc.RpcError | ConduitError) -> float:
        if isinstance(exc, ConduitError):
            return self._state.on_error(exc)
        return self._state.on_error(from_rpc_error(exc), exc)

    def close(self) -> None:
        """Stop the watch; safe from another thread, ends a blocked iteration."""
        self._closed = True
        self._wakeup.set()
        self._watchdog.stop()
        self._state.end()
        if self._call is not None:
            self._call.cancel()  # type: ignore[no-untyped-call]  # untyped in grpc-stubs

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


AsyncOpenStream = Callable[[str, Budget], Awaitable[grpc.aio.UnaryStreamCall[Any, Any]]]


class AsyncWatch(_Progress):
    """An async iterator of `realtime_pb2.Event` that survives drops; close it (or `async with`) to stop."""

    def __init__(self, open_stream: AsyncOpenStream, *, resume_token: str | None,
                 include_heartbeats: bool, policy: RetryPolicy, max_reconnects: int = MAX_RECONNECTS,
                 method: str = "Watch", budget: Budget | None = None, heartbeat_gap: float | None = None,
                 on_reconnect: ReconnectHook | None = None) -> None:
        self._open = open_stream
        self._state = _Resume(resume_token, policy=policy, max_reconnects=max_reconnects,
                              include_heartbeats=include_heartbeats, method=method, budget=budget,
                              heartbeat_gap=heartbeat_gap, on_reconnect=on_reconnect)
        self._call: grpc.aio.UnaryStreamCall[Any, Any] | None = None
        self._responses: AsyncIterator[WatchResponse] | None = None
        # Received, not yet handed over: the rest of a batch (read again only once it is empty).
        self._unread: deque[realtime_pb2.Event] = deque()
        self._closed = False
        self._wakeup = asyncio.Event()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> realtime_pb2.Event:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._unread:
                event = self._unread.popleft()
                if self._state.on_event(event):
                    return event
                continue
            try:
                response = await self._next_within_gap(self._responses or await self._connect())
                if not self._state.received and self._call is not None:
                    self._state.announced(await self._call.initial_metadata())
            except StopAsyncIteration:
                self.close()
                raise
            except asyncio.CancelledError:
                if self._closed:  # closed by another task: the call was cancelled under us
                    raise StopAsyncIteration from None
                raise
            except (grpc.RpcError, ConduitError) as exc:
                if self._call is not None:
                    self._call.cancel()
                self._call = self._responses = None
                if self._closed:
                    raise StopAsyncIteration from None
                delay = (self._state.on_error(exc) if isinstance(exc, ConduitError)
                         else self._state.on_error(from_rpc_error(exc), exc))
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout=delay)
                except TimeoutError:
                    continue
                raise StopAsyncIteration from None
            self._unread.extend(_events_of(response))

    async def _connect(self) -> AsyncIterator[WatchResponse]:
        # Opening may renew the token, which can fail like the stream itself.
        self._call = await self._open(self._state.token, self._state.budget)
        self._responses = self._call.__aiter__()
        self._state.connected()
        if self._closed:  # closed while opening: end the new call too
            self.close()
        return self._responses

    async def _next_within_gap(self, responses: AsyncIterator[WatchResponse]) -> WatchResponse:
        try:
            return await asyncio.wait_for(responses.__anext__(), timeout=self._state.gap)
        except TimeoutError:
            self._state.gap_expired = True
            raise Unavailable(f"no message for {self._state.gap:g}s (heartbeat gap)") from None

    def close(self) -> None:
        """Stop the watch; ends an iteration blocked in another task."""
        self._closed = True
        self._wakeup.set()
        self._state.end()
        if self._call is not None:
            self._call.cancel()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()
