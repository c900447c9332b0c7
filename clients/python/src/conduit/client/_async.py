"""`AsyncConduit`: the `asyncio` client, the same surface as `Conduit` with `await`.

Use a client from the event loop that connected it. Its resources live in `_async_resources`.
"""

# ruff: noqa: ASYNC109 - `timeout` is the gRPC deadline sent with each call, not a local wait

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Self

import grpc.aio
from google.protobuf import timestamp_pb2

from conduit.articles.v1 import articles_pb2 as a
from conduit.client import _contract as m
from conduit.client import _telemetry
from conduit.client._async_resources import (
    AsyncAdmin,
    AsyncArticles,
    AsyncAuth,
    AsyncComments,
    AsyncProfiles,
    AsyncSearch,
    AsyncTags,
    AsyncUsers,
)
from conduit.client._auth import (
    AsyncCallableToken,
    AsyncSessionAuth,
    AsyncStaticToken,
    AsyncTokenSource,
    Credentials,
)
from conduit.client._channel import ChannelOptions, async_channel
from conduit.client._configure import Configurable
from conduit.client._methods import Method
from conduit.client._policy import DEFAULT_TIMEOUT, MethodTable
from conduit.client._retry import RetryPolicy
from conduit.client._sync import Clock
from conduit.client._transport import AsyncTransport

#: A function (or coroutine function) that returns the access token to send, asked before every call.
TokenProvider = Callable[[], str | Awaitable[str | None] | None]


class AsyncConduit(Configurable):
    """An `asyncio` Conduit client: `await AsyncConduit.connect(...)`, then `async with` it.

    ```python
    async with await AsyncConduit.connect("localhost:8443", token=token) as conduit:
        async for article in conduit.articles.list(tag="grpc"):
            print(article.title)
    ```
    """

    users: AsyncUsers
    profiles: AsyncProfiles
    articles: AsyncArticles
    comments: AsyncComments
    tags: AsyncTags
    search: AsyncSearch
    auth: AsyncAuth
    admin: AsyncAdmin
    _transport: AsyncTransport

    def __init__(self, transport: AsyncTransport, *, owns_channel: bool,
                 session: AsyncSessionAuth | None = None) -> None:
        """Prefer `connect` or `from_channel`."""
        self._transport = transport
        self._owns_channel = owns_channel
        self._session = session
        self.users = AsyncUsers(transport)
        self.profiles = AsyncProfiles(transport)
        self.articles = AsyncArticles(transport)
        self.comments = AsyncComments(transport)
        self.tags = AsyncTags(transport)
        self.search = AsyncSearch(transport)
        self.auth = AsyncAuth(transport)
        self.admin = AsyncAdmin(transport)

    @classmethod
    async def connect(cls, target: str, *, tls: bool = True, ca_file: str | os.PathLike[str] | None = None,
                      token: str | None = None, credentials: Credentials | None = None,
                      token_provider: TokenProvider | None = None,
                      timeout: float = DEFAULT_TIMEOUT, interceptors: Sequence[Any] = (),
                      retry: RetryPolicy | None = None, options: ChannelOptions = (),
                      methods: MethodTable | None = None,
                      client_cert_file: str | os.PathLike[str] | None = None,
                      client_key_file: str | os.PathLike[str] | None = None,
                      clock: Clock = time.time) -> Self:
        """Open a channel to `target` (`host:port`); the arguments are those of `Conduit.connect`.

        `interceptors` are `grpc.aio` client interceptors.
        """
        channel = async_channel(target, tls=tls, ca_file=ca_file, options=options, interceptors=interceptors,
                          client_cert_file=client_cert_file, client_key_file=client_key_file)
        try:
            client = cls._make(channel, token=token, credentials=credentials, timeout=timeout, retry=retry,
                               owns_channel=True, clock=clock, methods=methods, token_provider=token_provider)
            if client._session is not None:
                await client._session.token()
        except BaseException:
            await channel.close(None)
            raise
        return client

    @classmethod
    def from_channel(cls, channel: grpc.aio.Channel, *, token: str | None = None,
                     credentials: Credentials | None = None, timeout: float = DEFAULT_TIMEOUT,
                     retry: RetryPolicy | None = None, clock: Clock = time.time,
                     methods: MethodTable | None = None, token_provider: TokenProvider | None = None) -> Self:
        """A client over a `grpc.aio` channel you made; `close()` leaves it open.

        Credentials sign in at the first call.
        """
        return cls._make(channel, token=token, credentials=credentials, timeout=timeout, retry=retry,
                         owns_channel=False, clock=clock, methods=methods, token_provider=token_provider)

    @classmethod
    def _make(cls, channel: grpc.aio.Channel, *, token: str | None, credentials: Credentials | None,
              timeout: float, retry: RetryPolicy | None, owns_channel: bool, clock: Clock,
              methods: MethodTable | None = None, token_provider: TokenProvider | None = None) -> Self:
        _telemetry.configure_logging()
        table = methods if methods is not None else MethodTable.from_contract(timeout=timeout, retry=retry)
        base = AsyncTransport(channel, table=table)
        auth, session = _auth_for(base, token=token, credentials=credentials, clock=clock,
                                  token_provider=token_provider)
        return cls(base.with_auth(auth), owns_channel=owns_channel, session=session)

    async def with_auth(self, *, token: str | None = None,
                        credentials: Credentials | None = None) -> AsyncConduit:
        """A client on the same channel with other credentials (signed in now).

        Closing it leaves the channel open; close the client that opened it.
        """
        anonymous = self._transport.with_auth(None)
        auth, session = _auth_for(anonymous, token=token, credentials=credentials)
        client = AsyncConduit(anonymous.with_auth(auth), owns_channel=False, session=session)
        if session is not None:
            await session.token()
        return client

    async def ping(self, *, timeout: float | None = None) -> timestamp_pb2.Timestamp:
        """The cheapest call through the whole path; returns the server's clock."""
        return (await self._transport.unary(m.PING, a.PingRequest(), timeout=timeout)).server_time

    def _with_transport(self, transport: AsyncTransport) -> Self:
        return type(self)(transport, owns_channel=False, session=self._session)

    @property
    def channel(self) -> grpc.aio.Channel:
        """The underlying channel, for the generated stubs (pair it with `call_metadata()`)."""
        return self._transport.channel

    async def call_metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata this client sends (the `authorization` header), renewed if due."""
        return await self._transport.metadata()

    async def sign_out(self) -> None:
        """Revoke the refresh token of a password session; the next call signs in again."""
        if self._session is not None:
            await self._session.sign_out()

    async def close(self) -> None:
        """Close the channel if this client opened it; open watches end."""
        if self._owns_channel:
            await self._transport.channel.close(None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


def _auth_for(transport: AsyncTransport, *, token: str | None,
              credentials: Credentials | None, clock: Clock = time.time,
              token_provider: TokenProvider | None = None) -> tuple[AsyncTokenSource | None, AsyncSessionAuth | None]:
    if sum(x is not None for x in (token, credentials, token_provider)) > 1:
        raise ValueError("pass one of token, credentials and token_provider")
    if token_provider is not None:
        return AsyncCallableToken(token_provider), None
    if credentials is not None:
        async def call(method: Method[Any, Any], request: Any) -> Any:
            return await transport.unary(method, request, authenticate=False)

        session = AsyncSessionAuth(credentials, call, clock=clock)
        return session, session
    return (AsyncStaticToken(token) if token is not None else None), None
