"""Sign-in through an external OpenID Connect provider: authorization code + PKCE, the ID token
checked against the provider's keys, the account found, linked or created (decision 0044).

A sign-in is bound to the browser that started it: `start` answers a random binding (the
browser's cookie) and keeps only its hash with the state, the nonce and the PKCE verifier; the
callback must bring the same binding, and the state is taken (deleted) on first use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from conduit_server.runtime.db import Database
from conduit_server.runtime.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    Unauthenticated,
    Unavailable,
)
from conduit_server.runtime.settings import OidcSettings
from conduit_server.users.domain.accounts import Account, Accounts, SignedIn, account_of, normalise_email
from conduit_server.users.domain.passwords import PasswordHasher
from conduit_server.users.events import EventRepository
from conduit_server.users.repository import Taken, UserRepository
from conduit_server.users.repository.oidc import (
    IdentityRepository,
    PendingLogins,
    ProviderClient,
    ProviderError,
    ProviderUnreachable,
)

# Signature algorithms an ID token may use (never `none`, never a MAC keyed with the client secret).
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
USERNAME_MAX = 64
T = TypeVar("T")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class StartedLogin:
    authorization_url: str
    # The browser's proof of having started this sign-in (its cookie); only its hash is kept.
    binding: str


@dataclass(frozen=True)
class ExternalClaims:
    """What a verified ID token says about the person."""

    issuer: str
    subject: str
    email: str
    email_verified: bool
    preferred_username: str


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(verifier))."""
    return _b64url(hashlib.sha256(verifier.encode()).digest())


def binding_hash(binding: str) -> str:
    return hashlib.sha256(binding.encode()).hexdigest()


def refused(message: str, reason: str) -> Unauthenticated:
    return Unauthenticated(f"OpenID Connect sign-in refused: {message}", reason=reason)


def verify_id_token(id_token: str, jwks: dict[str, Any], *, issuer: str, client_id: str, nonce: str,
                    algorithms: tuple[str, ...], now: int) -> ExternalClaims:
    """The claims of an ID token whose signature, iss, aud (and azp), nonce and exp hold.

    Raises Unauthenticated naming what failed; KeyError when no key of `jwks` has its kid (the
    caller refetches the keys once).
    """
    allowed = [alg for alg in algorithms if alg in ASYMMETRIC] or ["RS256"]
    try:
        keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError):
        raise refused("the provider's JWKS is unusable", "OIDC_ID_TOKEN_INVALID") from None
    try:
        token = jwt.decode(id_token, keys, algorithms=allowed)
    except InvalidKeyIdError:
        raise KeyError("kid") from None
    except (JoseError, ValueError) as error:
        raise refused(f"the ID token does not verify ({error})", "OIDC_ID_TOKEN_INVALID") from None
    claims = token.claims
    registry = jwt.JWTClaimsRegistry(
        now=now, leeway=60,
        iss={"essential": True, "value": issuer}, sub={"essential": True},
        aud={"essential": True, "value": client_id}, exp={"essential": True},
        nonce={"essential": True, "value": nonce})
    try:
        registry.validate(claims)
    except JoseError as error:
        field = getattr(error, "claim", "") or ""
        raise refused(f"the ID token's {field or 'claims'} claim does not hold ({error.error})",
                      "OIDC_ID_TOKEN_CLAIMS") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise refused("the ID token was issued to another party (azp)", "OIDC_ID_TOKEN_CLAIMS")
    email = claims.get("email")
    # What the tables hold (OIDC Core caps sub at 255 ASCII characters; RFC 5321 an address at 254).
    if len(str(claims["sub"])) > 255 or (isinstance(email, str) and len(email) > 254):
        raise refused("the ID token's sub or email is too long", "OIDC_ID_TOKEN_CLAIMS")
    return ExternalClaims(issuer=issuer, subject=str(claims["sub"]),
                          email=normalise_email(email) if isinstance(email, str) else "",
                          email_verified=claims.get("email_verified") is True,
                          preferred_username=str(claims.get("preferred_username") or ""))


def username_base(claims: ExternalClaims) -> str:
    """A username made from the preferred username, else the email's local part, else the subject."""
    for candidate in (claims.preferred_username, claims.email.split("@", 1)[0], f"user-{claims.subject}"):
        cleaned = _NOT_NAME.sub("-", candidate).strip("-")[:USERNAME_MAX - 5]
        if cleaned:
            return cleaned
    return "user"


class OidcLogin:
    """Starts sign-ins and completes them into a signed-in account."""

    def __init__(self, settings: OidcSettings, *, provider: ProviderClient, pending: PendingLogins,
                 database: Database, accounts: Accounts, users: UserRepository, identities: IdentityRepository,
                 events: EventRepository, hasher: PasswordHasher,
                 clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._provider = provider
        self._pending = pending
        self._database = database
        self._accounts = accounts
        self._users = users
        self._identities = identities
        self._events = events
        self._hasher = hasher
        self._clock = clock

    @property
    def state_ttl_seconds(self) -> int:
        return self._settings.state_ttl_seconds

    def _configured(self) -> None:
        if not self._settings.enabled:
            raise FailedPrecondition("OpenID Connect sign-in is not configured", reason="OIDC_DISABLED")

    async def start(self) -> StartedLogin:
        self._configured()
        metadata = await self._ask(self._provider.metadata())
        state, nonce, verifier, binding = (secrets.token_urlsafe(32) for _ in range(4))
        await self._pending.put(state, {"nonce": nonce, "verifier": verifier, "binding": binding_hash(binding)},
                                self._settings.state_ttl_seconds)
        query = urlencode({
            "response_type": "code", "client_id": self._settings.client_id,
            "redirect_uri": self._settings.redirect_uri, "scope": " ".join(self._settings.scopes),
            "state": state, "nonce": nonce, "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256"})
        separator = "&" if "?" in metadata.authorization_endpoint else "?"
        return StartedLogin(f"{metadata.authorization_endpoint}{separator}{query}", binding)

    async def complete(self, *, code: str, state: str, issuer: str, error: str, error_description: str,
                       binding: str) -> SignedIn:
        self._configured()
        if error:
            raise refused(f"the provider answered {error}: {error_description}".rstrip(": "), "OIDC_PROVIDER_ERROR")
        if not code or not state:
            raise InvalidArgument([FieldViolation(name, "can't be blank") for name, value
                                   in (("code", code), ("state", state)) if not value], reason="OIDC_CALLBACK")
        # Taken before anything else: a state is spent by its first use, good or bad.
        pending = await self._pending.take(state)
        if pending is None:
            raise refused("unknown, expired or already used state", "OIDC_STATE_INVALID")
        if not binding or not hmac.compare_digest(pending["binding"], binding_hash(binding)):
            raise refused("this browser did not start the sign-in (state cookie missing or different)",
                          "OIDC_STATE_INVALID")
        metadata = await self._ask(self._provider.metadata())
        if issuer and issuer != metadata.issuer:
            raise refused("the answer comes from another issuer (iss)", "OIDC_ISSUER_MISMATCH")
        try:
            tokens = await self._ask(self._provider.exchange(code, verifier=pending["verifier"],
                                                             redirect_uri=self._settings.redirect_uri))
        except ProviderError as refusal:
            raise refused(f"the provider refused the code ({refusal})", "OIDC_CODE_REJECTED") from None
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise refused("the token response has no ID token", "OIDC_ID_TOKEN_INVALID")
        claims = await self._verify(id_token, pending["nonce"], metadata.issuer, metadata.id_token_algorithms)
        return self._accounts.sign_in(await self._account(claims))

    async def _verify(self, id_token: str, nonce: str, issuer: str, algorithms: tuple[str, ...]) -> ExternalClaims:
        for refresh in (False, True):
            jwks = await self._ask(self._provider.jwks(refresh=refresh))
            try:
                return verify_id_token(id_token, jwks, issuer=issuer, client_id=self._settings.client_id,
                                       nonce=nonce, algorithms=algorithms, now=int(self._clock()))
            except KeyError:
                continue  # a key the cached set lacks: the provider may have rotated
        raise refused("no key of the provider verifies the ID token", "OIDC_ID_TOKEN_INVALID")

    @staticmethod
    async def _ask(call: Awaitable[T]) -> T:
        try:
            return await call
        except ProviderUnreachable as error:
            raise Unavailable(f"the OpenID Connect provider is unavailable: {error}",
                              reason="OIDC_PROVIDER_UNAVAILABLE") from None

    async def _account(self, claims: ExternalClaims) -> Account:
        """The linked account; else the account with this verified email, now linked; else a new one."""
        async with self._database.read() as session:
            user_id = await self._identities.user_of(session, claims.issuer, claims.subject)
        if user_id is not None:
            return await self._accounts.account(user_id)
        if not claims.email:
            raise refused("the ID token carries no email (ask for the email scope)", "OIDC_NO_EMAIL")
        async with self._database.transaction() as session:
            existing = await self._users.by_email(session, claims.email)
            if existing is not None:
                if not claims.email_verified:
                    raise InvalidArgument(
                        [FieldViolation("user.email", "is taken; the provider has not verified it, so it is "
                                                      "not linked: sign in with your password")],
                        reason="OIDC_EMAIL_NOT_VERIFIED")
                user_id = await self._identities.link(session, claims.issuer, claims.subject, existing.id)
        if user_id is not None:  # linked now (or, in a race, a moment ago to whichever account won)
            return await self._accounts.account(user_id)
        return await self._create(claims)

    async def _create(self, claims: ExternalClaims) -> Account:
        # No password: a random one nobody knows (password sign-in stays impossible until reset).
        password_hash = await self._hasher.hash(secrets.token_urlsafe(32))
        base = username_base(claims)
        for attempt in range(5):
            username = base if attempt == 0 else f"{base}-{secrets.randbelow(10_000)}"
            try:
                async with self._database.transaction() as session:
                    user = await self._users.add(session, email=claims.email, username=username,
                                                 password_hash=password_hash)
                    linked = await self._identities.link(session, claims.issuer, claims.subject, user.id)
                    if linked != user.id:
                        raise Taken({"identity"})  # a concurrent first sign-in of the same person won
                    await self._events.user_created(session, user.id, user.username)
                    return account_of(user, ())
            except Taken as error:
                if "identity" in error.fields:
                    return await self._account(claims)
                if "email" in error.fields:  # created concurrently by password or another provider
                    return await self._account(claims)
        raise Unavailable("could not find a free username; try again", reason="OIDC_USERNAME")


__all__ = ["ExternalClaims", "OidcLogin", "StartedLogin", "binding_hash", "pkce_challenge", "username_base",
           "verify_id_token"]
