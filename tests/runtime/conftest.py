"""In-process services for runtime tests: real grpc.aio servers on free ports, real tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from conduit_server.runtime.server import Binding, GrpcServer
from conduit_server.runtime.tokens import AccessTokenVerifier, JwksCache
from conduit_server.users.domain.keys import KeyRing, mint_access_token

INTERNAL_TOKEN = "test-internal-token"
ISSUER = "conduit-test"
AUDIENCE = "conduit"


class StaticApp:
    """A ServiceApp made of given bindings, for exercising the runtime alone."""

    name = "test"

    def __init__(self, bindings: Sequence[Binding]) -> None:
        self._bindings = bindings

    def bindings(self) -> Sequence[Binding]:
        return self._bindings

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


@pytest.fixture(scope="session")
def keyring() -> KeyRing:
    ring = KeyRing(access_token_ttl_seconds=300)
    ring.rotate(datetime.now(UTC))
    return ring


@pytest.fixture(scope="session")
def verifier(keyring: KeyRing) -> AccessTokenVerifier:
    async def fetch() -> Mapping[str, Any]:
        return keyring.jwks(datetime.now(UTC))

    return AccessTokenVerifier(JwksCache(fetch), ISSUER, AUDIENCE)


@pytest.fixture(scope="session")
def mint(keyring: KeyRing) -> Callable[..., str]:
    def issue(*, user_id: int = 1, roles: Sequence[str] = ("user",), scopes: Sequence[str] = (),
              service: bool = False) -> str:
        token, _ = mint_access_token(
            keyring, subject=f"sa:client-{user_id}" if service else f"user:{user_id}",
            user_id=None if service else user_id, username=None if service else f"user{user_id}",
            roles=roles, scopes=scopes, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=300,
            now=datetime.now(UTC))
        return token

    return issue


@asynccontextmanager
async def serving(app: Any, verifier: AccessTokenVerifier | None, *, drain_seconds: float = 0.0,
                  grace_seconds: float = 5.0) -> AsyncIterator[tuple[GrpcServer, grpc.aio.Channel]]:
    server = GrpcServer(app, host="127.0.0.1", port=0, verifier=verifier, internal_token=INTERNAL_TOKEN,
                        grace_seconds=grace_seconds, drain_seconds=drain_seconds)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield server, channel
    finally:
        await channel.close(None)
        await server.stop()
