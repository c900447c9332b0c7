"""The rules of accounts, profiles, follows and the directory. No protobuf here.

Each public method is one unit of work: it opens the transaction (or read
session) it needs and commits once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from conduit_server.runtime.db import Database
from conduit_server.runtime.errors import (
    AlreadyExists,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unauthenticated,
)
from conduit_server.runtime.ratelimit import Limit, RateLimiter, WriteLimit
from conduit_server.runtime.revocations import Revocations
from conduit_server.users.client.cache import DirectoryCache
from conduit_server.users.domain.passwords import PasswordHasher
from conduit_server.users.domain.signer import Clock, Signer, utc_now
from conduit_server.users.events import EventRepository
from conduit_server.users.repository import RefreshTokenRepository, Taken, UserRepository
from conduit_server.users.repository.models import User

IMPLICIT_ROLE = "user"
TAKEN = "has already been taken"


@dataclass(frozen=True)
class Account:
    """An account as its owner sees it; `roles` sorted and always including `user`."""

    id: int
    email: str
    username: str
    bio: str
    image: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class SignedIn:
    account: Account
    access_token: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True)
class Profile:
    user_id: int
    username: str
    bio: str
    image: str
    following: bool


@dataclass(frozen=True)
class Changes:
    """An account update; None leaves a field unchanged."""

    email: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    bio: str | None = None
    image: str | None = None


LOGIN_PER_ACCOUNT_AND_IP = Limit("login-account-ip", 10, 15 * 60)
LOGIN_PER_ACCOUNT = Limit("login-account", 50, 15 * 60)
LOGIN_PER_IP = Limit("login-ip", 100, 15 * 60)
REGISTRATION_PER_IP = Limit("register-ip", 20, 60 * 60)


@dataclass(frozen=True)
class RateLimits:
    """Login and registration limits (attempts; a successful login is not counted).

    A guesser at one place meets the account-and-IP limit; the account-wide one is
    higher, so an attacker elsewhere cannot quickly lock the owner's devices out.
    """

    login_per_account_and_ip: Limit = LOGIN_PER_ACCOUNT_AND_IP
    login_per_account: Limit = LOGIN_PER_ACCOUNT
    login_per_ip: Limit = LOGIN_PER_IP
    registration_per_ip: Limit = REGISTRATION_PER_IP


def normalise_email(email: str) -> str:
    return email.strip().lower()


def roles_of(explicit: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted({IMPLICIT_ROLE, *explicit}))


def account_of(user: User, roles: Sequence[str]) -> Account:
    return Account(user.id, user.email, user.username, user.bio, user.image, roles_of(roles))


def taken(fields: set[str]) -> AlreadyExists:
    return AlreadyExists([FieldViolation(f"user.{name}", TAKEN) for name in sorted(fields)],
                         reason="ACCOUNT_TAKEN")


def invalid_credentials() -> Unauthenticated:
    # One message for unknown email and wrong password: no account enumeration.
    return Unauthenticated("email or password is invalid", reason="INVALID_CREDENTIALS")


def account_gone() -> Unauthenticated:
    return Unauthenticated("the account of this token no longer exists", reason="ACCOUNT_NOT_FOUND")


class Accounts:
    """Registration, login and the caller's own account."""

    def __init__(self, database: Database, *, users: UserRepository, events: EventRepository,
                 refresh_tokens: RefreshTokenRepository, hasher: PasswordHasher, signer: Signer,
                 limiter: RateLimiter, cache: DirectoryCache, limits: RateLimits | None = None,
                 clock: Clock = utc_now, revocations: Revocations | None = None,
                 writes: WriteLimit) -> None:
        self._database = database
        self._writes = writes
        self._users = users
        self._events = events
        self._refresh_tokens = refresh_tokens
        self._hasher = hasher
        self._signer = signer
        self._limiter = limiter
        self._cache = cache
        self.limits = limits or RateLimits()
        self._clock = clock
        self._revocations = revocations

    def sign_in(self, account: Account, *, browser: bool = True) -> SignedIn:
        """A fresh access token carrying the account's current roles: a browser session's (what
        RealWorld's user responses carry), or a short one (`browser=False`: SDK sessions)."""
        token, expires_at = self._signer.mint_for_user(account.id, account.username, account.roles,
                                                       browser=browser)
        return SignedIn(account, token, expires_at)

    async def sign_out_everywhere(self, user_id: int) -> None:
        """End every session of the user: refresh tokens revoked, access tokens void everywhere."""
        async with self._database.transaction() as session:
            await self._refresh_tokens.revoke_user(session, user_id, self._clock())
        if self._revocations is not None:
            await self._revocations.revoke_all(user_id)

    async def register(self, *, username: str, email: str, password: str, client_ip: str) -> SignedIn:
        await self._limiter.acquire([(self.limits.registration_per_ip, client_ip)],
                                    message="too many registrations; try again later")
        email = normalise_email(email)
        async with self._database.read() as session:
            conflicts = await self._users.taken(session, email=email, username=username)
        if conflicts:  # both fields at once; the unique indexes still decide races below
            raise taken(conflicts)
        password_hash = await self._hasher.hash(password)
        try:
            async with self._database.transaction() as session:
                user = await self._users.add(session, email=email, username=username,
                                             password_hash=password_hash)
                account = account_of(user, ())
                await self._events.user_created(session, user.id, user.username)
        except Taken as error:
            raise taken(error.fields) from None
        return self.sign_in(account)

    async def authenticate(self, *, email: str, password: str, client_ip: str) -> Account:
        """The account whose credentials these are; rate limited per account, per IP and both."""
        email = normalise_email(email)
        limits = self.limits
        attempt = await self._limiter.acquire(
            [(limits.login_per_account_and_ip, f"{email}|{client_ip}"), (limits.login_per_account, email),
             (limits.login_per_ip, client_ip)], message="too many login attempts; try again later")
        async with self._database.read() as session:
            user = await self._users.by_email(session, email)
            roles = await self._users.roles(session, user.id) if user is not None else []
        if user is None:
            await self._hasher.verify_dummy(password)  # as slow as a wrong password
            raise invalid_credentials()
        valid, new_hash = await self._hasher.verify_and_rehash(user.password_hash, password)
        if not valid:
            raise invalid_credentials()
        await self._limiter.release(attempt)  # a successful login does not count
        if new_hash is not None:
            async with self._database.transaction() as session:
                await self._users.replace_password_hash(session, user.id, user.password_hash, new_hash)
        return account_of(user, roles)

    async def login(self, *, email: str, password: str, client_ip: str) -> SignedIn:
        return self.sign_in(await self.authenticate(email=email, password=password, client_ip=client_ip))

    async def account(self, user_id: int) -> Account:
        async with self._database.read() as session:
            user = await self._users.by_id(session, user_id)
            if user is None:
                raise account_gone()
            return account_of(user, await self._users.roles(session, user_id))

    async def current(self, user_id: int) -> SignedIn:
        return self.sign_in(await self.account(user_id))

    async def update(self, user_id: int, changes: Changes) -> SignedIn:
        await self._writes.check(user_id)
        values: dict[str, str] = {}
        if changes.email is not None:
            values["email"] = normalise_email(changes.email)
        if changes.username is not None:
            values["username"] = changes.username
        if changes.bio is not None:
            values["bio"] = changes.bio
        if changes.image is not None:
            values["image"] = changes.image
        if "email" in values or "username" in values:
            async with self._database.read() as session:
                conflicts = await self._users.taken(session, email=values.get("email"),
                                                    username=values.get("username"), exclude_id=user_id)
            if conflicts:
                raise taken(conflicts)
        if changes.password is not None:
            values["password_hash"] = await self._hasher.hash(changes.password)
        try:
            async with self._database.transaction() as session:
                user = (await self._users.update(session, user_id, values) if values
                        else await self._users.by_id(session, user_id))
                if user is None:
                    raise account_gone()
                account = account_of(user, await self._users.roles(session, user_id))
                if changes.password is not None:
                    # A new password ends every other session.
                    await self._refresh_tokens.revoke_user(session, user_id, self._clock())
                if values.keys() - {"password_hash"}:
                    await self._events.user_updated(session, user_id, user.username)
        except Taken as error:
            raise taken(error.fields) from None
        await self._cache.invalidate(profiles=[user_id])
        if changes.password is not None and self._revocations is not None:
            # A new password ends every session: older access tokens are void; the one returned is not.
            await self._revocations.revoke_all(user_id)
        return self.sign_in(account)


def profile_of(user: User, following: bool) -> Profile:
    return Profile(user.id, user.username, user.bio, user.image, following)


def profile_not_found(username: str) -> NotFound:
    return NotFound(f"profile {username!r} not found", reason="PROFILE_NOT_FOUND")


class Profiles:
    """RealWorld profiles and follows, `following` as seen by the viewer."""

    def __init__(self, database: Database, users: UserRepository, events: EventRepository,
                 cache: DirectoryCache, *, writes: WriteLimit) -> None:
        self._database = database
        self._users = users
        self._events = events
        self._cache = cache
        self._writes = writes

    async def get(self, username: str, viewer_id: int | None) -> Profile:
        async with self._database.read() as session:
            user = await self._users.by_username(session, username)
            if user is None:
                raise profile_not_found(username)
            following = (viewer_id is not None
                         and user.id in await self._users.following_among(session, viewer_id, [user.id]))
            return profile_of(user, following)

    async def follow(self, viewer_id: int, username: str) -> Profile:
        await self._writes.check(viewer_id)
        async with self._database.transaction() as session:
            user = await self._users.by_username(session, username)
            if user is None:
                raise profile_not_found(username)
            if user.id == viewer_id:
                raise InvalidArgument([FieldViolation("username", "cannot follow yourself")],
                                      reason="SELF_FOLLOW")
            created = await self._users.follow(session, viewer_id, user.id)
            if created:
                await self._events.follow_changed(session, viewer_id, user.id, following=True)
        if created:
            await self._cache.invalidate(followees=[viewer_id])
        return profile_of(user, True)

    async def unfollow(self, viewer_id: int, username: str) -> Profile:
        await self._writes.check(viewer_id)
        async with self._database.transaction() as session:
            user = await self._users.by_username(session, username)
            if user is None:
                raise profile_not_found(username)
            removed = await self._users.unfollow(session, viewer_id, user.id)
            if removed:
                await self._events.follow_changed(session, viewer_id, user.id, following=False)
        if removed:
            await self._cache.invalidate(followees=[viewer_id])
        return profile_of(user, False)


class Directory:
    """Batch look-ups for the other services: one call serves a whole page."""

    def __init__(self, database: Database, users: UserRepository, cache: DirectoryCache) -> None:
        self._database = database
        self._users = users
        self._cache = cache

    async def profiles(self, user_ids: Sequence[int], viewer_id: int | None) -> dict[int, Profile]:
        """Profiles of the known ids among `user_ids` (unknown ids are absent)."""
        wanted = list(dict.fromkeys(user_id for user_id in user_ids if user_id > 0))
        seen = await self._cache.lookup(wanted, viewer_id)
        found, followees = seen.profiles, seen.followees
        missing = [user_id for user_id in wanted if user_id not in found]
        load_followees = viewer_id if viewer_id and followees is None else 0  # whose set to load, if any
        if missing or load_followees:
            async with self._database.read() as session:
                if missing:
                    loaded = {user.id: {"username": user.username, "bio": user.bio, "image": user.image}
                              for user in await self._users.profiles(session, missing)}
                    found.update(loaded)
                if load_followees:
                    # The whole set, cached: the next page of this viewer (here or in another service
                    # reading the directory) needs no database at all.
                    followees = await self._users.followee_ids(session, load_followees)
            await self._cache.fill(seen, profiles={user_id: found[user_id] for user_id in missing
                                                   if user_id in found},
                                   followees={load_followees: followees or []} if load_followees else None)
        following: set[int] = set(followees or ())
        return {user_id: Profile(user_id, data["username"], data["bio"], data["image"],
                                 user_id in following) for user_id, data in found.items()}

    async def resolve(self, usernames: Sequence[str]) -> dict[str, int]:
        """User ids by username as asked (matching is case-insensitive); unknown names are absent."""
        if not usernames:
            return {}
        async with self._database.read() as session:
            rows = await self._users.ids_by_username(session, usernames)
        by_lower = {name.lower(): user_id for name, user_id in rows}
        return {name: by_lower[name.lower()] for name in usernames if name.lower() in by_lower}

    async def followee_ids(self, user_id: int) -> list[int]:
        seen = await self._cache.followees(user_id)
        if seen.followees is not None:
            return seen.followees
        async with self._database.read() as session:
            followees = await self._users.followee_ids(session, user_id)
        await self._cache.fill(seen, followees={user_id: followees})
        return followees


__all__ = [
    "IMPLICIT_ROLE", "Account", "Accounts", "Changes", "Directory", "Profile", "Profiles", "RateLimits",
    "SignedIn", "normalise_email", "roles_of",
]
