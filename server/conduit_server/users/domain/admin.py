"""Administration: roles of users and service accounts. Used by the admin RPCs and the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from conduit_server.runtime.db import Database
from conduit_server.runtime.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from conduit_server.runtime.revocations import Revocations
from conduit_server.users.domain import refresh
from conduit_server.users.domain.accounts import IMPLICIT_ROLE, roles_of
from conduit_server.users.domain.oauth import SCOPE_TOKEN
from conduit_server.users.domain.signer import Clock, utc_now
from conduit_server.users.events import EventRepository
from conduit_server.users.repository import ServiceAccountRepository, UserRepository, lock
from conduit_server.users.repository.models import ROLES, ServiceAccount

ADMIN_ROLE = "admin"
_ROLES_LOCK = "conduit-roles"


def user_not_found(username: str) -> NotFound:
    return NotFound(f"user {username!r} not found", reason="USER_NOT_FOUND")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidArgument([FieldViolation("role", f"must be one of {', '.join(ROLES)}")])


class Roles:
    """Roles beyond the implicit `user`: a grant reaches a user with their next token; a revocation
    voids the user's tokens at once (with `revocations`; the operator CLI has none)."""

    def __init__(self, database: Database, users: UserRepository, events: EventRepository, *,
                 revocations: Revocations | None = None) -> None:
        self._database = database
        self._users = users
        self._events = events
        self._revocations = revocations

    async def held(self, username: str) -> tuple[str, ...]:
        async with self._database.read() as session:
            user = await self._users.by_username(session, username)
            if user is None:
                raise user_not_found(username)
            return roles_of(await self._users.roles(session, user.id))

    async def grant(self, username: str, role: str) -> tuple[str, ...]:
        _check_role(role)
        async with self._database.transaction() as session:
            user = await self._users.by_username(session, username)
            if user is None:
                raise user_not_found(username)
            changed = role != IMPLICIT_ROLE and await self._users.add_role(session, user.id, role)
            roles = roles_of(await self._users.roles(session, user.id))
            if changed:
                await self._events.roles_changed(session, user.id, roles)
        return roles

    async def revoke(self, username: str, role: str) -> tuple[str, ...]:
        _check_role(role)
        if role == IMPLICIT_ROLE:
            raise InvalidArgument([FieldViolation("role", "every account holds the user role")],
                                  reason="IMPLICIT_ROLE")
        async with self._database.transaction() as session:
            await lock(session, _ROLES_LOCK)  # two admins revoking each other must not both succeed
            user = await self._users.by_username(session, username)
            if user is None:
                raise user_not_found(username)
            held = await self._users.roles(session, user.id)
            if (role == ADMIN_ROLE and ADMIN_ROLE in held
                    and await self._users.count_role_holders(session, ADMIN_ROLE) == 1):
                raise FailedPrecondition("the last admin cannot lose the admin role", reason="LAST_ADMIN")
            changed = await self._users.remove_role(session, user.id, role)
            roles = roles_of(await self._users.roles(session, user.id))
            if changed:
                await self._events.roles_changed(session, user.id, roles)
        if changed and self._revocations is not None:
            # Tokens carry roles: the ones that still name this role are void (the user signs in again).
            await self._revocations.revoke_all(user.id)
        return roles


@dataclass(frozen=True)
class ServiceAccountInfo:
    client_id: str
    name: str
    scopes: tuple[str, ...]
    revoked: bool


def _info(account: ServiceAccount) -> ServiceAccountInfo:
    return ServiceAccountInfo(account.client_id, account.name, tuple(account.scopes),
                              account.revoked_at is not None)


class ServiceAccounts:
    def __init__(self, database: Database, accounts: ServiceAccountRepository, *,
                 clock: Clock = utc_now) -> None:
        self._database = database
        self._accounts = accounts
        self._clock = clock

    async def create(self, name: str, scopes: Sequence[str]) -> tuple[ServiceAccountInfo, str]:
        """A new account and its secret, which is not stored and cannot be shown again."""
        bad = [scope for scope in scopes if not SCOPE_TOKEN.match(scope)]
        if bad:
            raise InvalidArgument([FieldViolation("scopes", "must be scope tokens without spaces or quotes")])
        secret, secret_hash = refresh.new_client_secret()
        async with self._database.transaction() as session:
            account = await self._accounts.add(session, client_id=refresh.new_client_id(), name=name,
                                               secret_hash=secret_hash, scopes=sorted(set(scopes)))
            info = _info(account)
        return info, secret

    async def all(self) -> list[ServiceAccountInfo]:
        async with self._database.read() as session:
            return [_info(account) for account in await self._accounts.all(session)]

    async def revoke(self, client_id: str) -> None:
        async with self._database.transaction() as session:
            if not await self._accounts.revoke(session, client_id, self._clock()):
                raise NotFound(f"service account {client_id!r} not found", reason="SERVICE_ACCOUNT_NOT_FOUND")


__all__ = ["ADMIN_ROLE", "Roles", "ServiceAccountInfo", "ServiceAccounts"]
