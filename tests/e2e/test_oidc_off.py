"""Without CONDUIT_OIDC__* settings, OpenID Connect sign-in answers a clear refusal, never a 500."""

from __future__ import annotations

import ssl

import httpx
import pytest

from .conftest import RunningMesh

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("path", ["/api/auth/oidc/login", "/api/auth/oidc/callback?code=c&state=s"])
def test_oidc_sign_in_is_off_until_configured(mesh: RunningMesh, path: str) -> None:
    with httpx.Client(verify=ssl.create_default_context(cafile=mesh.ca), timeout=15) as http:
        answer = http.get(f"{mesh.https}{path}")

    assert answer.status_code == 422
    assert answer.json() == {"errors": {"body": ["OpenID Connect sign-in is not configured"]}}
    assert answer.headers["cache-control"] == "no-store"
