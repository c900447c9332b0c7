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
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, Self

import grpc
import grpc.aio

from conduit.client._errors import ConduitError, StreamExpired, from_rpc_error
from conduit.client._retry import RetryPolicy
from conduit.realtime.v1 import realtime_pb2

log = logging.getLogger("conduit.client")

# The three Watch*Response messages all carry `Event event = 1` and `repeated Event events = 2`.
WatchResponse = realtime_pb2.WatchArticleResponse | realtime_pb2.WatchArticlesResponse | \
    realtime_pb2.WatchFeedResponse

#: The ErrorInfo metadata key that carries the last event id the server sent.
LAST_EVENT_ID_KEY = "last_event_id"
RESUMABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
#: Failed reconnects in a row before a watch gives up (with the default backoff, about half a minute).
MAX_RECONNECTS = 20


def _events_of(response: WatchResponse) -> Sequence[realtime_pb2.Event]:
    """The events of one message: `events` when batched, else `event` (a server may not batch)."""
    return response.events or (response.event,)


class _Resume:
    """The resume token and reconnect budget of one watch (shared by the sync and async iterators)."""

    def __init__(self, resume_token: str | None, *, policy: RetryPolicy, max_reconnects: int,
                 include_heartbeats: bool) -> None:
        if max_reconnects < 0:
            raise ValueError("max_reconnects must not be negative")
        self.token = resume_token or ""
        self.policy = policy
        self.max_reconnects = max_reconnects
        self.include_heartbeats = include_heartbeats
        self.failures = 0
        self.received = False  # on the current connection

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
        exc = cause if cause is not None else error
        if error.code == grpc.StatusCode.OUT_OF_RANGE:
            raise StreamExpired(error.message, code=error.code, details=error.details,
                                trailing_metadata=error.trailing_metadata, resume_token=self.token) from exc
        if error.code not in RESUMABLE:
            raise error from cause
        hint = error.metadata.get(LAST_EVENT_ID_KEY, "")
        if hint and not self.received:
            # Nothing arrived on this connection: the server's position avoids a gap.
            self.token = hint
        if self.failures >= self.max_reconnects:
            raise error from cause
        delay = error.retry_after if error.retry_after is not None else self.policy.backoff(self.failures)
        self.failures += 1
        log.info("watch dropped (%s); resuming after %r in %.2fs", error.code.name, self.token, delay)
        return delay


class Watch:
    """An iterator of `realtime_pb2.Event` that survives drops; close it (or use `with`) to stop.

    `resume_token` is the id of the last event handed over (events of a batch
    not yet iterated do not count): store it to continue later with
    `watch(..., resume_token=...)`.
    """

    def __init__(self, open_stream: Callable[[str], grpc.CallIterator[Any]], *, resume_token: str | None,
                 include_heartbeats: bool, policy: RetryPolicy, max_reconnects: int = MAX_RECONNECTS) -> None:
        self._open = open_stream
        self._state = _Resume(resume_token, policy=policy, max_reconnects=max_reconnects,
                              include_heartbeats=include_heartbeats)
        self._call: grpc.CallIterator[Any] | None = None
        self._responses: Iterator[WatchResponse] | None = None
        # Received, not yet handed over: the rest of a batch (read again only once it is empty).
        self._unread: deque[realtime_pb2.Event] = deque()
        self._closed = False
        self._wakeup = threading.Event()

    @property
    def resume_token(self) -> str:
        return self._state.token

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
                    self._call = self._open(self._state.token)
                    self._responses = iter(self._call)
                    self._state.connected()
                    if self._closed:  # closed while opening: end the new call too
                        self.close()
                response = next(self._responses)
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
        if self._call is not None:
            self._call.cancel()  # type: ignore[no-untyped-call]  # untyped in grpc-stubs

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class AsyncWatch:
    """An async iterator of `realtime_pb2.Event` that survives drops; close it (or `async with`) to stop."""

    def __init__(self, open_stream: Callable[[str], Awaitable[grpc.aio.UnaryStreamCall[Any, Any]]], *,
                 resume_token: str | None,
                 include_heartbeats: bool, policy: RetryPolicy, max_reconnects: int = MAX_RECONNECTS) -> None:
        self._open = open_stream
        self._state = _Resume(resume_token, policy=policy, max_reconnects=max_reconnects,
                              include_heartbeats=include_heartbeats)
        self._call: grpc.aio.UnaryStreamCall[Any, Any] | None = None
        self._responses: AsyncIterator[WatchResponse] | None = None
        # Received, not yet handed over: the rest of a batch (read again only once it is empty).
        self._unread: deque[realtime_pb2.Event] = deque()
        self._closed = False
        self._wakeup = asyncio.Event()

    @property
    def resume_token(self) -> str:
        return self._state.token

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
                if self._responses is None:
                    # Opening may renew the token, which can fail like the stream itself.
                    self._call = await self._open(self._state.token)
                    self._responses = self._call.__aiter__()
                    self._state.connected()
                    if self._closed:  # closed while opening: end the new call too
                        self.close()
                response = await self._responses.__anext__()
            except StopAsyncIteration:
                self.close()
                raise
            except asyncio.CancelledError:
                if self._closed:  # closed by another task: the call was cancelled under us
                    raise StopAsyncIteration from None
                raise
            except (grpc.RpcError, ConduitError) as exc:
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

    def close(self) -> None:
        """Stop the watch; ends an iteration blocked in another task."""
        self._closed = True
        self._wakeup.set()
        if self._call is not None:
            self._call.cancel()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()
