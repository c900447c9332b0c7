"""The pure parts of OpenID Connect sign-in (conduit_server.users.domain.oidc, users.api)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from conduit_server.runtime.errors import Unauthenticated
from conduit_server.users.api import OIDC_COOKIE, cookie_value, oidc_cookie
from conduit_server.users.domain.oidc import ExternalClaims, pkce_challenge, username_base, verify_id_token
from conduit_server.users.repository.oidc import ProviderClient, ProviderUnreachable
from tests.conftest import free_port


def test_pkce_challenge_is_rfc7636_s256() -> None:
    # RFC 7636 appendix B.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.mark.parametrize(("preferred", "email", "subject", "expected"), [
    ("Jane Doe", "jane@example.org", "1", "Jane-Doe"),
    ("", "j.doe+news@example.org", "1", "j-doe-news"),
    ("", "", "abc", "user-abc"),
    ("ü", "", "ü", "user"),
    ("x" * 100, "", "1", "x" * 59),
])
def test_username_is_derived_from_the_claims(preferred: str, email: str, subject: str, expected: str) -> None:
    claims = ExternalClaims("https://issuer", subject, email, True, preferred)
    assert username_base(claims) == expected


def test_the_binding_cookie_is_read_back_from_a_cookie_header() -> None:
    header = f"a=1; {OIDC_COOKIE}=abc-123; b=2"
    assert cookie_value(header, OIDC_COOKIE) == "abc-123"
    assert cookie_value("a=1", OIDC_COOKIE) == ""
    assert oidc_cookie("v", 600).startswith(f"{OIDC_COOKIE}=v; Path=/; Max-Age=600; HttpOnly; Secure")


async def test_an_unreachable_provider_is_reported_as_such() -> None:
    provider = ProviderClient(issuer=f"http://127.0.0.1:{free_port()}", client_id="c", client_secret="s",
                              timeout_seconds=2, metadata_ttl_seconds=60)
    try:
        with pytest.raises(ProviderUnreachable, match="openid-configuration"):
            await provider.metadata()
    finally:
        await provider.close()


def _signed(claims: dict[str, object], *, key: RSAKey | OctKey, alg: str = "RS256") -> str:
    return jwt.encode({"alg": alg, "kid": "k1"}, claims, key)


def _claims(**changes: object) -> dict[str, object]:
    now = int(time.time())
    return {"iss": "https://op", "sub": "s1", "aud": "mesh", "nonce": "n1", "iat": now, "exp": now + 300,
            "email": "A@Example.org", "email_verified": True, **changes}


RSA = RSAKey.generate_key(2048, parameters={"kid": "k1"})
JWKS = {"keys": [RSA.as_dict(private=False)]}


def _verify(token: str, jwks: dict[str, Any] = JWKS) -> ExternalClaims:
    return verify_id_token(token, jwks, issuer="https://op", client_id="mesh", nonce="n1",
                           algorithms=("RS256", "HS256", "none"), now=int(time.time()))


def test_a_good_id_token_gives_its_claims() -> None:
    claims = _verify(_signed(_claims(), key=RSA))
    assert (claims.subject, claims.email, claims.email_verified) == ("s1", "a@example.org", True)


@pytest.mark.parametrize("changes", [{"sub": "s" * 256}, {"email": "a" * 250 + "@x.org"}, {"nonce": "other"},
                                     {"aud": ["mesh", "other"]}, {"exp": int(time.time()) - 600}])
def test_id_tokens_the_mesh_cannot_accept_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(Unauthenticated):
        _verify(_signed(_claims(**changes), key=RSA))


def test_a_token_signed_with_a_shared_secret_is_refused_even_when_discovery_lists_hs256() -> None:
    # Asymmetric algorithms only: an HS256 token keyed with some secret proves nothing about the provider.
    secret = OctKey.import_key("client-secret-known-to-the-mesh-and-others!", {"kid": "k1"})
    with pytest.raises(Unauthenticated):
        _verify(_signed(_claims(), key=secret, alg="HS256"), {"keys": [secret.as_dict(private=True)]})


def test_an_unknown_key_id_asks_for_the_keys_again() -> None:
    other = RSAKey.generate_key(2048, parameters={"kid": "k3"})
    with pytest.raises(KeyError):
        _verify(_signed(_claims(), key=RSA), {"keys": [other.as_dict(private=False)]})
