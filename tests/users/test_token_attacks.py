"""Forged and misused tokens are rejected end to end with UNAUTHENTICATED (issue 4's attack list)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from conduit.users.v1 import users_pb2
from conduit_server.runtime.tokens import access_token_claims
from conduit_server.users.domain.keys import SigningKey, generate_signing_key
from tests.fixtures.users import AUDIENCE, ISSUER, UsersServer, unique_name

from .support import fails


def b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Forger:
    """Builds tokens for one real user, signed with the service's own current key unless told otherwise."""

    def __init__(self, users_server: UsersServer, user_id: int, username: str) -> None:
        now = datetime.now(UTC)
        self.key: SigningKey = max((k for k in users_server.app.signer.signing_keys() if k.can_sign(now)),
                                   key=lambda k: k.activates_at)
        self.user_id = user_id
        self.username = username

    def claims(self, **overrides: Any) -> dict[str, Any]:
        issued_at = int(time.time())
        claims = access_token_claims(subject=f"user:{self.user_id}", user_id=self.user_id,
                                     username=self.username, roles=["user"], scopes=[], issuer=ISSUER,
                                     audience=AUDIENCE, issued_at=issued_at, expires_at=issued_at + 600,
                                     token_id="forged")
        claims.update(overrides)
        return claims

    def sign(self, claims: dict[str, Any], *, key: SigningKey | None = None, **header: Any) -> str:
        key = key or self.key
        return jwt.encode(claims, key.private_key, algorithm="EdDSA",
                          headers={"kid": key.kid, "typ": "at+jwt", **header})


@pytest.fixture
async def forger(users_server: UsersServer) -> Forger:
    name = unique_name("victim")
    user_id, _ = await users_server.register(name)
    return Forger(users_server, user_id, name)


async def current_user(users_server: UsersServer, token: str) -> users_pb2.GetCurrentUserResponse:
    return await users_server.users.GetCurrentUser(users_pb2.GetCurrentUserRequest(),
                                                   metadata=users_server.auth(token))


async def test_a_correctly_forged_token_is_accepted_so_the_rejections_below_mean_something(
        users_server: UsersServer, forger: Forger) -> None:
    answer = await current_user(users_server, forger.sign(forger.claims()))
    assert answer.user.username == forger.username


def _alg_none(f: Forger) -> str:
    return f"{b64({'alg': 'none', 'typ': 'at+jwt', 'kid': f.key.kid})}.{b64(f.claims())}."


def _hs256_with_public_key(f: Forger) -> str:
    public = f.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'at+jwt', 'kid': f.key.kid})}.{b64(f.claims())}"
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def _expired(f: Forger) -> str:
    now = int(time.time())
    return f.sign(f.claims(iat=now - 3600, nbf=now - 3600, exp=now - 1800))


def _not_yet_valid(f: Forger) -> str:
    now = int(time.time())
    return f.sign(f.claims(iat=now + 3600, nbf=now + 3600, exp=now + 4000))


def _unknown_kid(f: Forger) -> str:
    return f.sign(f.claims(), key=generate_signing_key(datetime.now(UTC)))


def _tampered(f: Forger) -> str:
    header, _, signature = f.sign(f.claims()).split(".")
    return f"{header}.{b64(f.claims(roles=['user', 'admin']))}.{signature}"


def _refresh_token_claims(f: Forger) -> str:
    return f.sign(f.claims(token_use="refresh"))


ATTACKS: dict[str, Callable[[Forger], str]] = {
    "alg none": _alg_none,
    "HS256 signed with the public key": _hs256_with_public_key,
    "expired": _expired,
    "not yet valid": _not_yet_valid,
    "wrong iss": lambda f: f.sign(f.claims(iss="https://evil.example")),
    "wrong aud": lambda f: f.sign(f.claims(aud="someone-else")),
    "unknown kid": _unknown_kid,
    "wrong typ": lambda f: f.sign(f.claims(), typ="JWT"),
    "refresh-token claims": _refresh_token_claims,
    "tampered payload": _tampered,
    "garbage": lambda f: "not.a.token",
}


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_attack_is_rejected_with_unauthenticated(users_server: UsersServer, forger: Forger,
                                                       attack: str) -> None:
    await fails(current_user(users_server, ATTACKS[attack](forger)), grpc.StatusCode.UNAUTHENTICATED)


async def test_a_refresh_token_is_not_an_access_token(users_server: UsersServer) -> None:
    name = unique_name()
    await users_server.register(name)
    created = await users_server.auth_service.CreateSession(users_pb2.CreateSessionRequest(
        user=users_pb2.LoginUser(email=f"{name}@example.test", password="correct horse battery staple")))
    await fails(current_user(users_server, created.session.refresh_token), grpc.StatusCode.UNAUTHENTICATED)
    assert (await current_user(users_server, created.session.access_token)).user.username == name


async def test_a_token_on_an_anonymous_method_is_still_verified(users_server: UsersServer,
                                                                forger: Forger) -> None:
    """A bad token is an error even where no token is needed: it must not silently personalise."""
    await fails(users_server.profiles.GetProfile(users_pb2.GetProfileRequest(username=forger.username),
                                                 metadata=users_server.auth(_tampered(forger))),
                grpc.StatusCode.UNAUTHENTICATED)


async def test_jwks_publishes_the_signing_key_without_private_material(users_server: UsersServer) -> None:
    jwks = await users_server.auth_service.GetJwks(users_pb2.GetJwksRequest())
    current = max(users_server.app.signer.signing_keys(), key=lambda k: k.activates_at)
    assert current.kid in {key.kid for key in jwks.keys}
    for key in jwks.keys:
        assert (key.kty, key.crv, key.alg, key.use) == ("OKP", "Ed25519", "EdDSA", "sig")
        assert len(base64.urlsafe_b64decode(key.x + "==")) == 32
