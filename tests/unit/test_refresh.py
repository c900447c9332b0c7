"""Opaque refresh tokens and client secrets: random, prefixed, stored only as hashes."""

from __future__ import annotations

import hashlib
import re
import uuid

from conduit_server.users.domain.refresh import (
    hash_client_secret,
    hash_refresh_token,
    is_well_formed_refresh_token,
    new_client_id,
    new_client_secret,
    new_family_id,
    new_refresh_token,
    refresh_token_matches,
    verify_client_secret,
)

HEX64 = re.compile(r"[0-9a-f]{64}")


def test_refresh_token_is_prefixed_random_and_hashed() -> None:
    token, stored = new_refresh_token()
    assert token.startswith("crt_")
    assert len(token) == 4 + 43  # 32 random bytes, base64url without padding
    assert HEX64.fullmatch(stored)
    assert stored == hashlib.sha256(token.encode()).hexdigest() == hash_refresh_token(token)
    assert token not in stored


def test_refresh_tokens_never_repeat() -> None:
    tokens = {new_refresh_token()[0] for _ in range(1000)}
    assert len(tokens) == 1000


def test_refresh_token_matches_only_its_own_hash() -> None:
    token, stored = new_refresh_token()
    other, other_stored = new_refresh_token()
    assert refresh_token_matches(token, stored)
    assert not refresh_token_matches(other, stored)
    assert not refresh_token_matches(token, other_stored)
    assert not refresh_token_matches(token, "")
    assert not refresh_token_matches(token, "é" * 64)


def test_shape_check_rejects_foreign_or_huge_tokens() -> None:
    assert is_well_formed_refresh_token(new_refresh_token()[0])
    assert not is_well_formed_refresh_token("eyJhbGciOi.a.b")
    assert not is_well_formed_refresh_token("crt_" + "a" * 1000)


def test_family_ids_are_unique_uuids() -> None:
    first, second = new_family_id(), new_family_id()
    assert first != second
    assert uuid.UUID(first).version == 4


def test_client_secret_verifies_only_against_its_hash() -> None:
    secret, stored = new_client_secret()
    assert secret.startswith("cst_")
    assert stored == hash_client_secret(secret)
    assert verify_client_secret(secret, stored)
    assert not verify_client_secret(secret + "x", stored)
    assert not verify_client_secret(new_client_secret()[0], stored)
    assert not verify_client_secret("x" * 10_000, stored)


def test_client_ids_are_prefixed_and_unique() -> None:
    assert new_client_id().startswith("sa_")
    assert new_client_id() != new_client_id()
