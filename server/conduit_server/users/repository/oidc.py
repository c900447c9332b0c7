"""What OpenID Connect sign-in keeps and asks elsewhere: linked identities (SQL), sign-ins in
progress (Redis, single use) and the provider's endpoints (HTTP). Decision 0044."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from conduit_server.runtime.errors import Unavailable
from conduit_server.users.repository.models import ExternalIdentity

# An unknown key id refetches the JWKS at most this often (a forged kid cannot make us hammer the provider).
JWKS_REFETCH_SECONDS = 30.0
# Provider answers are small; anything bigger is refused unread.
MAX_RESPONSE_BYTES = 256 * 1024


class IdentityRepository:
    """Accounts at providers (issuer + subject) linked to users."""

    async def user_of(self, session: AsyncSession, issuer: str, subject: str) -> int | None:
        return await session.scalar(select(ExternalIdentity.user_id).where(
            ExternalIdentity.issuer == issuer, ExternalIdentity.subject == subject))

    async def link(self, session: AsyncSession, issuer: str, subject: str, user_id: int) -> int:
        """Link the identity to `user_id` unless it is linked already; the user it is linked to."""
        await session.execute(insert(ExternalIdentity).values(issuer=issuer, subject=subject, user_id=user_id)
                              .on_conflict_do_nothing())
        linked = await self.user_of(session, issuer, subject)
        assert linked is not None  # inserted or found, in this transaction
        return linked


class PendingLogins:
    """Sign-ins started and not yet completed, by state; `take` removes (GETDEL): single use."""

    def __init__(self, redis: aioredis.Redis, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    async def put(self, state: str, value: dict[str, str], ttl_seconds: int) -> None:
        try:
            await self._redis.set(f"{self._prefix}:{state}", json.dumps(value), ex=ttl_seconds)
        except RedisError as error:
            raise _no_redis(error) from None

    async def take(self, state: str) -> dict[str, str] | None:
        try:
            raw = await self._redis.getdel(f"{self._prefix}:{state}")
        except RedisError as error:
            # Unlike the rate limits and caches, no fail-open here: an unchecked state is no check.
            raise _no_redis(error) from None
        return json.loads(raw) if raw is not None else None


def _no_redis(error: RedisError) -> Unavailable:
    return Unavailable(f"sign-in state store unavailable: {error!r}", reason="OIDC_STATE_STORE")


class ProviderError(Exception):
    """The provider answered with an OAuth2 error (a refused code, a bad client)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description


class ProviderUnreachable(Exception):
    """The provider could not be asked, or answered something that is not what the protocol says."""


@dataclass(frozen=True)
class ProviderMetadata:
    """The fields of the discovery document sign-in uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    id_token_algorithms: tuple[str, ...]


class ProviderClient:
    """The provider's discovery document, JWKS (both cached) and token endpoint."""

    def __init__(self, *, issuer: str, client_id: str, client_secret: str, timeout_seconds: float,
                 metadata_ttl_seconds: float, http: httpx.AsyncClient | None = None) -> None:
        self._issuer = issuer.rstrip("/")
        # RFC 6749 2.3.1: both are form-urlencoded before Basic's base64.
        self._client = (quote(client_id, safe=""), quote(client_secret, safe=""))
        self._http = http or httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False)
        self._ttl = metadata_ttl_seconds
        self._metadata: tuple[float, ProviderMetadata] | None = None
        self._jwks: tuple[float, dict[str, Any]] | None = None

    async def close(self) -> None:
        await self._http.aclose()

    async def _json(self, response: httpx.Response) -> dict[str, Any]:
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise ProviderUnreachable(f"{response.url} answered more than {MAX_RESPONSE_BYTES} bytes")
        try:
            body = response.json()
        except ValueError:
            raise ProviderUnreachable(f"{response.url} answered {response.status_code} without JSON") from None
        if not isinstance(body, dict):
            raise ProviderUnreachable(f"{response.url} answered JSON that is not an object")
        return body

    async def _get(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url, headers={"accept": "application/json"})
        except httpx.HTTPError as error:
            raise ProviderUnreachable(f"{url}: {error!r}") from None
        if response.status_code != 200:
            raise ProviderUnreachable(f"{url} answered {response.status_code}")
        return await self._json(response)

    async def metadata(self) -> ProviderMetadata:
        if self._metadata is not None and time.monotonic() - self._metadata[0] < self._ttl:
            return self._metadata[1]
        document = await self._get(f"{self._issuer}/.well-known/openid-configuration")
        try:
            found = ProviderMetadata(
                issuer=str(document["issuer"]),
                authorization_endpoint=str(document["authorization_endpoint"]),
                token_endpoint=str(document["token_endpoint"]),
                jwks_uri=str(document["jwks_uri"]),
                id_token_algorithms=tuple(document.get("id_token_signing_alg_values_supported") or ("RS256",)))
        except KeyError as missing:
            raise ProviderUnreachable(f"the discovery document has no {missing}") from None
        if found.issuer.rstrip("/") != self._issuer:
            # OpenID Connect Discovery 4.3: the issuer must be exactly the one asked.
            raise ProviderUnreachable(f"the discovery document names issuer {found.issuer!r}")
        self._metadata = (time.monotonic(), found)
        return found

    async def jwks(self, *, refresh: bool = False) -> dict[str, Any]:
        now = time.monotonic()
        if self._jwks is not None:
            age = now - self._jwks[0]
            if age < self._ttl and (not refresh or age < JWKS_REFETCH_SECONDS):
                return self._jwks[1]
        keys = await self._get((await self.metadata()).jwks_uri)
        self._jwks = (now, keys)
        return keys

    async def exchange(self, code: str, *, verifier: str, redirect_uri: str) -> dict[str, Any]:
        """The token response for `code` (client_secret_basic, PKCE verifier)."""
        endpoint = (await self.metadata()).token_endpoint
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": verifier}
        try:
            response = await self._http.post(endpoint, data=form, auth=self._client,
                                             headers={"accept": "application/json"})
        except httpx.HTTPError as error:
            raise ProviderUnreachable(f"{endpoint}: {error!r}") from None
        body = await self._json(response)
        if response.status_code != 200:
            if 400 <= response.status_code < 500 and "error" in body:
                raise ProviderError(str(body["error"]), str(body.get("error_description", "")))
            raise ProviderUnreachable(f"{endpoint} answered {response.status_code}")
        return body


__all__ = ["IdentityRepository", "PendingLogins", "ProviderClient", "ProviderError", "ProviderMetadata",
           "ProviderUnreachable"]
