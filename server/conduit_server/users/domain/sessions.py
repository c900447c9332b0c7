"""Sessions with refresh tokens: opaque, hashed at rest, rotated on use; reuse revokes the family.

A family is every refresh token descended from one login. Each token is
single use: spending it marks it used and issues its child. Presenting a used
token again means it leaked (or a client raced itself): the whole family is
revoked, so whoever holds the newest token is logged out too.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from conduit_server.runtime.db import Database
from conduit_server.runtime.errors import Unauthenticated
from conduit_server.users.domain import refresh
from conduit_server.users.domain.accounts import Account, Accounts, SignedIn, account_of
from conduit_server.users.domain.signer import Clock, utc_now
from conduit_server.users.repository import RefreshTokenRepository, UserRepository

log = logging.getLogger("conduit.users.sessions")

_Outcome = Literal["ok", "unknown", "revoked", "reused", "expired", "account_gone"]
_MESSAGES: dict[_Outcome, tuple[str, str]] = {
    "unknown": ("refresh token is invalid", "REFRESH_TOKEN_INVALID"),
    "revoked": ("refresh token has been revoked", "REFRESH_TOKEN_REVOKED"),
    "reused": ("refresh token was already used; the session has been revoked", "REFRESH_TOKEN_REUSED"),
    "expired": ("refresh token has expired", "REFRESH_TOKEN_EXPIRED"),
    "account_gone": ("the account of this session no longer exists", "ACCOUNT_NOT_FOUND"),
}


@dataclass(frozen=True)
class Session:
    signed_in: SignedIn
    refresh_token: str = field(repr=False)
    refresh_expires_at: datetime


class Sessions:
    def __init__(self, database: Database, accounts: Accounts, users: UserRepository,
                 tokens: RefreshTokenRepository, *, refresh_ttl_seconds: int, clock: Clock = utc_now) -> None:
        self._database = database
        self._accounts = accounts
        self._users = users
        self._tokens = tokens
        self._ttl = timedelta(seconds=refresh_ttl_seconds)
        self._clock = clock

    async def create(self, *, email: str, password: str, client_ip: str) -> Session:
        """Log in: an access token and the first refresh token of a new family."""
        account = await self._accounts.authenticate(email=email, password=password, client_ip=client_ip)
        token, token_hash = refresh.new_refresh_token()
        expires_at = self._clock() + self._ttl
        family_id = uuid.UUID(refresh.new_family_id())
        async with self._database.transaction() as session:
            await self._tokens.add(session, token_hash=token_hash, family_id=family_id, user_id=account.id,
                                   parent_id=None, expires_at=expires_at)
        return Session(self._accounts.sign_in(account, browser=False), token, expires_at)

    async def refresh(self, presented: str) -> Session:
        """Spend a refresh token for a new pair; reuse of a spent token revokes its family."""
        if not refresh.is_well_formed_refresh_token(presented):
            raise _rejected("unknown")
        now = self._clock()
        outcome: _Outcome = "ok"
        token, token_hash = refresh.new_refresh_token()
        expires_at = now + self._ttl
        account: Account | None = None
        async with self._database.transaction() as session:
            row = await self._tokens.by_hash_for_update(session, refresh.hash_refresh_token(presented))
            if row is None:
                outcome = "unknown"
            elif row.revoked_at is not None:
                outcome = "revoked"
            elif row.used_at is not None:
                outcome = "reused"
                revoked = await self._tokens.revoke_family(session, row.family_id, now)
                log.warning("refresh token reuse: family revoked", extra={
                    "family_id": str(row.family_id), "user_id": row.user_id, "revoked": revoked})
            elif row.expires_at <= now:
                outcome = "expired"
            else:
                user = await self._users.by_id(session, row.user_id)
                if user is None:
                    outcome = "account_gone"
                else:
                    account = account_of(user, await self._users.roles(session, user.id))
                    await self._tokens.mark_used(session, row.id, now)
                    await self._tokens.add(session, token_hash=token_hash, family_id=row.family_id,
                                           user_id=row.user_id, parent_id=row.id, expires_at=expires_at)
        # Raised after the commit: a reuse must leave its family revoked.
        if account is None:
            raise _rejected(outcome)
        return Session(self._accounts.sign_in(account, browser=False), token, expires_at)

    async def revoke(self, presented: str) -> None:
        """Log out: revoke the token's family. Unknown tokens are not an error (RFC 7009 §2.2)."""
        if not refresh.is_well_formed_refresh_token(presented):
            return
        async with self._database.transaction() as session:
            row = await self._tokens.by_hash_for_update(session, refresh.hash_refresh_token(presented))
            if row is not None:
                await self._tokens.revoke_family(session, row.family_id, self._clock())

    async def revoke_all(self, user_id: int) -> None:
        """Sign out everywhere: every session of the user, browser sessions included."""
        await self._accounts.sign_out_everywhere(user_id)


def _rejected(outcome: _Outcome) -> Unauthenticated:
    message, reason = _MESSAGES.get(outcome, _MESSAGES["unknown"])
    return Unauthenticated(message, reason=reason)


__all__ = ["Session", "Sessions"]
