"""Credentials and the access tokens made from them, renewed before they expire.

A token is renewed once less than `refresh_fraction` (20%) of its lifetime is
left, under a lock, so that many concurrent calls cause a single renewal and
none of them goes out with an expired token. Password sessions spend their
refresh token (`RefreshSession`); a refused refresh (revoked, or reused
elsewhere, which revokes the family) surfaces as `Unauthenticated` and is never
papered over by logging in again. Only a refresh token that has expired by the
client's clock leads to a new login with the password. Client credentials ask
the token endpoint again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.protobuf.message import Message

from conduit.client import _contract as m
from conduit.client._errors import DeadlineExceeded, Unavailable
from conduit.client._methods import Method
from conduit.client._requests import oauth_token
from conduit.users.v1 import users_pb2

log = logging.getLogger("conduit.client")

Metadata = tuple[tuple[str, str], ...]

#: Renew a token when less than this share of its lifetime remains.
REFRESH_FRACTION = 0.2


@dataclass(frozen=True)
class PasswordCredentials:
    """Sign in as a user with email and password (`AuthService.CreateSession`).

    The client keeps the session's refresh token and renews the access token
    before it expires.
    """

    email: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class ClientCredentials:
    """Authenticate a service account with the OAuth2 client-credentials grant.

    `scopes` empty asks for every scope the account was granted.
    """

    client_id: str
    client_secret: str = field(repr=False)
    scopes: Sequence[str] = ()


Credentials = PasswordCredentials | ClientCredentials


def bearer(token: str) -> Metadata:
    """The call metadata that carries an access token."""
    return (("authorization", f"Bearer {token}"),)


@dataclass(frozen=True)
class _Token:
    access_token: str = field(repr=False)
    expires_at: float
    lifetime: float
    refresh_token: str = field(default="", repr=False)
    refresh_expires_at: float = 0.0

    def fresh(self, now: float, fraction: float) -> bool:
        return self.expires_at - now > self.lifetime * fraction

    def usable(self, now: float) -> bool:
        return now < self.expires_at


def _renewal(credentials: Credentials, current: _Token | None,
             now: float) -> tuple[Method[Any, Any], Message]:
    """Which call gets the next token, with its request."""
    if isinstance(credentials, ClientCredentials):
        return m.CREATE_OAUTH_TOKEN, oauth_token(client_id=credentials.client_id,
                                                 client_secret=credentials.client_secret,
                                                 scopes=credentials.scopes)
    if current is not None and current.refresh_token and now < current.refresh_expires_at:
        return m.REFRESH_SESSION, users_pb2.RefreshSessionRequest(refresh_token=current.refresh_token)
    return m.CREATE_SESSION, users_pb2.CreateSessionRequest(
        user=users_pb2.LoginUser(email=credentials.email, password=credentials.password))


def _token_from(response: Message, started: float) -> _Token:
    """The token of a token-issuing response; lifetimes count from when the request was sent."""
    if isinstance(response, users_pb2.CreateOAuthTokenResponse):
        return _token(response.access_token, response.expires_in, started)
    if isinstance(response, (users_pb2.CreateSessionResponse, users_pb2.RefreshSessionResponse)):
        session = response.session
        return _token(session.access_token, session.expires_in_seconds, started,
                      session.refresh_token, session.refresh_expires_in_seconds)
    raise TypeError(f"not a token response: {type(response).__name__}")


def _token(access: str, expires_in: int, started: float, refresh: str = "",
           refresh_expires_in: int = 0) -> _Token:
    lifetime = float(expires_in) if expires_in > 0 else math.inf
    return _Token(access, started + lifetime, lifetime, refresh,
                  started + refresh_expires_in if refresh_expires_in > 0 else math.inf)


class SyncTokenSource(Protocol):
    """Where a sync client gets the access token of each call."""

    def token(self) -> str | None: ...


class AsyncTokenSource(Protocol):
    """Where an async client gets the access token of each call."""

    async def token(self) -> str | None: ...


@dataclass(frozen=True)
class StaticToken:
    """A token given by the caller, sent as is."""

    value: str = field(repr=False)

    def token(self) -> str | None:
        return self.value


@dataclass(frozen=True)
class AsyncStaticToken:
    """A token given by the caller, sent as is (async)."""

    value: str = field(repr=False)

    async def token(self) -> str | None:
        return self.value


class CallableToken:
    """A token from your own function, asked before every call and again after UNAUTHENTICATED
    (cache inside it as you see fit)."""

    def __init__(self, provider: Callable[[], str | None]) -> None:
        self._provider = provider

    def token(self) -> str | None:
        return self._provider()

    def invalidate(self) -> None:
        """Nothing cached here: the next call asks the provider again."""


class AsyncCallableToken:
    """An async client's token from your function (sync or async), asked before every call."""

    def __init__(self, provider: Callable[[], str | Awaitable[str | None] | None]) -> None:
        self._provider = provider

    async def token(self) -> str | None:
        value = self._provider()
        return await value if inspect.isawaitable(value) else value

    def invalidate(self) -> None:
        """Nothing cached here: the next call asks the provider again."""


SyncCall = Callable[[Method[Any, Any], Message], Message]
AsyncCall = Callable[[Method[Any, Any], Message], Awaitable[Message]]


class SessionAuth:
    """Tokens from credentials for a sync client; thread-safe."""

    def __init__(self, credentials: Credentials, call: SyncCall, *,
                 refresh_fraction: float = REFRESH_FRACTION, clock: Callable[[], float] = time.time) -> None:
        self._credentials = credentials
        self._call = call
        self._fraction = refresh_fraction
        self._clock = clock
        self._lock = threading.Lock()
        self._token: _Token | None = None

    def token(self) -> str | None:
        current = self._token
        if current is not None and current.fresh(self._clock(), self._fraction):
            return current.access_token
        with self._lock:
            current = self._token  # another thread may have renewed it while we waited
            if current is not None and current.fresh(self._clock(), self._fraction):
                return current.access_token
            try:
                method, request = _renewal(self._credentials, current, self._clock())
                started = self._clock()
                self._token = _token_from(self._call(method, request), started)
            except (Unavailable, DeadlineExceeded):
                if current is not None and current.usable(self._clock()):
                    log.warning("token renewal failed; using the current token until it expires")
                    return current.access_token
                raise
            return self._token.access_token

    def invalidate(self) -> None:
        """The server refused the current token: the next call renews it first (refresh, or sign in)."""
        current = self._token
        if current is not None:
            self._token = dataclasses.replace(current, expires_at=0.0)

    def sign_out(self) -> None:
        """Revoke the session's refresh token (password credentials) and forget the token."""
        with self._lock:
            current, self._token = self._token, None
        if current is not None and current.refresh_token:
            self._call(m.REVOKE_SESSION, users_pb2.RevokeSessionRequest(refresh_token=current.refresh_token))


class AsyncSessionAuth:
    """Tokens from credentials for an async client; one renewal at a time per client."""

    def __init__(self, credentials: Credentials, call: AsyncCall, *,
                 refresh_fraction: float = REFRESH_FRACTION, clock: Callable[[], float] = time.time) -> None:
        self._credentials = credentials
        self._call = call
        self._fraction = refresh_fraction
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: _Token | None = None

    async def token(self) -> str | None:
        current = self._token
        if current is not None and current.fresh(self._clock(), self._fraction):
            return current.access_token
        async with self._lock:
            current = self._token  # another task may have renewed it while we waited
            if current is not None and current.fresh(self._clock(), self._fraction):
                return current.access_token
            try:
                method, request = _renewal(self._credentials, current, self._clock())
                started = self._clock()
                self._token = _token_from(await self._call(method, request), started)
            except (Unavailable, DeadlineExceeded):
                if current is not None and current.usable(self._clock()):
                    log.warning("token renewal failed; using the current token until it expires")
                    return current.access_token
                raise
            return self._token.access_token

    def invalidate(self) -> None:
        """The server refused the current token: the next call renews it first (refresh, or sign in)."""
        current = self._token
        if current is not None:
            self._token = dataclasses.replace(current, expires_at=0.0)

    async def sign_out(self) -> None:
        """Revoke the session's refresh token (password credentials) and forget the token."""
        async with self._lock:
            current, self._token = self._token, None
        if current is not None and current.refresh_token:
            await self._call(m.REVOKE_SESSION,
                             users_pb2.RevokeSessionRequest(refresh_token=current.refresh_token))
