"""Signing keys of a running users service: kept in PostgreSQL, reloaded, rotated; tokens minted.

Every replica (and the operator CLI) shares the `signing_keys` table; private
keys are stored AES-GCM encrypted under the key-encryption key from settings.
Replicas reload the table periodically, so a rotation made by the CLI takes
effect without a restart. The service verifies its own tokens against its
in-memory key ring (no call to itself).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from conduit_server.runtime.db import Database
from conduit_server.runtime.tokens import (
    AccessTokenVerifier,
    JwksCache,
    Principal,
    service_subject,
    user_subject,
)
from conduit_server.users.domain import keys
from conduit_server.users.repository import KeyRepository, lock
from conduit_server.users.repository.models import SigningKeyRow

log = logging.getLogger("conduit.users.keys")

Clock = Callable[[], datetime]
_KEYS_LOCK = "conduit-signing-keys"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class TokenPolicy:
    """Who issues access tokens, for whom, and for how long."""

    issuer: str
    audience: str
    access_ttl_seconds: int
    # Browser sessions (RealWorld register, login, user responses); 0: as access_ttl_seconds.
    browser_ttl_seconds: int = 0
    # Verifiers' leeway plus margin: how long after a switch the previous key keeps verifying.
    clock_skew_seconds: int = 60

    @property
    def longest_ttl_seconds(self) -> int:
        """The lifetime of the longest token minted: how long a retired key must keep verifying."""
        return max(self.access_ttl_seconds, self.browser_ttl_seconds)


class Signer:
    """The key ring of this process, its JWKS, its verifier and the minting of access tokens."""

    def __init__(self, database: Database, repository: KeyRepository, kek: bytes, policy: TokenPolicy,
                 *, clock: Clock = utc_now, revoked: Callable[[Principal], Awaitable[bool]] | None = None) -> None:
        self._database = database
        self._repository = repository
        self._kek = kek
        self.policy = policy
        self._clock = clock
        self._ring = self._new_ring([])
        # The fetch is in memory: refresh on every unknown kid, re-read at least every few seconds.
        self.jwks_cache = JwksCache(self._fetch_jwks, min_refresh_interval_seconds=0.0, max_age_seconds=5.0)
        self.verifier = AccessTokenVerifier(self.jwks_cache, policy.issuer, policy.audience,
                                            clock=lambda: self._clock().timestamp(),
                                            max_lifetime_seconds=policy.longest_ttl_seconds, revoked=revoked)

    def _new_ring(self, signing_keys: Sequence[keys.SigningKey]) -> keys.KeyRing:
        return keys.KeyRing(signing_keys, access_token_ttl_seconds=self.policy.longest_ttl_seconds,
                            clock_skew_seconds=self.policy.clock_skew_seconds)

    async def _fetch_jwks(self) -> Mapping[str, Any]:
        return self._ring.jwks(self._clock())

    def _ring_from(self, rows: Sequence[SigningKeyRow]) -> keys.KeyRing:
        return self._new_ring([keys.SigningKey(
            kid=row.kid, private_key=keys.decrypt_private_key(row.private_key_blob, self._kek, kid=row.kid),
            created_at=row.created_at, activates_at=row.activates_at, retire_after=row.retire_after)
            for row in rows])

    def _row(self, key: keys.SigningKey) -> SigningKeyRow:
        return SigningKeyRow(kid=key.kid, private_key_blob=keys.encrypt_private_key(key, self._kek),
                             created_at=key.created_at, activates_at=key.activates_at,
                             retire_after=key.retire_after)

    @staticmethod
    def _can_sign(ring: keys.KeyRing, now: datetime) -> bool:
        try:
            ring.current(now)
        except LookupError:
            return False
        return True

    async def reload(self, *, create_if_missing: bool = True) -> None:
        """Re-read the keys from PostgreSQL; create the first key when none can sign."""
        async with self._database.read() as session:
            ring = self._ring_from(await self._repository.all(session))
        now = self._clock()
        if create_if_missing and not self._can_sign(ring, now):
            ring = await self._ensure_signer()
        ring.retire_expired(now)
        self._ring = ring
        await self.jwks_cache.refresh()

    async def _ensure_signer(self) -> keys.KeyRing:
        # Under the lock, so replicas starting together create one key, not one each.
        async with self._database.transaction() as session:
            await lock(session, _KEYS_LOCK)
            ring = self._ring_from(await self._repository.all(session))
            now = self._clock()
            if not self._can_sign(ring, now):
                rotation = ring.rotate(now)
                await self._repository.save(session, [self._row(rotation.new_key), *map(
                    self._row, rotation.scheduled)])
                log.info("created signing key", extra={"kid": rotation.new_key.kid})
        return ring

    async def rotate(self, *, publish_ahead_seconds: float = 0.0, now: datetime | None = None
                     ) -> keys.Rotation:
        """Add a new signing key; older keys keep verifying until their last token has expired."""
        async with self._database.transaction() as session:
            await lock(session, _KEYS_LOCK)
            ring = self._ring_from(await self._repository.all(session))
            at = now or self._clock()
            rotation = ring.rotate(at, publish_ahead_seconds=publish_ahead_seconds)
            await self._repository.save(session, [self._row(rotation.new_key), *map(
                self._row, rotation.scheduled)])
            await self._repository.delete_retired(session, at)
        log.info("rotated signing keys", extra={"kid": rotation.new_key.kid,
                                                "activates_at": rotation.new_key.activates_at.isoformat()})
        await self.reload()
        return rotation

    async def retire_expired(self, *, now: datetime | None = None) -> int:
        """Delete keys past their retirement (they already stopped verifying); returns how many."""
        async with self._database.transaction() as session:
            await lock(session, _KEYS_LOCK)
            count = await self._repository.delete_retired(session, now or self._clock())
        await self.reload()
        return count

    def signing_keys(self) -> tuple[keys.SigningKey, ...]:
        """Every key in the ring, by activation."""
        return self._ring.keys()

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """Every published key: the current one, older ones not yet retired, newer ones ahead of use."""
        return self._ring.jwks(self._clock())

    def mint_for_user(self, user_id: int, username: str, roles: Sequence[str], *, browser: bool = False
                      ) -> tuple[str, datetime]:
        """A user's access token: short (SDK sessions, with refresh), or a browser session's."""
        ttl = self.policy.browser_ttl_seconds if browser and self.policy.browser_ttl_seconds else \
            self.policy.access_ttl_seconds
        return keys.mint_access_token(
            self._ring, subject=user_subject(user_id), user_id=user_id, username=username, roles=roles,
            scopes=(), issuer=self.policy.issuer, audience=self.policy.audience, ttl_seconds=ttl,
            now=self._clock())

    def mint_for_service(self, client_id: str, scopes: Sequence[str]) -> tuple[str, datetime]:
        return keys.mint_access_token(
            self._ring, subject=service_subject(client_id), user_id=None, username=None, roles=(),
            scopes=scopes, issuer=self.policy.issuer, audience=self.policy.audience,
            ttl_seconds=self.policy.access_ttl_seconds, now=self._clock())

    async def run(self, interval_seconds: float) -> None:
        """Reload every `interval_seconds` until cancelled; a failed reload keeps the current keys."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await self.reload()
            except Exception as error:  # noqa: BLE001 - PostgreSQL away: keep signing with what we have
                log.warning("signing key reload failed: %s", type(error).__name__)


__all__ = ["Clock", "Signer", "TokenPolicy", "utc_now"]
