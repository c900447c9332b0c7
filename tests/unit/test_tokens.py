"""Access-token verification: every attack from issue 4 ends in Unauthenticated."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from conduit_server.runtime.errors import Unauthenticated, Unavailable
from conduit_server.runtime.tokens import (
    AccessTokenVerifier,
    JwksCache,
    access_token_claims,
    parse_authorization_header,
    parse_jwks,
)
from conduit_server.users.domain.keys import KeyRing, SigningKey, generate_signing_key, mint_access_token

ISSUER = "conduit-mesh"
AUDIENCE = "conduit"
TTL = 900
START = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A settable clock shared by the cache (monotonic) and the verifier (wall)."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Fixture:
    def __init__(self) -> None:
        self.clock = Clock()
        self.keyring = KeyRing(access_token_ttl_seconds=TTL)
        self.keyring.rotate(self.clock.now - timedelta(days=1))  # so tests can mint in the past
        self.extra_keys: list[dict[str, str]] = []
        self.cache = JwksCache(self.fetch, min_refresh_interval_seconds=30, max_age_seconds=600,
                               clock=self.clock)
        self.verifier = AccessTokenVerifier(self.cache, ISSUER, AUDIENCE, leeway_seconds=30, clock=self.clock)

    async def fetch(self) -> Mapping[str, Any]:
        document = self.keyring.jwks(self.clock.now)
        return {"keys": [*document["keys"], *self.extra_keys]}

    @property
    def key(self) -> SigningKey:
        return self.keyring.current(self.clock.now)

    def mint(self, *, now: datetime | None = None, issuer: str = ISSUER, audience: str = AUDIENCE,
             roles: tuple[str, ...] = ("user",), scopes: tuple[str, ...] = ()) -> str:
        token, _ = mint_access_token(self.keyring, subject="user:42", user_id=42, username="jake",
                                     roles=roles, scopes=scopes, issuer=issuer, audience=audience,
                                     ttl_seconds=TTL, now=now or self.clock.now)
        return token

    def claims(self, **overrides: Any) -> dict[str, Any]:
        issued_at = int(self.clock.now.timestamp())
        claims = access_token_claims(subject="user:42", user_id=42, username="jake", roles=["user"],
                                     scopes=[], issuer=ISSUER, audience=AUDIENCE, issued_at=issued_at,
                                     expires_at=issued_at + TTL, token_id="jti-1")
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def forge(self, claims: dict[str, Any], *, key: SigningKey | None = None,
              **header: Any) -> str:
        """Sign arbitrary claims and headers with a real key (ours unless `key` is given)."""
        key = key or self.key
        headers = {"kid": key.kid, "typ": "at+jwt", **header}
        return jwt.encode(claims, key.private_key, algorithm="EdDSA", headers=headers)


def b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
def f() -> Fixture:
    return Fixture()


async def assert_rejected(f: Fixture, token: str, fragment: str = "") -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        await f.verifier.verify(token)
    assert fragment in caught.value.message
    return caught.value


async def test_valid_user_token_gives_its_principal(f: Fixture) -> None:
    principal = await f.verifier.verify(f.mint(roles=("user", "admin"), scopes=("articles:write",)))
    assert principal.subject == "user:42"
    assert principal.user_id == 42
    assert principal.username == "jake"
    assert principal.kind == "user"
    assert not principal.is_service
    assert principal.has_role("admin")
    assert principal.has_scope("articles:write")
    assert principal.expires_at == START + timedelta(seconds=TTL)
    assert principal.token_id


async def test_service_account_token_gives_a_service_principal(f: Fixture) -> None:
    token, _ = mint_access_token(f.keyring, subject="sa:sa_123", user_id=None, username=None, roles=[],
                                 scopes=["profiles:read", "articles:read"], issuer=ISSUER,
                                 audience=AUDIENCE, ttl_seconds=TTL, now=f.clock.now)
    principal = await f.verifier.verify(token)
    assert principal.is_service
    assert principal.user_id is None
    assert principal.scopes == frozenset({"profiles:read", "articles:read"})


async def test_es256_tokens_verify_against_an_ec_jwk(f: Fixture) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    f.extra_keys.append({**jwk, "kid": "ec-1", "alg": "ES256", "use": "sig"})
    token = jwt.encode(f.claims(), private, algorithm="ES256", headers={"kid": "ec-1", "typ": "at+jwt"})
    assert (await f.verifier.verify(token)).user_id == 42


async def test_alg_none_is_rejected(f: Fixture) -> None:
    header = {"alg": "none", "typ": "at+jwt", "kid": f.key.kid}
    await assert_rejected(f, f"{b64(header)}.{b64(f.claims())}.", "algorithm")


@pytest.mark.parametrize("secret_form", ["raw", "jwk-x", "pem"])
async def test_hs256_signed_with_the_public_key_is_rejected(f: Fixture, secret_form: str) -> None:
    public = f.key.public_key()
    secret = {
        "raw": public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
        "jwk-x": f.keyring.jwks(f.clock.now)["keys"][0]["x"].encode(),
        "pem": public.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo),
    }[secret_form]
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'at+jwt', 'kid': f.key.kid})}.{b64(f.claims())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    await assert_rejected(f, f"{signing_input}.{b64(signature)}", "algorithm")


async def test_expired_token_is_rejected_with_its_own_reason(f: Fixture) -> None:
    token = f.mint(now=f.clock.now - timedelta(seconds=TTL + 31))
    error = await assert_rejected(f, token, "expired")
    assert error.reason == "TOKEN_EXPIRED"


async def test_expiry_within_leeway_is_accepted(f: Fixture) -> None:
    await f.verifier.verify(f.mint(now=f.clock.now - timedelta(seconds=TTL + 20)))


async def test_token_issued_in_the_future_is_rejected(f: Fixture) -> None:
    await assert_rejected(f, f.mint(now=f.clock.now + timedelta(minutes=5)), "not valid yet")


async def test_token_with_future_nbf_is_rejected(f: Fixture) -> None:
    token = f.forge(f.claims(nbf=int(f.clock()) + 300))
    await assert_rejected(f, token, "not valid yet")


@pytest.mark.parametrize(("issuer", "audience", "fragment"),
                         [("evil-issuer", AUDIENCE, "issuer"), (ISSUER, "other-api", "audience")])
async def test_wrong_issuer_or_audience_is_rejected(f: Fixture, issuer: str, audience: str,
                                                    fragment: str) -> None:
    await assert_rejected(f, f.mint(issuer=issuer, audience=audience), fragment)


async def test_unknown_kid_refreshes_the_jwks_once_then_is_still_rejected(f: Fixture) -> None:
    await f.verifier.verify(f.mint())
    assert f.cache.fetch_count == 1
    stranger = generate_signing_key(f.clock.now)
    f.clock.advance(31)
    token = f.forge(f.claims(), key=stranger)
    await assert_rejected(f, token, "unknown key")
    assert f.cache.fetch_count == 2
    for _ in range(20):
        await assert_rejected(f, token, "unknown key")
    assert f.cache.fetch_count == 2  # rate-limited: garbage kids cannot hammer users


async def test_a_new_kid_is_picked_up_after_rotation(f: Fixture) -> None:
    await f.verifier.verify(f.mint())
    f.clock.advance(31)
    f.keyring.rotate(f.clock.now)
    principal = await f.verifier.verify(f.mint())
    assert principal.user_id == 42
    assert f.cache.fetch_count == 2


async def test_keys_older_than_max_age_are_refetched(f: Fixture) -> None:
    await f.verifier.verify(f.mint())
    f.clock.advance(601)
    await f.verifier.verify(f.mint())
    assert f.cache.fetch_count == 2


async def test_no_reachable_jwks_is_unavailable_not_unauthenticated(f: Fixture) -> None:
    async def broken() -> Mapping[str, Any]:
        raise ConnectionError("users is down")

    verifier = AccessTokenVerifier(JwksCache(broken, clock=f.clock), ISSUER, AUDIENCE, clock=f.clock)
    with pytest.raises(Unavailable):
        await verifier.verify(f.mint())


@pytest.mark.parametrize("typ", ["JWT", "refresh+jwt", None, 7])
async def test_wrong_typ_is_rejected(f: Fixture, typ: object) -> None:
    await assert_rejected(f, f.forge(f.claims(), typ=typ), "typ")


async def test_rfc9068_media_type_spelling_is_accepted(f: Fixture) -> None:
    await f.verifier.verify(f.forge(f.claims(), typ="application/AT+JWT"))


@pytest.mark.parametrize("token_use", ["refresh", "id", None])
async def test_refresh_shaped_token_is_not_an_access_token(f: Fixture, token_use: str | None) -> None:
    # None drops the claim altogether.
    await assert_rejected(f, f.forge(f.claims(token_use=token_use)), "token_use")


async def test_tampered_payload_is_rejected(f: Fixture) -> None:
    header, _, signature = f.mint().split(".")
    forged = f.claims(roles=["user", "admin"])
    await assert_rejected(f, f"{header}.{b64(forged)}.{signature}", "signature")


async def test_tampered_header_is_rejected(f: Fixture) -> None:
    _, payload, signature = f.mint().split(".")
    header = {"alg": "EdDSA", "typ": "at+jwt", "kid": f.key.kid, "x": "y"}
    await assert_rejected(f, f"{b64(header)}.{payload}.{signature}", "signature")


@pytest.mark.parametrize("claim", ["jti", "sub", "exp", "iat", "iss", "aud"])
async def test_missing_required_claim_is_rejected(f: Fixture, claim: str) -> None:
    claims = f.claims()
    del claims[claim]
    await assert_rejected(f, f.forge(claims), f"'{claim}'")


async def test_missing_kid_is_rejected(f: Fixture) -> None:
    token = jwt.encode(f.claims(), f.key.private_key, algorithm="EdDSA", headers={"typ": "at+jwt"})
    await assert_rejected(f, token, "key id")


async def test_header_alg_must_match_the_keys_algorithm(f: Fixture) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(f.claims(), private, algorithm="ES256", headers={"kid": f.key.kid, "typ": "at+jwt"})
    await assert_rejected(f, token, "does not match")


@pytest.mark.parametrize(("overrides", "fragment"), [
    ({"uid": 7}, "disagree"), ({"uid": "42"}, "disagree"), ({"uid": True}, "disagree"),
    ({"sub": "sa:svc"}, "carries a user id"), ({"sub": "robot:1", "uid": None}, "not recognised"),
    ({"exp": "99999999999"}, "not a number"), ({"exp": 10**12}, "lifetime"),
    ({"roles": "admin"}, "roles"), ({"scope": ["a"]}, "scope"),
])
async def test_inconsistent_or_malformed_claims_are_rejected(f: Fixture, overrides: dict[str, Any],
                                                             fragment: str) -> None:
    await assert_rejected(f, f.forge(f.claims(**overrides)), fragment)


async def test_critical_header_extensions_are_rejected(f: Fixture) -> None:
    await assert_rejected(f, f.forge(f.claims(), crit=["exp"]), "header")


@pytest.mark.parametrize("token", ["", "abc", "a.b.c.d.e", "x" * 9000, "e30.e30.", "!!.??.##"])
async def test_garbage_is_rejected(f: Fixture, token: str) -> None:
    await assert_rejected(f, token)


async def test_error_messages_never_carry_key_material(f: Fixture) -> None:
    error = await assert_rejected(f, f.forge(f.claims(), key=generate_signing_key(f.clock.now)))
    x = f.keyring.jwks(f.clock.now)["keys"][0]["x"]
    assert x not in str(error)


def test_jwks_parsing_skips_unusable_entries() -> None:
    good = {"kty": "OKP", "crv": "Ed25519", "x": b64(b"\x01" * 32), "kid": "a"}
    keys = parse_jwks({"keys": [
        good,
        {"kty": "RSA", "n": "x", "e": "AQAB", "kid": "rsa"},
        {**good, "kid": "private", "d": b64(b"\x02" * 32)},
        {**good, "kid": "short", "x": b64(b"\x01" * 31)},
        {**good, "kid": "enc", "use": "enc"},
        {"kty": "EC", "crv": "P-256", "x": b64(b"\x01" * 32), "y": b64(b"\x02" * 32), "kid": "off-curve"},
        "not-an-object",
    ]})
    assert set(keys) == {"a"}


@pytest.mark.parametrize(("value", "expected"), [
    ("Token abc.def.ghi", "abc.def.ghi"),
    ("Bearer abc.def.ghi", "abc.def.ghi"),
    ("token abc.def.ghi", "abc.def.ghi"),
    ("BEARER   abc.def.ghi  ", "abc.def.ghi"),
    ("Basic dXNlcjpwYXNz", None),
    ("Token", None),
    ("Token ", None),
    ("Token a b", None),
    ("", None),
    (None, None),
])
def test_authorization_header_parsing(value: str | None, expected: str | None) -> None:
    assert parse_authorization_header(value) == expected


async def test_a_hung_jwks_fetch_times_out_as_unavailable(f: Fixture) -> None:
    async def hung() -> Mapping[str, Any]:
        await asyncio.Event().wait()
        return {}

    cache = JwksCache(hung, fetch_timeout_seconds=0.01, clock=f.clock)
    verifier = AccessTokenVerifier(cache, ISSUER, AUDIENCE, clock=f.clock)
    with pytest.raises(Unavailable):
        await verifier.verify(f.mint())


async def test_a_failed_first_fetch_is_retried_after_a_second(f: Fixture) -> None:
    calls = 0

    async def flaky() -> Mapping[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("users is starting")
        return await f.fetch()

    verifier = AccessTokenVerifier(JwksCache(flaky, clock=f.clock), ISSUER, AUDIENCE, clock=f.clock)
    with pytest.raises(Unavailable):
        await verifier.verify(f.mint())
    f.clock.advance(1)
    assert (await verifier.verify(f.mint())).user_id == 42


async def test_concurrent_unknown_kids_share_one_fetch(f: Fixture) -> None:
    await f.verifier.verify(f.mint())
    f.clock.advance(31)
    forged = [f.forge(f.claims(), key=generate_signing_key(f.clock.now)) for _ in range(20)]
    results = await asyncio.gather(*(f.verifier.verify(token) for token in forged), return_exceptions=True)
    assert all(isinstance(result, Unauthenticated) for result in results)
    assert f.cache.fetch_count == 2


async def test_a_verified_token_is_remembered_until_it_expires(f: Fixture) -> None:
    token = f.mint()
    first = await f.verifier.verify(token)
    fetches = f.cache.fetch_count
    assert await f.verifier.verify(token) is first  # served from the verified-token cache
    assert f.cache.fetch_count == fetches
    f.clock.advance(TTL + 31)  # past expiry and the 30 s leeway
    await assert_rejected(f, token, "expired")


async def test_a_remembered_token_stops_verifying_once_its_key_is_retired(f: Fixture) -> None:
    token = f.mint()
    await f.verifier.verify(token)
    f.keyring.rotate(f.clock.now)
    f.clock.advance(TTL + 120)
    f.keyring.retire_expired(f.clock.now)
    await f.cache.refresh()
    f.clock.now -= timedelta(seconds=TTL + 120)  # the token's own times are still fine
    await assert_rejected(f, token)
