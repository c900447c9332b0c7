"""The users service: wiring of its parts, migrations, signing keys and the outbox relay on start."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import redis.asyncio as aioredis

from conduit.users.v1 import users_pb2, users_pb2_grpc
from conduit_server.runtime import migrations, outbox
from conduit_server.runtime.db import Database
from conduit_server.runtime.ratelimit import Limit, RateLimiter, WriteLimit
from conduit_server.runtime.resources import Resources
from conduit_server.runtime.revocations import Revocations, revocations_prefix
from conduit_server.runtime.server import Binding
from conduit_server.runtime.settings import Settings
from conduit_server.runtime.tasks import BackgroundTasks
from conduit_server.runtime.tokens import AccessTokenVerifier
from conduit_server.users import api
from conduit_server.users.client.cache import DirectoryCache, directory_prefix
from conduit_server.users.domain.accounts import Accounts, Directory, Profiles, RateLimits
from conduit_server.users.domain.admin import Roles, ServiceAccounts
from conduit_server.users.domain.keys import derive_kek
from conduit_server.users.domain.oauth import ClientCredentials
from conduit_server.users.domain.oidc import OidcLogin
from conduit_server.users.domain.passwords import PasswordHasher
from conduit_server.users.domain.sessions import Sessions
from conduit_server.users.domain.signer import Clock, Signer, TokenPolicy, utc_now
from conduit_server.users.events import EventRepository
from conduit_server.users.repository import (
    KeyRepository,
    RefreshTokenRepository,
    ServiceAccountRepository,
    UserRepository,
    models,
)
from conduit_server.users.repository.oidc import IdentityRepository, PendingLogins, ProviderClient

MIGRATIONS = Path(__file__).parent / "migrations"


def signer_for(settings: Settings, database: Database, *, clock: Clock = utc_now,
               revocations: Revocations | None = None) -> Signer:
    """The key ring of `database`'s schema, its keys encrypted under the settings' KEK."""
    policy = TokenPolicy(settings.jwt_issuer, settings.jwt_audience, settings.access_token_ttl_seconds,
                         browser_ttl_seconds=settings.browser_session_ttl_seconds)
    kek = derive_kek(settings.key_encryption_key.get_secret_value())
    return Signer(database, KeyRepository(), kek, policy, clock=clock,
                  revoked=revocations.is_revoked if revocations is not None else None)


def revocations_for(settings: Settings, redis: aioredis.Redis, schema: str) -> Revocations:
    """Where the users service on `schema` records revocations, kept as long as the longest token."""
    return Revocations(redis, prefix=revocations_prefix(schema),
                       ttl_seconds=max(settings.browser_session_ttl_seconds, settings.access_token_ttl_seconds) + 60)


def admin_for(database: Database, revocations: Revocations | None = None) -> tuple[Roles, ServiceAccounts]:
    """The administration parts alone (the operator CLI needs nothing else)."""
    return (Roles(database, UserRepository(), EventRepository(), revocations=revocations),
            ServiceAccounts(database, ServiceAccountRepository()))


class UsersApp:
    name = "users"

    def __init__(self, settings: Settings, database: Database, redis: aioredis.Redis, *,
                 hasher: PasswordHasher | None = None, rate_limits: RateLimits | None = None,
                 stream: str | None = None, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.database = database
        self.redis = redis
        self.revocations = revocations_for(settings, redis, database.schema)
        self.signer = signer_for(settings, database, clock=clock, revocations=self.revocations)
        self.hasher = hasher or PasswordHasher()
        # Keys carry the schema, so two services (or test apps) can share one Redis.
        prefix = f"conduit:{database.schema}"
        self.limiter = RateLimiter(redis, prefix=f"{prefix}:ratelimit")
        self.writes = WriteLimit.per_minute(self.limiter, settings.writes_per_user_per_minute)
        self.cache = DirectoryCache(redis, prefix=directory_prefix(database.schema),
                                    ttl_seconds=settings.cache.directory_ttl_seconds)
        users, events, refresh_tokens = UserRepository(), EventRepository(), RefreshTokenRepository()
        self.accounts = Accounts(database, users=users, events=events, refresh_tokens=refresh_tokens,
                                 hasher=self.hasher, signer=self.signer, limiter=self.limiter,
                                 cache=self.cache, limits=rate_limits, clock=clock, revocations=self.revocations,
                                 writes=self.writes)
        self.profiles = Profiles(database, users, events, self.cache, writes=self.writes)
        self.directory = Directory(database, users, self.cache)
        self.sessions = Sessions(database, self.accounts, users, refresh_tokens,
                                 refresh_ttl_seconds=settings.refresh_token_ttl_seconds, clock=clock)
        self.client_credentials = ClientCredentials(database, ServiceAccountRepository(), self.signer)
        oidc = settings.oidc
        self.oidc_provider = ProviderClient(
            issuer=oidc.issuer, client_id=oidc.client_id, client_secret=oidc.client_secret.get_secret_value(),
            timeout_seconds=oidc.http_timeout_seconds, metadata_ttl_seconds=oidc.metadata_ttl_seconds)
        self.oidc = OidcLogin(oidc, provider=self.oidc_provider,
                              pending=PendingLogins(redis, prefix=f"{prefix}:oidc-state"), database=database,
                              accounts=self.accounts, users=users, identities=IdentityRepository(), events=events,
                              hasher=self.hasher)
        self.roles, self.service_accounts = admin_for(database, self.revocations)
        self.relay = outbox.OutboxRelay.from_settings(settings, database, redis,
                                                      stream or outbox.stream_name("users"))
        self._key_reload_seconds = settings.signing_key_reload_seconds
        self._background = BackgroundTasks()

    @classmethod
    def from_resources(cls, resources: Resources) -> UsersApp:
        settings = resources.settings
        limits = RateLimits(
            login_per_ip=Limit("login-ip", settings.logins_per_ip_per_quarter_hour, 15 * 60),
            registration_per_ip=Limit("register-ip", settings.registrations_per_ip_per_hour, 60 * 60))
        return cls(settings, resources.database(models.SCHEMA), resources.redis, rate_limits=limits)

    @property
    def verifier(self) -> AccessTokenVerifier:
        """Verifies access tokens against this process's own key ring: no call to itself."""
        return self.signer.verifier

    def bindings(self) -> Sequence[Binding]:
        services = users_pb2.DESCRIPTOR.services_by_name
        return [
            Binding(services["UsersService"], users_pb2_grpc.add_UsersServiceServicer_to_server,
                    api.UsersApi(self.accounts)),
            Binding(services["ProfilesService"], users_pb2_grpc.add_ProfilesServiceServicer_to_server,
                    api.ProfilesApi(self.profiles)),
            Binding(services["AuthService"], users_pb2_grpc.add_AuthServiceServicer_to_server,
                    api.AuthApi(self.sessions, self.client_credentials, self.signer, self.oidc)),
            Binding(services["AdminService"], users_pb2_grpc.add_AdminServiceServicer_to_server,
                    api.AdminApi(self.roles, self.service_accounts)),
            Binding(services["UserDirectoryService"],
                    users_pb2_grpc.add_UserDirectoryServiceServicer_to_server,
                    api.DirectoryApi(self.directory)),
        ]

    async def start(self) -> None:
        await migrations.upgrade(self.database, MIGRATIONS, models.Base.metadata)
        await self.signer.reload()  # creates the first signing key on a fresh database
        self._background.start("outbox-relay-users", self.relay.run)
        self._background.start("signing-key-reload",
                               lambda: self.signer.run(self._key_reload_seconds))

    async def close(self) -> None:
        await self._background.stop()
        await self.oidc_provider.close()
        await asyncio.to_thread(self.hasher.close)
        await self.database.close()
        await self.redis.aclose()


__all__ = ["MIGRATIONS", "UsersApp", "admin_for", "signer_for"]
