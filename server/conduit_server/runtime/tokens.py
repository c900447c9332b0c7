"""Access-token verification shared by every service of the mesh.

The users service signs access tokens; every service verifies them locally
against the users service's JWKS (cached, refreshed on an unknown `kid`), so no
request costs a call to users.

Access-token layout (JWS compact serialization, RFC 9068 profile):

header
    alg  "EdDSA" (Ed25519) or "ES256" (P-256) — pinned by the verifier, never trusted
    kid  id of the signing key in the JWKS (the key's RFC 7638 thumbprint)
    typ  "at+jwt" (RFC 9068 §2.1; "application/at+jwt" is accepted too)

claims
    iss        `Settings.jwt_issuer`
    aud        `Settings.jwt_audience`
    sub        "user:<id>" for a user, "sa:<client_id>" for a service account
    exp, iat   integer seconds since the epoch; nbf is checked when present; iat_ms: iat in ms (revocations)
    jti        random token id (room for a deny-list)
    token_use  "access" — anything else (a refresh token, an ID token) is rejected
    uid        integer user id; present exactly when sub is "user:<id>"
    name       username (optional)
    roles      list of role names, e.g. ["user", "admin"]
    scope      space-separated OAuth scopes (RFC 8693 §4.2), e.g. "articles:write"
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from conduit_server.runtime.errors import Unauthenticated, Unavailable

logger = logging.getLogger(__name__)

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
# RFC 9068 §4: both spellings of the media type are valid; comparison is case-insensitive.
_ACCEPTED_TYPES = frozenset({"at+jwt", "application/at+jwt"})
TOKEN_USE_ACCESS = "access"  # noqa: S105 - a claim value, not a secret
USER_SUBJECT_PREFIX = "user:"
SERVICE_SUBJECT_PREFIX = "sa:"
# Asymmetric only: never a MAC algorithm, so a public key can never double as an HMAC secret.
ALLOWED_ALGORITHMS = frozenset({"EdDSA", "ES256"})
# Bigger tokens are not ours; refuse before parsing attacker-sized JSON.
MAX_TOKEN_LENGTH = 8192
_MAX_KID_LENGTH = 128

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
FetchJwks = Callable[[], Awaitable[Mapping[str, Any]]]


def user_subject(user_id: int) -> str:
    """`user:<id>`, the subject of a user's access token."""
    return f"{USER_SUBJECT_PREFIX}{user_id}"


def service_subject(client_id: str) -> str:
    """`sa:<client_id>`, the subject of a service account's access token."""
    return f"{SERVICE_SUBJECT_PREFIX}{client_id}"


def access_token_claims(*, subject: str, user_id: int | None, username: str | None, issued_at_ms: int | None = None,
                        roles: Iterable[str], scopes: Iterable[str], issuer: str, audience: str,
                        issued_at: int, expires_at: int, token_id: str) -> dict[str, Any]:
    """The claim set of an access token; the signer uses this so layout lives in one module."""
    claims: dict[str, Any] = {
        "iss": issuer, "aud": audience, "sub": subject, "iat": issued_at, "nbf": issued_at,
        "iat_ms": issued_at * 1000 if issued_at_ms is None else issued_at_ms,
        "exp": expires_at, "jti": token_id, "token_use": TOKEN_USE_ACCESS,
        "roles": sorted(set(roles)), "scope": " ".join(sorted(set(scopes))),
    }
    if user_id is not None:
        claims["uid"] = user_id
    if username is not None:
        claims["name"] = username
    return claims


@dataclass(frozen=True)
class Principal:
    """Who is calling, as proven by a verified access token."""

    subject: str
    user_id: int | None
    username: str | None
    roles: frozenset[str]
    scopes: frozenset[str]
    kind: Literal["user", "service"]
    token_id: str
    expires_at: datetime
    issued_at_ms: int = 0  # the `iat_ms` claim (`iat` * 1000 for tokens without it)

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


@dataclass(frozen=True)
class VerificationKey:
    """One public key from the JWKS, bound to the single algorithm it may verify."""

    kid: str
    algorithm: Literal["EdDSA", "ES256"]
    key: PublicKey


def _b64url_decode(value: object, size: int) -> bytes:
    if not isinstance(value, str):
        raise ValueError("coordinate is not a string")
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    if len(raw) != size:
        raise ValueError("coordinate has the wrong length")
    return raw


def _parse_jwk(jwk: Mapping[str, Any]) -> VerificationKey:
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID_LENGTH:
        raise ValueError("missing or invalid kid")
    if "d" in jwk:
        raise ValueError("private key material in a public JWKS")
    if jwk.get("use", "sig") != "sig":
        raise ValueError("key is not for signatures")
    kty, crv, alg = jwk.get("kty"), jwk.get("crv"), jwk.get("alg")
    if kty == "OKP" and crv == "Ed25519" and alg in (None, "EdDSA"):
        return VerificationKey(kid, "EdDSA",
                               ed25519.Ed25519PublicKey.from_public_bytes(_b64url_decode(jwk.get("x"), 32)))
    if kty == "EC" and crv == "P-256" and alg in (None, "ES256"):
        x = int.from_bytes(_b64url_decode(jwk.get("x"), 32), "big")
        y = int.from_bytes(_b64url_decode(jwk.get("y"), 32), "big")
        # public_key() rejects points that are not on the curve (invalid-curve attacks).
        return VerificationKey(kid, "ES256", ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key())
    raise ValueError("unsupported key type")


def parse_jwks(document: Mapping[str, Any]) -> dict[str, VerificationKey]:
    """Usable keys of a JWKS (RFC 7517) by kid; unusable entries are skipped, not fatal."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ValueError("JWKS has no 'keys' list")
    keys: dict[str, VerificationKey] = {}
    for index, entry in enumerate(entries):
        try:
            if not isinstance(entry, Mapping):
                raise ValueError("entry is not an object")
            key = _parse_jwk(entry)
        except ValueError as error:
            # One odd key (say RSA added by an operator) must not take every other key down.
            logger.warning("skipping JWKS entry %d: %s", index, error)
            continue
        keys[key.kid] = key
    return keys


class JwksCache:
    """Public keys by kid, fetched from the users service on demand.

    Fetches on first use, when the keys are older than `max_age_seconds`, and
    when a token names an unknown kid — but never more often than once per
    `min_refresh_interval_seconds`, so tokens with garbage kids cannot make us
    hammer the users service. Concurrent callers share one fetch.
    """

    def __init__(self, fetch: FetchJwks, *, min_refresh_interval_seconds: float = 30.0,
                 max_age_seconds: float = 600.0, fetch_timeout_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._fetch_timeout = fetch_timeout_seconds
        self._min_interval = min_refresh_interval_seconds
        self._max_age = max_age_seconds
        self._clock = clock
        self._keys: dict[str, VerificationKey] | None = None
        self._loaded_at = 0.0
        self._last_attempt: float | None = None
        self._lock = asyncio.Lock()
        self.fetch_count = 0  # for metrics and tests

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys or ())

    async def get(self, kid: str) -> VerificationKey | None:
        """The key for `kid`, or None when the (possibly refreshed) JWKS does not have it."""
        if self._keys is None or self._clock() - self._loaded_at >= self._max_age:
            await self.refresh()
        if self._keys is not None and kid in self._keys:
            return self._keys[kid]
        await self.refresh()
        if self._keys is None:
            # No keys at all is an outage, not a bad token: clients must retry, not log out.
            raise Unavailable("token signing keys are not available yet", reason="JWKS_UNAVAILABLE")
        return self._keys.get(kid)

    async def refresh(self) -> None:
        """Fetch the JWKS unless a fetch was attempted within the rate-limit interval."""
        async with self._lock:
            now = self._clock()
            # Without any keys retry sooner: one failed start-up fetch must not mean minutes of 503s.
            interval = self._min_interval if self._keys is not None else min(self._min_interval, 1.0)
            if self._last_attempt is not None and now - self._last_attempt < interval:
                return
            self._last_attempt = now
            self.fetch_count += 1
            try:
                # A hung users service must not hang every verification queued behind the lock.
                async with asyncio.timeout(self._fetch_timeout):
                    document = await self._fetch()
                keys = parse_jwks(document)
            except Exception as error:  # noqa: BLE001 - any transport failure: keep serving the keys we have
                logger.warning("JWKS refresh failed: %s", type(error).__name__)
                return
            self._keys, self._loaded_at = keys, now


# Messages name the failed check only: never the token, the key or PyJWT's own text.
_DECODE_FAILURES: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.InvalidSignatureError, "signature is invalid"), (jwt.InvalidIssuerError, "has the wrong issuer"),
    (jwt.InvalidAudienceError, "has the wrong audience"))


def _reject(message: str, reason: str = "INVALID_TOKEN") -> Unauthenticated:
    return Unauthenticated(message, reason=reason)


def _int_claim(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    # bool is an int in Python, and PyJWT would even accept "123"; we accept JSON numbers only.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _reject(f"access token claim '{name}' is missing or not a number")
    return int(value)


def _str_claim(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise _reject(f"access token claim '{name}' is missing or not a string")
    return value


class AccessTokenVerifier:
    """Verifies access tokens against a JWKS cache and turns them into a `Principal`."""

    def __init__(self, keys: JwksCache, issuer: str, audience: str, *, leeway_seconds: float = 30.0,
                 max_lifetime_seconds: int = 86400, clock: Callable[[], float] = time.time,
                 cache_size: int = 4096, revoked: Callable[[Principal], Awaitable[bool]] | None = None) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._max_lifetime = max_lifetime_seconds
        self._clock = clock
        # A client sends the same token on every call: remember verified tokens until they expire,
        # so the signature check (the costly part) runs once per token, not once per request.
        self._verified: OrderedDict[str, tuple[Principal, str]] = OrderedDict()
        self._cache_size = cache_size
        self._revoked = revoked  # asked on every call, after the cache: a revocation voids at once

    async def verify(self, token: str) -> Principal:
        """The principal of a valid, unrevoked access token; `Unauthenticated` for anything else."""
        principal = await self._verified_principal(token)
        if self._revoked is not None and await self._revoked(principal):
            raise _reject("access token has been revoked", "TOKEN_REVOKED")
        return principal

    async def _verified_principal(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            principal, kid = known
            # Still unexpired, and its key still published (a retired key un-verifies its tokens).
            if principal.expires_at.timestamp() + self._leeway > self._clock() and kid in self._keys.kids:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        principal = await self._verify(token)
        self._verified[token] = (principal, str(jwt.get_unverified_header(token)["kid"]))
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> Principal:
        if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise _reject("malformed access token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _reject("malformed access token header") from None
        key = await self._key_for(header)
        try:
            # Time claims are checked below with our clock; PyJWT checks signature, iss, aud, sub, jti.
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=[key.algorithm], issuer=self._issuer, audience=self._audience,
                options={"require": ["iss", "aud", "sub", "jti", "exp", "iat"], "verify_exp": False,
                         "verify_iat": False, "verify_nbf": False, "strict_aud": False})
        except jwt.MissingRequiredClaimError as error:
            raise _reject(f"access token lacks the '{error.claim}' claim") from None
        except jwt.PyJWTError as error:
            message = next((text for kind, text in _DECODE_FAILURES if isinstance(error, kind)), "is invalid")
            raise _reject(f"access token {message}") from None
        self._check_times(claims)
        return self._principal(claims)

    async def _key_for(self, header: Mapping[str, Any]) -> VerificationKey:
        alg = header.get("alg")
        # The allow-list is ours; the header only selects within it (RFC 8725 §3.1).
        if alg not in ALLOWED_ALGORITHMS:
            raise _reject("access token algorithm is not allowed")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYPES:
            raise _reject("token is not an access token (typ)")
        if "crit" in header or "b64" in header:
            raise _reject("access token uses unsupported header extensions")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID_LENGTH:
            raise _reject("access token has no valid key id")
        key = await self._keys.get(kid)
        if key is None:
            raise _reject("access token is signed by an unknown key")
        if key.algorithm != alg:
            raise _reject("access token algorithm does not match its key")
        return key

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock()
        expires_at = _int_claim(claims, "exp")
        issued_at = _int_claim(claims, "iat")
        not_before = _int_claim(claims, "nbf") if "nbf" in claims else None
        if expires_at <= now - self._leeway:
            raise _reject("access token has expired", "TOKEN_EXPIRED")
        if issued_at > now + self._leeway or (not_before is not None and not_before > now + self._leeway):
            raise _reject("access token is not valid yet")
        if expires_at <= issued_at or expires_at - issued_at > self._max_lifetime:
            raise _reject("access token lifetime is invalid")

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        if claims.get("token_use") != TOKEN_USE_ACCESS:
            raise _reject("token is not an access token (token_use)")
        subject = _str_claim(claims, "sub")
        token_id = _str_claim(claims, "jti")
        uid = claims.get("uid")
        kind: Literal["user", "service"]
        if subject.startswith(USER_SUBJECT_PREFIX):
            # sub and uid must agree, or one of them is forged or mis-minted.
            if isinstance(uid, bool) or not isinstance(uid, int) or subject != user_subject(uid):
                raise _reject("access token subject and user id disagree")
            kind = "user"
        elif subject.startswith(SERVICE_SUBJECT_PREFIX) and len(subject) > len(SERVICE_SUBJECT_PREFIX):
            if uid is not None:
                raise _reject("service access token carries a user id")
            kind = "service"
        else:
            raise _reject("access token subject is not recognised")
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise _reject("access token roles are malformed")
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise _reject("access token scope is malformed")
        username = claims.get("name")
        if username is not None and not isinstance(username, str):
            raise _reject("access token name is malformed")
        expires_at = _int_claim(claims, "exp")
        issued_at_ms = _int_claim(claims, "iat_ms") if "iat_ms" in claims else _int_claim(claims, "iat") * 1000
        return Principal(subject=subject, user_id=uid if kind == "user" else None, username=username,
                         roles=frozenset(roles), scopes=frozenset(scope.split()), kind=kind, token_id=token_id,
                         expires_at=datetime.fromtimestamp(expires_at, UTC), issued_at_ms=issued_at_ms)


def parse_authorization_header(value: str | None) -> str | None:
    """The credential of `Token <jwt>` (RealWorld) or `Bearer <jwt>`; None for anything else."""
    if not value:
        return None
    scheme, _, credential = value.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() not in ("token", "bearer") or not credential or any(c.isspace() for c in credential):
        return None
    return credential


__all__ = [
    "ACCESS_TOKEN_TYPE", "ALLOWED_ALGORITHMS", "MAX_TOKEN_LENGTH", "SERVICE_SUBJECT_PREFIX",
    "TOKEN_USE_ACCESS", "USER_SUBJECT_PREFIX", "AccessTokenVerifier", "FetchJwks", "JwksCache",
    "Principal", "PublicKey", "VerificationKey", "access_token_claims", "parse_authorization_header",
    "parse_jwks", "service_subject", "user_subject",
]
