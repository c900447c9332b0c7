"""Login and registration rate limits in Redis: per IP, per account, sliding windows, RetryInfo."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

import grpc
import pytest

from conduit_server.runtime.auth import client_ip
from conduit_server.runtime.errors import RateLimited
from conduit_server.runtime.ratelimit import Limit, RateLimiter
from tests.fixtures.users import PASSWORD, UsersServer, email_for, unique_name
from tests.support import details, trailers

from .support import fails, forwarded_for, login, new_user, reason


def an_ip() -> str:
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"


async def attempt(users_server: UsersServer, name: str, password: str, ip: str) -> Any:
    return await users_server.users.Login(login(email_for(name), password), metadata=forwarded_for(ip))


async def test_the_eleventh_wrong_login_is_refused_with_a_retry_delay(users_server: UsersServer) -> None:
    name = unique_name()
    await users_server.register(name)
    ip = an_ip()
    for _ in range(10):
        await fails(attempt(users_server, name, "wrong password", ip), grpc.StatusCode.UNAUTHENTICATED)
    error = await fails(attempt(users_server, name, "wrong password", ip), grpc.StatusCode.RESOURCE_EXHAUSTED)
    delay = details(error)["RetryInfo"].retry_delay
    assert 0 < delay.seconds + delay.nanos / 1e9 <= 15 * 60
    assert 1 <= int(trailers(error)["retry-after"]) <= 15 * 60
    assert reason(error) == "RATE_LIMITED"
    # The right password from the same place waits too: the guesser cannot tell it apart.
    await fails(attempt(users_server, name, PASSWORD, ip), grpc.StatusCode.RESOURCE_EXHAUSTED)


async def test_the_owner_on_another_device_still_logs_in(users_server: UsersServer) -> None:
    name = unique_name()
    await users_server.register(name)
    attacker = an_ip()
    for _ in range(11):
        await fails(attempt(users_server, name, "guess", attacker),
                    grpc.StatusCode.UNAUTHENTICATED if _ < 10 else grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert (await attempt(users_server, name, PASSWORD, an_ip())).user.username == name


async def test_successful_logins_do_not_count_against_the_account(users_server: UsersServer) -> None:
    name = unique_name()
    await users_server.register(name)
    ip = an_ip()
    for _ in range(5):
        await attempt(users_server, name, PASSWORD, ip)
    for _ in range(10):
        await fails(attempt(users_server, name, "wrong", ip), grpc.StatusCode.UNAUTHENTICATED)
    await fails(attempt(users_server, name, "wrong", ip), grpc.StatusCode.RESOURCE_EXHAUSTED)


async def test_the_window_slides_so_nobody_is_locked_out_for_good(users_server: UsersServer,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Time moves by an injected clock, not by sleeping."""
    limits = users_server.app.accounts.limits
    monkeypatch.setattr(users_server.app.accounts, "limits", dataclasses.replace(
        limits, login_per_account_and_ip=Limit("login-account-ip", 2, 1.0)))
    now = [5_000.0]
    monkeypatch.setattr(users_server.app.accounts, "_limiter", RateLimiter(
        users_server.app.redis, prefix=f"test:{uuid.uuid4().hex}", clock=lambda: now[0]))
    name = unique_name()
    await users_server.register(name)
    ip = an_ip()
    for _ in range(2):
        await fails(attempt(users_server, name, "wrong", ip), grpc.StatusCode.UNAUTHENTICATED)
    now[0] += 0.5
    error = await fails(attempt(users_server, name, "wrong", ip), grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert details(error)["RetryInfo"].retry_delay.nanos == 500_000_000  # half a second to go
    now[0] += 0.499
    await fails(attempt(users_server, name, PASSWORD, ip), grpc.StatusCode.RESOURCE_EXHAUSTED)
    now[0] += 0.002  # the first failure left the window
    assert (await attempt(users_server, name, PASSWORD, ip)).user.username == name


async def test_guessing_one_account_from_many_places_hits_the_account_limit(
        users_server: UsersServer, monkeypatch: pytest.MonkeyPatch) -> None:
    limits = users_server.app.accounts.limits
    monkeypatch.setattr(users_server.app.accounts, "limits", dataclasses.replace(
        limits, login_per_account=Limit("login-account", 3, 60)))
    name = unique_name()
    await users_server.register(name)
    for _ in range(3):
        await fails(attempt(users_server, name, "wrong", an_ip()), grpc.StatusCode.UNAUTHENTICATED)
    await fails(attempt(users_server, name, "wrong", an_ip()), grpc.StatusCode.RESOURCE_EXHAUSTED)


async def test_registrations_are_limited_per_ip(users_server: UsersServer, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    limits = users_server.app.accounts.limits
    monkeypatch.setattr(users_server.app.accounts, "limits", dataclasses.replace(
        limits, registration_per_ip=Limit("register-ip", 3, 3600)))
    ip = an_ip()

    async def register(at: str) -> Any:
        name = unique_name()
        return await users_server.users.CreateUser(new_user(name, email_for(name), PASSWORD),
                                                   metadata=forwarded_for(at))

    for _ in range(3):
        await register(ip)
    error = await fails(register(ip), grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert details(error)["RetryInfo"].retry_delay.seconds > 3000
    await register(an_ip())


async def test_concurrent_attempts_cannot_overshoot_a_limit(users_server: UsersServer) -> None:
    limiter = RateLimiter(users_server.app.redis, prefix=f"test:{uuid.uuid4().hex}")
    limit = Limit("burst", 5, 60)

    async def one() -> bool:
        try:
            await limiter.acquire([(limit, "subject")], message="slow down")
        except RateLimited:
            return False
        return True

    results = await asyncio.gather(*(one() for _ in range(40)))
    assert results.count(True) == 5


async def test_a_released_hit_no_longer_counts(users_server: UsersServer) -> None:
    limiter = RateLimiter(users_server.app.redis, prefix=f"test:{uuid.uuid4().hex}")
    limit = Limit("release", 2, 60)
    for _ in range(5):
        await limiter.release(await limiter.acquire([(limit, "s")], message="m"))
    await limiter.acquire([(limit, "s")], message="m")
    await limiter.acquire([(limit, "s")], message="m")
    with pytest.raises(RateLimited):
        await limiter.acquire([(limit, "s")], message="m")
    await limiter.reset(limit, "s")
    await limiter.acquire([(limit, "s")], message="m")


class _Context:
    def __init__(self, metadata: tuple[tuple[str, str], ...], peer: str) -> None:
        self._metadata = metadata
        self._peer = peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        return self._peer


@pytest.mark.parametrize(("metadata", "peer", "expected"), [
    ((("x-forwarded-for", "1.2.3.4, 198.51.100.7"),), "ipv4:10.0.0.2:5555", "198.51.100.7"),
    ((("x-forwarded-for", "198.51.100.7"),), "ipv4:10.0.0.2:5555", "198.51.100.7"),
    ((), "ipv4:127.0.0.1:40000", "127.0.0.1"),
    ((), "ipv6:[::1]:40000", "::1"),
    ((("x-forwarded-for", " 2001:db8::1 "),), "ipv4:10.0.0.2:1", "2001:db8::1"),
    ((), "unix:/tmp/socket", "unix:/tmp/socket"),
])
def test_client_ip_is_the_hop_envoy_appended_else_the_peer(metadata: tuple[tuple[str, str], ...], peer: str,
                                                          expected: str) -> None:
    assert client_ip(_Context(metadata, peer)) == expected
