"""`Conduit`: the blocking client. Its resources live in `_resources`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self

import grpc
from google.protobuf import timestamp_pb2

from conduit.articles.v1 import articles_pb2 as a
from conduit.client import _contract as m
from conduit.client import _telemetry
from conduit.client._auth import CallableToken, Credentials, SessionAuth, StaticToken, SyncTokenSource
from conduit.client._channel import ChannelOptions, sync_channel
from conduit.client._configure import Configurable

#: The deadline of a call when neither the client nor the call sets one, in seconds.
from conduit.client._policy import (
    DEFAULT_TIMEOUT,
    MethodTable,
)
from conduit.client._resources import Admin, Articles, Auth, Comments, Profiles, Search, Tags, Users
from conduit.client._retry import RetryPolicy
from conduit.client._transport import Transport

# Seconds since the epoch: when tokens expire is judged by it (tests pass a clock they move).
Clock = Callable[[], float]
#: A function that returns the access token to send (asked before every call).
TokenProvider = Callable[[], str | None]


class Conduit(Configurable):
    """A blocking Conduit client. Make one with `Conduit.connect` (or `from_channel`); close it when done.

    ```python
    with Conduit.connect("localhost:8443", credentials=PasswordCredentials(email, password)) as conduit:
        for article in conduit.articles.list(tag="grpc"):
            print(article.title)
    ```

    Thread-safe: share one client between threads.
    """

    users: Users
    profiles: Profiles
    articles: Articles
    comments: Comments
    tags: Tags
    search: Search
    auth: Auth
    admin: Admin
    _transport: Transport

    def __init__(self, transport: Transport, *, owns_channel: bool,
                 session: SessionAuth | None = None) -> None:
        """Prefer `connect` or `from_channel`."""
        self._transport = transport
        self._owns_channel = owns_channel
        self._session = session
        self.users = Users(transport)
        self.profiles = Profiles(transport)
        self.articles = Articles(transport)
        self.comments = Comments(transport)
        self.tags = Tags(transport)
        self.search = Search(transport)
        self.auth = Auth(transport)
        self.admin = Admin(transport)

    @classmethod
    def connect(cls, target: str, *, tls: bool = True, ca_file: str | os.PathLike[str] | None = None,
                token: str | None = None, credentials: Credentials | None = None,
                token_provider: TokenProvider | None = None,
                timeout: float = DEFAULT_TIMEOUT, interceptors: Sequence[grpc.Interceptor] = (),
                retry: RetryPolicy | None = None, options: ChannelOptions = (),
                methods: MethodTable | None = None, client_cert_file: str | os.PathLike[str] | None = None,
                client_key_file: str | os.PathLike[str] | None = None,
                clock: Clock = time.time) -> Self:
        """Open a channel to `target` (`host:port`, e.g. Envoy's `localhost:8443`).

        - `tls`: on by default; `ca_file` (or `$CONDUIT_CA_FILE`) names the CA to
          trust, e.g. the local CA that `make run` prints; `tls=False` is plaintext.
        - `token`: a fixed access token; `credentials`: `PasswordCredentials` or
          `ClientCredentials`, signed in now (bad credentials raise here) and
          renewed before expiry (and once more after an UNAUTHENTICATED answer,
          which is then replayed); `token_provider`: your function returning the
          token, asked before every call and again after UNAUTHENTICATED.
        - `client_cert_file`, `client_key_file`: a client certificate (PEM) for mTLS.
        - `methods`: the per-method policy table (default: `MethodTable.from_contract`).
        - `timeout`: the default deadline of each call, in seconds.
        - `interceptors`: `grpc` client interceptors, outermost first.
        - `retry`: the backoff of idempotent calls and of watch reconnects.
        - `options`: extra `grpc` channel options.
        - `clock`: seconds since the epoch, by which tokens are renewed before expiry.
        """
        channel = sync_channel(target, tls=tls, ca_file=ca_file, options=options, interceptors=interceptors,
                          client_cert_file=client_cert_file, client_key_file=client_key_file)
        try:
            client = cls._make(channel, token=token, credentials=credentials, timeout=timeout, retry=retry,
                               owns_channel=True, clock=clock, methods=methods, token_provider=token_provider)
            if client._session is not None:
                client._session.token()
        except BaseException:
            channel.close()
            raise
        return client

    @classmethod
    def from_channel(cls, channel: grpc.Channel, *, token: str | None = None,
                     credentials: Credentials | None = None, timeout: float = DEFAULT_TIMEOUT,
                     retry: RetryPolicy | None = None, clock: Clock = time.time,
                     methods: MethodTable | None = None, token_provider: TokenProvider | None = None) -> Self:
        """A client over a channel you made (an in-process server's, or one with custom credentials).

        The channel stays yours: `close()` leaves it open. Credentials sign in at the first call.
        """
        return cls._make(channel, token=token, credentials=credentials, timeout=timeout, retry=retry,
                         owns_channel=False, clock=clock, methods=methods, token_provider=token_provider)

    @classmethod
    def _make(cls, channel: grpc.Channel, *, token: str | None, credentials: Credentials | None,
              timeout: float, retry: RetryPolicy | None, owns_channel: bool, clock: Clock,
              methods: MethodTable | None = None, token_provider: TokenProvider | None = None) -> Self:
        _telemetry.configure_logging()
        table = methods if methods is not None else MethodTable.from_contract(timeout=timeout, retry=retry)
        base = Transport(channel, table=table)
        auth, session = _auth_for(base, token=token, credentials=credentials, clock=clock,
                                  token_provider=token_provider)
        return cls(base.with_auth(auth), owns_channel=owns_channel, session=session)

    def with_auth(self, *, token: str | None = None, credentials: Credentials | None = None) -> Conduit:
        """A client on the same channel with other credentials (signed in now).

        Closing it leaves the channel open; close the client that opened it.
        """
        anonymous = self._transport.with_auth(None)
        auth, session = _auth_for(anonymous, token=token, credentials=credentials)
        client = Conduit(anonymous.with_auth(auth), owns_channel=False, session=session)
        if session is not None:
            session.token()
        return client

    def ping(self, *, timeout: float | None = None) -> timestamp_pb2.Timestamp:
        """The cheapest call through the whole path; returns the server's clock."""
        return self._transport.unary(m.PING, a.PingRequest(), timeout=timeout).server_time

    def _with_transport(self, transport: Transport) -> Self:
        return type(self)(transport, owns_channel=False, session=self._session)

    @property
    def channel(self) -> grpc.Channel:
        """The underlying channel, for the generated stubs (pair it with `call_metadata()`)."""
        return self._transport.channel

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata this client sends (the `authorization` header), renewed if due."""
        return self._transport.metadata()

    def sign_out(self) -> None:
        """Revoke the refresh token of a password session; the next call signs in again."""
        if self._session is not None:
            self._session.sign_out()

    def close(self) -> None:
        """Close the channel if this client opened it; open watches end."""
        if self._owns_channel:
            self._transport.channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _auth_for(transport: Transport, *, token: str | None,
              credentials: Credentials | None, clock: Clock = time.time,
              token_provider: TokenProvider | None = None) -> tuple[SyncTokenSource | None, SessionAuth | None]:
    if sum(x is not None for x in (token, credentials, token_provider)) > 1:
        raise ValueError("pass one of token, credentials and token_provider")
    if token_provider is not None:
        return CallableToken(token_provider), None
    if credentials is not None:
        session = SessionAuth(credentials, lambda method, request: transport.unary(
            method, request, authenticate=False), clock=clock)
        return session, session
    return (StaticToken(token) if token is not None else None), None
