"""Password hashing: argon2id, OWASP parameters, off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from conduit_server.users.domain.passwords import OWASP_ARGON2ID, Argon2Parameters, PasswordHasher

# Cheap enough for fast tests, still argon2id.
CHEAP = Argon2Parameters(time_cost=1, memory_cost_kib=1024, parallelism=1)


@pytest.fixture
def hasher() -> Iterator[PasswordHasher]:
    hasher = PasswordHasher(CHEAP)
    yield hasher
    hasher.close()


async def test_right_password_verifies_and_wrong_one_does_not(hasher: PasswordHasher) -> None:
    stored = await hasher.hash("correct horse battery staple")
    assert await hasher.verify(stored, "correct horse battery staple")
    assert not await hasher.verify(stored, "correct horse battery stapler")
    assert not await hasher.verify(stored, "")


async def test_same_password_gets_a_different_salt(hasher: PasswordHasher) -> None:
    assert await hasher.hash("pw") != await hasher.hash("pw")


async def test_corrupt_stored_hash_fails_the_login_not_the_request(hasher: PasswordHasher) -> None:
    assert not await hasher.verify("not-a-hash", "pw")
    assert not await hasher.verify("$argon2id$v=19$m=1024,t=1,p=1$broken", "pw")
    assert hasher.needs_rehash("not-a-hash")


async def test_changed_parameters_ask_for_a_rehash(hasher: PasswordHasher) -> None:
    stored = await hasher.hash("pw")
    assert not hasher.needs_rehash(stored)
    stronger = PasswordHasher(Argon2Parameters(time_cost=2, memory_cost_kib=1024, parallelism=1))
    try:
        assert stronger.needs_rehash(stored)
        ok, new_hash = await stronger.verify_and_rehash(stored, "pw")
        assert ok
        assert new_hash is not None
        assert not stronger.needs_rehash(new_hash)
        assert await stronger.verify_and_rehash(new_hash, "pw") == (True, None)
        assert await stronger.verify_and_rehash(stored, "wrong") == (False, None)
    finally:
        stronger.close()


async def test_dummy_verification_never_succeeds(hasher: PasswordHasher) -> None:
    assert await hasher.verify_dummy("anything") is False
    assert await hasher.verify_dummy("") is False


async def test_production_hasher_uses_owasp_argon2id_parameters() -> None:
    hasher = PasswordHasher()
    try:
        stored = await hasher.hash("pw")
    finally:
        hasher.close()
    assert Argon2Parameters(time_cost=2, memory_cost_kib=19456, parallelism=1) == OWASP_ARGON2ID
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert "pw" not in repr(hasher)


async def test_hashing_does_not_block_the_event_loop() -> None:
    # Production-strength work, so each hash is long enough for a blocked loop to show.
    hasher = PasswordHasher(OWASP_ARGON2ID, max_concurrency=4)
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    try:
        hashes = await asyncio.gather(*(hasher.hash(f"pw{i}") for i in range(4)))
        assert await asyncio.gather(*(hasher.verify(h, f"pw{i}") for i, h in enumerate(hashes))) == [True] * 4
    finally:
        done.set()
        await ticking
        hasher.close()
    # Had the hashes run on the loop, the ticker could only have run between them (a handful of times).
    assert ticks > 100
