"""Signing keys: encryption at rest, rotation without downtime, retirement."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from conduit_server.runtime.errors import Unauthenticated
from conduit_server.runtime.tokens import AccessTokenVerifier, JwksCache, parse_jwks
from conduit_server.users.domain.keys import (
    KeyDecryptionError,
    KeyRing,
    SigningKey,
    decrypt_private_key,
    derive_kek,
    encrypt_private_key,
    generate_signing_key,
    jwk_thumbprint,
    mint_access_token,
    public_jwk,
)

TTL = 900
SKEW = 60
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
KEK = derive_kek("test-kek-secret-with-plenty-of-entropy")


def mint(keyring: KeyRing, now: datetime) -> str:
    token, _ = mint_access_token(keyring, subject="user:1", user_id=1, username="a", roles=["user"],
                                 scopes=[], issuer="iss", audience="aud", ttl_seconds=TTL, now=now)
    return token


def verifier_seeing(jwks: Mapping[str, Any], at: datetime) -> AccessTokenVerifier:
    """A verifier whose JWKS is `jwks` and whose clock reads `at`."""
    async def fetch() -> Mapping[str, Any]:
        return jwks

    return AccessTokenVerifier(JwksCache(fetch), "iss", "aud", leeway_seconds=SKEW, clock=at.timestamp)


def private_bytes(key: SigningKey) -> bytes:
    return key.private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                         serialization.NoEncryption())


def test_encrypted_key_round_trips() -> None:
    key = generate_signing_key(T0)
    blob = encrypt_private_key(key, KEK)
    restored = decrypt_private_key(blob, KEK, kid=key.kid)
    assert jwk_thumbprint(restored.public_key()) == key.kid
    assert private_bytes(key) not in blob


def test_encryption_is_randomised() -> None:
    key = generate_signing_key(T0)
    assert encrypt_private_key(key, KEK) != encrypt_private_key(key, KEK)


def test_wrong_kek_cannot_decrypt() -> None:
    key = generate_signing_key(T0)
    blob = encrypt_private_key(key, KEK)
    with pytest.raises(KeyDecryptionError):
        decrypt_private_key(blob, derive_kek("another-secret"), kid=key.kid)


def test_blob_swapped_to_another_kid_cannot_be_decrypted() -> None:
    first, second = generate_signing_key(T0), generate_signing_key(T0)
    with pytest.raises(KeyDecryptionError):
        decrypt_private_key(encrypt_private_key(first, KEK), KEK, kid=second.kid)


@pytest.mark.parametrize("damage", ["flip", "truncate", "version"])
def test_damaged_blob_cannot_be_decrypted(damage: str) -> None:
    key = generate_signing_key(T0)
    blob = bytearray(encrypt_private_key(key, KEK))
    if damage == "flip":
        blob[-1] ^= 1
    elif damage == "truncate":
        del blob[5:]
    else:
        blob[0] = 9
    with pytest.raises(KeyDecryptionError):
        decrypt_private_key(bytes(blob), KEK, kid=key.kid)


def test_kek_derivation_is_deterministic_and_secret_dependent() -> None:
    assert derive_kek("s3cret") == derive_kek("s3cret")
    assert derive_kek("s3cret") != derive_kek("s3cret!")
    assert len(derive_kek("s3cret")) == 32
    with pytest.raises(ValueError, match="empty"):
        derive_kek("")
    with pytest.raises(ValueError, match="32 bytes"):
        encrypt_private_key(generate_signing_key(T0), b"short")


def test_reprs_never_contain_key_material() -> None:
    key = generate_signing_key(T0)
    keyring = KeyRing([key], access_token_ttl_seconds=TTL)
    raw = private_bytes(key)
    forms = [raw.hex(), base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), base64.b64encode(raw).decode(),
             repr(raw)]
    for text in (repr(key), str(key), repr(keyring), f"{key}", repr([key])):
        assert key.kid in text
        for form in forms:
            assert form not in text


def test_public_jwk_is_a_public_ed25519_key() -> None:
    key = generate_signing_key(T0)
    jwk = public_jwk(key)
    assert jwk["kty"] == "OKP"
    assert jwk["alg"] == "EdDSA"
    assert "d" not in jwk
    assert set(parse_jwks({"keys": [jwk]})) == {key.kid}


def test_first_rotation_creates_a_key_that_signs_at_once() -> None:
    keyring = KeyRing(access_token_ttl_seconds=TTL)
    with pytest.raises(LookupError):
        keyring.current(T0)
    rotation = keyring.rotate(T0, publish_ahead_seconds=600)
    assert keyring.current(T0) is rotation.new_key
    assert rotation.scheduled == ()


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        KeyRing(access_token_ttl_seconds=TTL).rotate(datetime(2026, 1, 1))


async def test_token_signed_before_rotation_verifies_after_it() -> None:
    keyring = KeyRing(access_token_ttl_seconds=TTL, clock_skew_seconds=SKEW)
    old = keyring.rotate(T0).new_key
    token = mint(keyring, T0 + timedelta(minutes=1))
    later = T0 + timedelta(minutes=5)
    rotation = keyring.rotate(later)
    assert keyring.current(later) is rotation.new_key
    assert [key.kid for key in rotation.scheduled] == [old.kid]
    assert rotation.scheduled[0].retire_after == later + timedelta(seconds=TTL + SKEW)
    assert {jwk["kid"] for jwk in keyring.jwks(later)["keys"]} == {old.kid, rotation.new_key.kid}
    principal = await verifier_seeing(keyring.jwks(later), later).verify(token)
    assert principal.user_id == 1
    new_token = mint(keyring, later)
    assert (await verifier_seeing(keyring.jwks(later), later).verify(new_token)).user_id == 1


async def test_retired_key_no_longer_verifies() -> None:
    keyring = KeyRing(access_token_ttl_seconds=TTL, clock_skew_seconds=SKEW)
    old = keyring.rotate(T0).new_key
    token = mint(keyring, T0 + timedelta(minutes=1))
    keyring.rotate(T0 + timedelta(minutes=5))
    before_grace = T0 + timedelta(minutes=5, seconds=TTL + SKEW - 1)
    assert keyring.retire_expired(before_grace) == ()
    past_grace = before_grace + timedelta(seconds=2)
    assert [key.kid for key in keyring.retire_expired(past_grace)] == [old.kid]
    assert old.kid not in {jwk["kid"] for jwk in keyring.jwks(past_grace)["keys"]}
    # A verifier whose clock still accepts the token's times rejects it for its key alone.
    verifier = verifier_seeing(keyring.jwks(past_grace), T0 + timedelta(minutes=2))
    with pytest.raises(Unauthenticated, match="unknown key"):
        await verifier.verify(token)


def test_key_published_ahead_is_in_the_jwks_before_it_signs() -> None:
    keyring = KeyRing(access_token_ttl_seconds=TTL, clock_skew_seconds=SKEW)
    old = keyring.rotate(T0).new_key
    rotation = keyring.rotate(T0 + timedelta(minutes=1), publish_ahead_seconds=600)
    just_before = T0 + timedelta(minutes=10, seconds=59)
    assert keyring.current(just_before) is keyring.keys()[0]
    assert keyring.current(just_before).kid == old.kid
    assert rotation.new_key.kid in {jwk["kid"] for jwk in keyring.jwks(T0 + timedelta(minutes=1))["keys"]}
    assert keyring.current(T0 + timedelta(minutes=11)).kid == rotation.new_key.kid
    assert rotation.scheduled[0].retire_after == T0 + timedelta(minutes=11, seconds=TTL + SKEW)


def test_minted_token_reports_its_expiry_and_headers() -> None:
    keyring = KeyRing(access_token_ttl_seconds=TTL)
    key = keyring.rotate(T0).new_key
    token, expires_at = mint_access_token(keyring, subject="user:1", user_id=1, username="a", roles=["user"],
                                          scopes=["x"], issuer="iss", audience="aud", ttl_seconds=TTL, now=T0)
    assert expires_at == T0 + timedelta(seconds=TTL)
    header = token.split(".")[0]
    decoded = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
    assert b'"typ":"at+jwt"' in decoded
    assert key.kid.encode() in decoded
    assert b'"alg":"EdDSA"' in decoded
