"""What a service process shares between its parts: settings, PostgreSQL, Redis, peer channels."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import redis.asyncio as aioredis

from conduit_server.runtime.db import Database
from conduit_server.runtime.settings import Settings


@dataclass
class Resources:
    """Created once per process by `serve`; apps take what they need in `from_resources`."""

    settings: Settings
    database_url: str
    redis: aioredis.Redis
    # A channel to the users service carrying the internal token (JWKS, profile look-ups).
    users_channel: grpc.aio.Channel

    def database(self, schema: str) -> Database:
        return Database.from_settings(self.settings, self.database_url, schema)
