"""How every call goes out: the method table's retry class, a deadline, the token, typed errors."""

# ruff: noqa: ASYNC109 - `timeout` is the gRPC deadline sent with the call, not a local wait

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import Message

from conduit.client._auth import AsyncTokenSource, Metadata, SyncTokenSource, bearer
from conduit.client._errors import from_rpc_error
from conduit.client._methods import Method, Req, Resp
from conduit.client._retry import RetryPolicy, acall_with_retry, call_with_retry


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


class Transport:
    """Sync calls over one channel (thread-safe, as the channel is)."""

    def __init__(self, channel: grpc.Channel, *, timeout: float, retry: RetryPolicy,
                 auth: SyncTokenSource | None = None, callables: dict[str, Any] | None = None) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.channel = channel
        self.timeout = timeout
        self.retry = retry
        self.auth = auth
        self._callables: dict[str, Any] = callables if callables is not None else {}

    def with_auth(self, auth: SyncTokenSource | None) -> Transport:
        """The same channel and settings with another token source."""
        return Transport(self.channel, timeout=self.timeout, retry=self.retry, auth=auth,
                         callables=self._callables)

    def metadata(self) -> Metadata:
        token = self.auth.token() if self.auth is not None else None
        return bearer(token) if token else ()

    def unary(self, method: Method[Req, Resp], request: Req, *, timeout: float | None = None,
              authenticate: bool = True) -> Resp:
        """Call a unary RPC; idempotent methods retry within the deadline."""
        stub: grpc.UnaryUnaryMultiCallable[Req, Resp] = self._callable(method)

        def attempt(remaining: float) -> Resp:
            return stub(request, timeout=remaining, metadata=self.metadata() if authenticate else ())

        return call_with_retry(attempt, idempotent=method.idempotent, policy=self.retry,
                               timeout=timeout if timeout is not None else self.timeout, method=method.name)

    def server_stream(self, method: Method[Req, Resp], request: Req) -> grpc.CallIterator[Resp]:
        """Open a server stream without a deadline; the caller maps its errors."""
        stub: grpc.UnaryStreamMultiCallable[Req, Resp] = self._callable(method)
        return stub(request, metadata=self.metadata())

    def client_stream(self, method: Method[Req, Resp], requests: Iterable[Req], *,
                      timeout: float | None = None) -> Resp:
        """Send a client stream (never retried: the requests may be consumed)."""
        stub: grpc.StreamUnaryMultiCallable[Req, Resp] = self._callable(method)
        try:
            return stub(iter(requests), timeout=timeout if timeout is not None else self.timeout,
                        metadata=self.metadata())
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

    def _callable(self, method: Method[Any, Any]) -> Any:
        found = self._callables.get(method.path)
        if found is None:
            factory = {"unary": self.channel.unary_unary, "server_stream": self.channel.unary_stream,
                       "client_stream": self.channel.stream_unary}[method.kind]
            found = factory(method.path, request_serializer=_serialize,
                            response_deserializer=method.response_type.FromString)
            self._callables[method.path] = found
        return found


class AsyncTransport:
    """`grpc.aio` calls over one channel; use it from the event loop that created the channel."""

    def __init__(self, channel: grpc.aio.Channel, *, timeout: float, retry: RetryPolicy,
                 auth: AsyncTokenSource | None = None, callables: dict[str, Any] | None = None) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.channel = channel
        self.timeout = timeout
        self.retry = retry
        self.auth = auth
        self._callables: dict[str, Any] = callables if callables is not None else {}

    def with_auth(self, auth: AsyncTokenSource | None) -> AsyncTransport:
        """The same channel and settings with another token source."""
        return AsyncTransport(self.channel, timeout=self.timeout, retry=self.retry, auth=auth,
                              callables=self._callables)

    async def metadata(self) -> Metadata:
        token = await self.auth.token() if self.auth is not None else None
        return bearer(token) if token else ()

    async def unary(self, method: Method[Req, Resp], request: Req, *, timeout: float | None = None,
                    authenticate: bool = True) -> Resp:
        """Call a unary RPC; idempotent methods retry within the deadline."""
        stub: grpc.aio.UnaryUnaryMultiCallable[Req, Resp] = self._callable(method)

        async def attempt(remaining: float) -> Resp:
            metadata = await self.metadata() if authenticate else ()
            return await stub(request, timeout=remaining, metadata=metadata)

        return await acall_with_retry(attempt, idempotent=method.idempotent, policy=self.retry,
                                      timeout=timeout if timeout is not None else self.timeout,
                                      method=method.name)

    async def server_stream(self, method: Method[Req, Resp],
                            request: Req) -> grpc.aio.UnaryStreamCall[Req, Resp]:
        """Open a server stream without a deadline; the caller maps its errors."""
        stub: grpc.aio.UnaryStreamMultiCallable[Req, Resp] = self._callable(method)
        return stub(request, metadata=await self.metadata())

    async def client_stream(self, method: Method[Req, Resp], requests: Iterable[Req] | AsyncIterable[Req], *,
                            timeout: float | None = None) -> Resp:
        """Send a client stream (never retried: the requests may be consumed)."""
        stub: grpc.aio.StreamUnaryMultiCallable[Req, Resp] = self._callable(method)
        source: Any = requests if isinstance(requests, AsyncIterable) else iter(requests)
        try:
            return await stub(source, timeout=timeout if timeout is not None else self.timeout,
                              metadata=await self.metadata())
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

    def _callable(self, method: Method[Any, Any]) -> Any:
        found = self._callables.get(method.path)
        if found is None:
            factory = {"unary": self.channel.unary_unary, "server_stream": self.channel.unary_stream,
                       "client_stream": self.channel.stream_unary}[method.kind]
            found = factory(method.path, request_serializer=_serialize,
                            response_deserializer=method.response_type.FromString)
            self._callables[method.path] = found
        return found
