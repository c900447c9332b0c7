"""Tokens: sent as Bearer metadata, renewed before expiry (once, however many callers), refusals surface."""

from __future__ import annotations

import asyncio
import threading

import grpc
import pytest

from conduit.articles.v1 import articles_pb2_grpc
from conduit.client import (
    AsyncConduit,
    ClientCredentials,
    Conduit,
    PasswordCredentials,
    RetryPolicy,
    Unauthenticated,
)
from conduit.client.testing import InProcessServer
from conduit.users.v1 import users_pb2_grpc
from tests.sdk.conftest import Serve
from tests.sdk.support import UNAVAILABLE, FakeAuth, FakeClock, GuardedTags, ScriptedTags

GOOD = PasswordCredentials("jake@example.com", "correct-horse")
LIFETIME = 100.0  # seconds of the fake clock; nothing waits for them
STALE_AFTER = 85.0  # a token is renewed once less than 20% of its lifetime is left


def _mesh(serve: Serve, auth: FakeAuth) -> tuple[InProcessServer, GuardedTags]:
    tags = GuardedTags(auth)
    server = serve((users_pb2_grpc.add_AuthServiceServicer_to_server, auth),
                   (articles_pb2_grpc.add_TagsServiceServicer_to_server, tags))
    return server, tags


def test_a_static_token_travels_as_bearer_metadata(serve: Serve) -> None:
    tags = ScriptedTags()
    server = serve((articles_pb2_grpc.add_TagsServiceServicer_to_server, tags))
    with Conduit.connect(server.target, tls=False, token="jwt-123") as conduit:
        conduit.tags.list()
        assert conduit.call_metadata() == (("authorization", "Bearer jwt-123"),)
    with Conduit.connect(server.target, tls=False) as anonymous:
        anonymous.tags.list()
    assert tags.authorization == ["Bearer jwt-123", ""]


def test_password_credentials_sign_in_at_connect_and_authenticate_calls(serve: Serve) -> None:
    clock = FakeClock()
    auth = FakeAuth(lifetime=60, clock=clock)
    server, tags = _mesh(serve, auth)
    with Conduit.connect(server.target, tls=False, credentials=GOOD, clock=clock) as conduit:
        assert auth.sessions_created == 1
        assert conduit.tags.list() == ["ok"]
        assert conduit.tags.list() == ["ok"]
    assert tags.tokens == ["Bearer access-1", "Bearer access-1"]
    assert auth.refreshes == 0


def test_wrong_credentials_fail_at_connect(serve: Serve) -> None:
    server, _ = _mesh(serve, FakeAuth(lifetime=60))
    with pytest.raises(Unauthenticated) as raised:
        Conduit.connect(server.target, tls=False, credentials=PasswordCredentials("jake@example.com", "nope"))
    assert raised.value.reason == "INVALID_CREDENTIALS"


def test_tokens_are_refreshed_before_they_expire_so_no_call_fails(serve: Serve) -> None:
    clock = FakeClock()
    auth = FakeAuth(lifetime=LIFETIME, clock=clock)
    server, tags = _mesh(serve, auth)
    with Conduit.connect(server.target, tls=False, credentials=GOOD, clock=clock) as conduit:
        for _ in range(52):  # 2.6 lifetimes, a call every 5 s
            assert conduit.tags.list() == ["ok"]
            clock.advance(5)
    assert auth.rejected == []
    assert auth.sessions_created == 1
    assert auth.refreshes >= 2
    assert len(set(tags.tokens)) == auth.refreshes + 1


def test_concurrent_calls_share_a_single_refresh(serve: Serve) -> None:
    clock = FakeClock()
    auth = FakeAuth(lifetime=LIFETIME, latency=0.2, clock=clock)
    server, tags = _mesh(serve, auth)
    with Conduit.connect(server.target, tls=False, credentials=GOOD, clock=clock) as conduit:
        clock.advance(STALE_AFTER)
        start = threading.Barrier(16)
        failures: list[BaseException] = []

        def call() -> None:
            start.wait()
            try:
                conduit.tags.list()
            except BaseException as error:  # noqa: BLE001 - collected and asserted below
                failures.append(error)

        threads = [threading.Thread(target=call) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
    assert auth.refreshes == 1
    assert set(tags.tokens) == {"Bearer access-2"}
    assert auth.rejected == []


def test_a_revoked_refresh_token_surfaces_unauthenticated(serve: Serve) -> None:
    clock = FakeClock()
    auth = FakeAuth(lifetime=LIFETIME, clock=clock)
    server, tags = _mesh(serve, auth)
    with Conduit.connect(server.target, tls=False, credentials=GOOD, clock=clock) as conduit:
        auth.revoke_all()  # e.g. a logout elsewhere, or reuse of a spent token revoked the family
        clock.advance(STALE_AFTER)
        with pytest.raises(Unauthenticated) as raised:
            conduit.tags.list()
    assert raised.value.reason == "REFRESH_TOKEN_REVOKED"
    assert auth.sessions_created == 1  # no silent new login with the password
    assert tags.calls == 0


def test_a_refresh_that_fails_every_attempt_keeps_using_the_still_valid_token(serve: Serve) -> None:
    clock = FakeClock()
    auth = FakeAuth(lifetime=2 * LIFETIME, clock=clock)
    auth.refresh_failures.extend([UNAVAILABLE, UNAVAILABLE])  # both attempts of the first refresh
    server, tags = _mesh(serve, auth)
    two_attempts = RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.01)
    with Conduit.connect(server.target, tls=False, credentials=GOOD, clock=clock, retry=two_attempts) as conduit:
        clock.advance(1.65 * LIFETIME)  # stale (less than 20% left) but not expired
        assert conduit.tags.list() == ["ok"]
        assert conduit.tags.list() == ["ok"]
    assert tags.tokens == ["Bearer access-1", "Bearer access-2"]
    assert auth.refreshes == 3  # two failed attempts of the first renewal, then the second renewal
    assert auth.rejected == []


def test_an_expired_refresh_token_leads_to_a_new_login(serve: Serve) -> None:
    clock = FakeClock()
    auth = FakeAuth(lifetime=2 * LIFETIME, refresh_lifetime=int(LIFETIME), clock=clock)
    server, _ = _mesh(serve, auth)
    with Conduit.connect(server.target, tls=False, credentials=GOOD, clock=clock) as conduit:
        clock.advance(1.65 * LIFETIME)
        assert conduit.tags.list() == ["ok"]
    assert (auth.sessions_created, auth.refreshes) == (2, 0)


def test_sign_out_revokes_the_session(serve: Serve) -> None:
    clock = FakeClock()
    auth = FakeAuth(lifetime=60, clock=clock)
    server, _ = _mesh(serve, auth)
    with Conduit.connect(server.target, tls=False, credentials=GOOD, clock=clock) as conduit:
        conduit.sign_out()
        assert auth.revocations == 1
        assert conduit.tags.list() == ["ok"]  # the next call signs in again
    assert auth.sessions_created == 2


def test_client_credentials_fetch_a_token_with_scopes_and_renew_it(serve: Serve) -> None:
    clock = FakeClock()
    auth = FakeAuth(lifetime=LIFETIME, clock=clock)
    server, tags = _mesh(serve, auth)
    credentials = ClientCredentials("svc-1", "s3cret", scopes=["articles.import", "search"])
    with Conduit.connect(server.target, tls=False, credentials=credentials, clock=clock) as conduit:
        assert auth.oauth_tokens == 1
        conduit.tags.list()
        clock.advance(STALE_AFTER)
        conduit.tags.list()
    assert auth.oauth_tokens == 2
    assert auth.scopes == ["articles.import search"] * 2
    assert tags.tokens == ["Bearer access-1", "Bearer access-2"]
    assert auth.rejected == []


def test_wrong_client_credentials_fail_with_the_oauth_error(serve: Serve) -> None:
    server, _ = _mesh(serve, FakeAuth(lifetime=60))
    with pytest.raises(Unauthenticated) as raised:
        Conduit.connect(server.target, tls=False, credentials=ClientCredentials("svc-1", "wrong"))
    assert (raised.value.reason, raised.value.domain) == ("invalid_client", "oauth2")


def test_with_auth_shares_the_channel_and_from_channel_signs_in_lazily(serve: Serve) -> None:
    clock = FakeClock()
    auth = FakeAuth(lifetime=60, clock=clock)
    server, tags = _mesh(serve, auth)
    channel = grpc.insecure_channel(server.target)
    anonymous = Conduit.from_channel(channel, credentials=None)
    signed_in = anonymous.with_auth(credentials=GOOD)
    assert auth.sessions_created == 1
    assert signed_in.channel is anonymous.channel
    signed_in.tags.list()
    signed_in.close()  # not the channel's owner
    lazy = Conduit.from_channel(channel, credentials=GOOD)
    assert auth.sessions_created == 1
    lazy.tags.list()
    assert auth.sessions_created == 2
    lazy.close()
    anonymous.close()
    with pytest.raises(Unauthenticated):
        anonymous.tags.list()  # the channel is still open: the server answered, anonymously
    channel.close()
    assert tags.tokens == ["Bearer access-1", "Bearer access-2", ""]


def test_token_and_credentials_together_are_refused() -> None:
    with pytest.raises(ValueError, match="pass one of token, credentials and token_provider"):
        Conduit.from_channel(grpc.insecure_channel("127.0.0.1:1"), token="t", credentials=GOOD)


async def test_the_async_client_refreshes_once_for_concurrent_calls(serve: Serve) -> None:
    clock = FakeClock()
    auth = FakeAuth(lifetime=LIFETIME, latency=0.2, clock=clock)
    server, tags = _mesh(serve, auth)
    async with await AsyncConduit.connect(server.target, tls=False, credentials=GOOD, clock=clock) as conduit:
        assert auth.sessions_created == 1
        clock.advance(STALE_AFTER)
        results = await asyncio.gather(*(conduit.tags.list() for _ in range(16)))
    assert results == [["ok"]] * 16
    assert auth.refreshes == 1
    assert set(tags.tokens) == {"Bearer access-2"}
    assert auth.rejected == []


async def test_the_async_client_surfaces_a_revoked_refresh_token(serve: Serve) -> None:
    clock = FakeClock()
    auth = FakeAuth(lifetime=LIFETIME, clock=clock)
    server, tags = _mesh(serve, auth)
    async with await AsyncConduit.connect(server.target, tls=False, credentials=GOOD, clock=clock) as conduit:
        auth.revoke_all()
        clock.advance(STALE_AFTER)
        with pytest.raises(Unauthenticated):
            await conduit.tags.list()
    assert tags.calls == 0


async def test_the_async_client_supports_client_credentials_and_sign_out(serve: Serve) -> None:
    clock = FakeClock()
    auth = FakeAuth(lifetime=60, clock=clock)
    server, tags = _mesh(serve, auth)
    async with await AsyncConduit.connect(server.target, tls=False,
                                          credentials=ClientCredentials("svc-1", "s3cret")) as conduit:
        assert await conduit.tags.list() == ["ok"]
        assert await conduit.call_metadata() == (("authorization", "Bearer access-1"),)
        password = await conduit.with_auth(credentials=GOOD)
        await password.tags.list()
        await password.sign_out()
        await password.close()
        assert await conduit.tags.list() == ["ok"]  # the shared channel is still open
    assert (auth.oauth_tokens, auth.sessions_created, auth.revocations) == (1, 1, 1)
    assert tags.tokens == ["Bearer access-1", "Bearer access-2", "Bearer access-1"]
