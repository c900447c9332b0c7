"""Every query of the users tables (models.py) and the users' Redis counters. Callers pass the session
of their unit of work."""

from conduit_server.users.repository.users import (
    KeyRepository,
    RefreshTokenRepository,
    ServiceAccountRepository,
    Taken,
    UserRepository,
    lock,
)

__all__ = ["KeyRepository", "RefreshTokenRepository", "ServiceAccountRepository", "Taken", "UserRepository",
           "lock"]
