"""The realtime service: one reader per process, fanned out to every open watch stream."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import redis.asyncio as aioredis

from conduit_server.realtime import api
from conduit_server.realtime.domain.enrich import Preparer
from conduit_server.realtime.domain.follows import FollowGraph
from conduit_server.realtime.domain.hub import Counters, Hub
from conduit_server.realtime.domain.streams import Streams, unavailable
from conduit_server.realtime.repository.profiles import Directory, ProfileCache, UsersDirectory
from conduit_server.runtime.resources import Resources
from conduit_server.runtime.server import Binding
from conduit_server.runtime.settings import RealtimeSettings

log = logging.getLogger("conduit.realtime")


class RealtimeApp:
    """Owns nothing durable. It owns the Redis client it is given; the directory's channel (the
    users channel) belongs to the caller, as it is shared with the token verifier."""

    name = "realtime"

    def __init__(self, redis: aioredis.Redis, directory: Directory,
                 config: RealtimeSettings | None = None) -> None:
        self.config = config or RealtimeSettings()
        self.redis = redis
        self.directory = directory
        profiles = ProfileCache(directory, ttl_seconds=self.config.profile_ttl_seconds,
                                max_entries=self.config.profile_cache_size)
        self.hub = Hub(redis, Preparer(profiles), profiles, FollowGraph(directory), self.config)
        self.streams = Streams(self.hub, self.config)

    @classmethod
    def from_resources(cls, resources: Resources, config: RealtimeSettings | None = None) -> RealtimeApp:
        """Reads `conduit:events:articles` and `conduit:events:users` from `resources.redis`; profiles
        and followees come from the users service over `resources.users_channel`."""
        config = config or resources.settings.realtime
        directory = UsersDirectory(resources.users_channel,
                                   timeout_seconds=resources.settings.internal_call_timeout_seconds)
        return cls(resources.redis, directory, config)

    def bindings(self) -> Sequence[Binding]:
        return [Binding(api.SERVICE, api.register, api.RealtimeApi(self.streams))]

    async def start(self) -> None:
        self.hub.start()

    async def shutting_down(self) -> None:
        """Health is NOT_SERVING: end every stream now with UNAVAILABLE and its resume position."""
        self.hub.close_all(unavailable("this server is shutting down; reconnect to another replica",
                                       "SHUTTING_DOWN"))
        log.info("realtime streams ended for shutdown", extra={"metrics": self.hub.metrics()})

    async def close(self) -> None:
        await self.hub.stop()
        await self.redis.aclose()

    def metrics(self) -> dict[str, Any]:
        """Current watchers, events delivered, slow-consumer disconnects and more (see Hub.metrics)."""
        return self.hub.metrics()

    # Which keys of `metrics()` only grow (exported as Prometheus counters).
    metric_counters = frozenset(field.name for field in fields(Counters))
