"""Every query of the users tables. Callers pass the session of their unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from conduit_server.users.repository.models import (
    EMAIL_UNIQUE,
    USERNAME_UNIQUE,
    Follow,
    RefreshToken,
    ServiceAccount,
    SigningKeyRow,
    User,
    UserRole,
)


async def lock(session: AsyncSession, name: str) -> None:
    """A transaction-scoped advisory lock serialising one kind of change across replicas."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(current_schema() || :name))"),
                          {"name": name})


class Taken(Exception):
    """An insert or update hit the unique email or username of another account."""

    def __init__(self, fields: set[str]) -> None:
        super().__init__(", ".join(sorted(fields)))
        self.fields = fields


def _taken(error: IntegrityError) -> Taken | None:
    """The Taken error a unique violation stands for; None for any other integrity error."""
    cause = error.orig.__cause__ if error.orig is not None else None
    name = getattr(cause, "constraint_name", None) or str(error.orig)
    fields = {field for field, constraint in (("email", EMAIL_UNIQUE), ("username", USERNAME_UNIQUE))
              if constraint in name}
    return Taken(fields) if fields else None


class UserRepository:
    async def add(self, session: AsyncSession, *, email: str, username: str, password_hash: str) -> User:
        """Insert a user; raises Taken on a taken email or username."""
        user = User(email=email, username=username, password_hash=password_hash, bio="", image="")
        session.add(user)
        try:
            await session.flush()
        except IntegrityError as error:
            raise _taken(error) or error from None
        return user

    async def by_id(self, session: AsyncSession, user_id: int) -> User | None:
        return await session.get(User, user_id)

    async def by_email(self, session: AsyncSession, email: str) -> User | None:
        return await session.scalar(select(User).where(User.email == email))

    async def by_username(self, session: AsyncSession, username: str) -> User | None:
        return await session.scalar(select(User).where(func.lower(User.username) == username.lower()))

    async def taken(self, session: AsyncSession, *, email: str | None, username: str | None,
                    exclude_id: int | None = None) -> set[str]:
        """Which of the given email / username another account already holds."""
        conditions = []
        if email is not None:
            conditions.append(User.email == email)
        if username is not None:
            conditions.append(func.lower(User.username) == username.lower())
        if not conditions:
            return set()
        query = select(User.email, User.username).where(conditions[0] if len(conditions) == 1
                                                         else conditions[0] | conditions[1])
        if exclude_id is not None:
            query = query.where(User.id != exclude_id)
        fields: set[str] = set()
        for row in await session.execute(query):
            if email is not None and row.email == email:
                fields.add("email")
            if username is not None and row.username.lower() == username.lower():
                fields.add("username")
        return fields

    async def update(self, session: AsyncSession, user_id: int, values: Mapping[str, Any]) -> User | None:
        """Change the given columns; raises Taken on a taken email or username."""
        try:
            await session.execute(update(User).where(User.id == user_id)
                                  .values(**values, updated_at=func.now()))
        except IntegrityError as error:
            raise _taken(error) or error from None
        return await session.get(User, user_id, populate_existing=True)

    async def replace_password_hash(self, session: AsyncSession, user_id: int, old: str, new: str) -> bool:
        """Store a re-hash unless the password changed meanwhile (compare and set)."""
        result = await session.execute(update(User).where(User.id == user_id, User.password_hash == old)
                                       .values(password_hash=new).returning(User.id))
        return result.first() is not None

    async def profiles(self, session: AsyncSession, user_ids: Iterable[int]) -> list[User]:
        return list(await session.scalars(select(User).where(User.id.in_(list(user_ids)))))

    async def ids_by_username(self, session: AsyncSession, usernames: Sequence[str]) -> list[tuple[str, int]]:
        """(stored username, id) of every account whose name matches one given, case-insensitively."""
        lowered = sorted({name.lower() for name in usernames})
        rows = await session.execute(select(User.username, User.id)
                                     .where(func.lower(User.username).in_(lowered)))
        return [(row.username, row.id) for row in rows]

    async def roles(self, session: AsyncSession, user_id: int) -> list[str]:
        return list(await session.scalars(select(UserRole.role).where(UserRole.user_id == user_id)))

    async def add_role(self, session: AsyncSession, user_id: int, role: str) -> bool:
        result = await session.execute(insert(UserRole).values(user_id=user_id, role=role)
                                       .on_conflict_do_nothing().returning(UserRole.user_id))
        return result.first() is not None

    async def remove_role(self, session: AsyncSession, user_id: int, role: str) -> bool:
        result = await session.execute(delete(UserRole).where(UserRole.user_id == user_id,
                                                              UserRole.role == role)
                                       .returning(UserRole.user_id))
        return result.first() is not None

    async def count_role_holders(self, session: AsyncSession, role: str) -> int:
        count = await session.scalar(select(func.count()).select_from(UserRole).where(UserRole.role == role))
        return int(count or 0)

    async def follow(self, session: AsyncSession, follower_id: int, followee_id: int) -> bool:
        """Create the follow; False when it already existed."""
        result = await session.execute(insert(Follow).values(follower_id=follower_id, followee_id=followee_id)
                                       .on_conflict_do_nothing().returning(Follow.follower_id))
        return result.first() is not None

    async def unfollow(self, session: AsyncSession, follower_id: int, followee_id: int) -> bool:
        """Remove the follow; False when there was none."""
        result = await session.execute(delete(Follow).where(Follow.follower_id == follower_id,
                                                            Follow.followee_id == followee_id)
                                       .returning(Follow.follower_id))
        return result.first() is not None

    async def following_among(self, session: AsyncSession, follower_id: int, user_ids: Iterable[int]
                              ) -> set[int]:
        """Which of `user_ids` the follower follows, in one query."""
        rows = await session.scalars(select(Follow.followee_id).where(
            Follow.follower_id == follower_id, Follow.followee_id.in_(list(user_ids))))
        return set(rows)

    async def followee_ids(self, session: AsyncSession, follower_id: int) -> list[int]:
        rows = await session.scalars(select(Follow.followee_id).where(Follow.follower_id == follower_id)
                                     .order_by(Follow.followee_id))
        return list(rows)


class KeyRepository:
    async def all(self, session: AsyncSession) -> list[SigningKeyRow]:
        return list(await session.scalars(select(SigningKeyRow).order_by(SigningKeyRow.activates_at)))

    async def save(self, session: AsyncSession, rows: Sequence[SigningKeyRow]) -> None:
        """Insert new keys and update the schedule of existing ones."""
        for row in rows:
            statement = insert(SigningKeyRow).values(
                kid=row.kid, private_key_blob=row.private_key_blob, created_at=row.created_at,
                activates_at=row.activates_at, retire_after=row.retire_after)
            await session.execute(statement.on_conflict_do_update(
                index_elements=[SigningKeyRow.kid], set_={"retire_after": statement.excluded.retire_after}))

    async def delete_retired(self, session: AsyncSession, now: datetime) -> int:
        result = await session.execute(delete(SigningKeyRow).where(SigningKeyRow.retire_after <= now)
                                       .returning(SigningKeyRow.kid))
        return len(result.all())


class RefreshTokenRepository:
    async def add(self, session: AsyncSession, *, token_hash: str, family_id: uuid.UUID, user_id: int,
                  parent_id: int | None, expires_at: datetime) -> None:
        session.add(RefreshToken(token_hash=token_hash, family_id=family_id, user_id=user_id,
                                 parent_id=parent_id, expires_at=expires_at))
        await session.flush()

    async def by_hash_for_update(self, session: AsyncSession, token_hash: str) -> RefreshToken | None:
        """The token row, locked: concurrent uses of one token are serialised."""
        return await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash)
                                    .with_for_update())

    async def by_hash(self, session: AsyncSession, token_hash: str) -> RefreshToken | None:
        return await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))

    async def mark_used(self, session: AsyncSession, token_id: int, now: datetime) -> None:
        await session.execute(update(RefreshToken).where(RefreshToken.id == token_id).values(used_at=now))

    async def revoke_family(self, session: AsyncSession, family_id: uuid.UUID, now: datetime) -> int:
        result = await session.execute(update(RefreshToken).where(
            RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now).returning(RefreshToken.id))
        return len(result.all())

    async def revoke_user(self, session: AsyncSession, user_id: int, now: datetime) -> int:
        result = await session.execute(update(RefreshToken).where(
            RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now).returning(RefreshToken.id))
        return len(result.all())


class ServiceAccountRepository:
    async def add(self, session: AsyncSession, *, client_id: str, name: str, secret_hash: str,
                  scopes: Sequence[str]) -> ServiceAccount:
        account = ServiceAccount(client_id=client_id, name=name, secret_hash=secret_hash, scopes=list(scopes))
        session.add(account)
        await session.flush()
        return account

    async def by_client_id(self, session: AsyncSession, client_id: str) -> ServiceAccount | None:
        return await session.scalar(select(ServiceAccount).where(ServiceAccount.client_id == client_id))

    async def all(self, session: AsyncSession) -> list[ServiceAccount]:
        return list(await session.scalars(select(ServiceAccount).order_by(ServiceAccount.id)))

    async def revoke(self, session: AsyncSession, client_id: str, now: datetime) -> bool:
        """Revoke the account; False when no such client id exists."""
        account = await self.by_client_id(session, client_id)
        if account is None:
            return False
        if account.revoked_at is None:
            account.revoked_at = now
            await session.flush()
        return True


__all__ = [
    "KeyRepository", "RefreshTokenRepository", "ServiceAccountRepository", "Taken",
    "UserRepository", "lock",
]
