"""The pure parts of OpenID Connect sign-in (conduit_server.users.domain.oidc, users.api)."""

from __future__ import annotations

import pytest

from conduit_server.users.api import OIDC_COOKIE, cookie_value, oidc_cookie
from conduit_server.users.domain.oidc import ExternalClaims, pkce_challenge, username_base
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
