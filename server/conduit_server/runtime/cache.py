"""Cache-aside in Redis with versioned invalidation.

A cached value lives under `<namespace>:<name>:<version>`, where the version is
a random token stored under `<namespace>:v:<name>`. Readers fetch the token and
the value in one round trip (a Lua script); writers invalidate *after* their
transaction commits by writing a fresh token. A reader that loaded from the
database before the commit can then only store its stale value under the old,
dead version, so the classic cache-aside race (read old row, writer deletes
key, reader sets old row) cannot resurrect stale data. Every value also
carries a short TTL as a safety net, and version tokens outlive values by far
(an expired token reads as "0", and a value under "0" is older than any TTL).

Redis failures never fail a request: reads fall through to the loader, and a
failed invalidation is logged (the TTL then bounds the staleness).
"""

from __future__ import annotations

import logging
import secrets
import struct
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import redis.asyncio as aioredis
from google.protobuf.message import Message
from redis.exceptions import RedisError

from conduit_server.runtime import metrics

log = logging.getLogger("conduit.cache")

T = TypeVar("T")
M = TypeVar("M", bound=Message)

UNVERSIONED = "0"
# Version tokens must outlive every value stored under them (see the module docstring).
VERSION_TTL_SECONDS = 86_400

# KEYS[1]: version key. ARGV[1]: value key prefix. Returns {version, value or false}.
_READ = """
local version = redis.call('GET', KEYS[1]) or ARGV[2]
return {version, redis.call('GET', ARGV[1] .. version)}
"""


@dataclass(frozen=True)
class Lookup:
    """The result of a read: the version it saw (to store under on a miss) and the value, if any."""

    version: str
    value: bytes | None


class Cache:
    """A namespace of versioned cache entries. Values are bytes; encoding is the caller's."""

    def __init__(self, redis: aioredis.Redis, namespace: str, *, default_ttl_seconds: float = 60.0) -> None:
        self._redis = redis
        self._namespace = namespace
        self._default_ttl = default_ttl_seconds
        self._read = redis.register_script(_READ)
        self.hits = 0
        self.misses = 0
        self.errors = 0
        metrics.track_cache(namespace, self)

    def _version_key(self, name: str) -> str:
        return f"{self._namespace}:v:{name}"

    def _value_prefix(self, name: str) -> str:
        return f"{self._namespace}:{name}:"

    async def lookup(self, name: str) -> Lookup | None:
        """The current version and value of `name`; None when Redis is unreachable."""
        try:
            version, value = await self._read(keys=[self._version_key(name)],
                                              args=[self._value_prefix(name), UNVERSIONED])
        except RedisError as error:
            self.errors += 1
            log.warning("cache read failed: %s", error)
            return None
        version = version.decode() if isinstance(version, bytes) else str(version)
        if value is None:
            self.misses += 1
            return Lookup(version, None)
        self.hits += 1
        return Lookup(version, bytes(value))

    async def store(self, name: str, version: str, value: bytes, ttl_seconds: float | None = None) -> None:
        """Store `value` under the version seen by `lookup` (a dead version makes this harmless)."""
        ttl_ms = int((ttl_seconds or self._default_ttl) * 1000)
        try:
            await self._redis.set(self._value_prefix(name) + version, value, px=ttl_ms)
        except RedisError as error:
            self.errors += 1
            log.warning("cache write failed: %s", error)

    async def get_or_load(self, name: str, load: Callable[[], Awaitable[T | None]],
                          encode: Callable[[T], bytes], decode: Callable[[bytes], T],
                          ttl_seconds: float | None = None) -> T | None:
        """Cache-aside: the cached value, else `load()` stored for next time (None is not cached)."""
        found = await self.lookup(name)
        if found is not None and found.value is not None:
            return decode(found.value)
        loaded = await load()
        if loaded is not None and found is not None:
            await self.store(name, found.version, encode(loaded), ttl_seconds)
        return loaded

    async def invalidate(self, names: Iterable[str]) -> None:
        """Make every current value of `names` unreachable. Call after the write has committed."""
        unique = sorted(set(names))
        if not unique:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in unique:
                    pipe.set(self._version_key(name), secrets.token_hex(8), ex=VERSION_TTL_SECONDS)
                await pipe.execute()
        except RedisError as error:
            self.errors += 1
            log.error("cache invalidation failed, stale for up to the TTL: %s", error)


_LENGTH = struct.Struct(">I")


def pack_messages(messages: Sequence[Message], header: int = 0) -> bytes:
    """Length-prefixed protobuf messages after a 32-bit header (say, a total count)."""
    parts = [_LENGTH.pack(header)]
    for message in messages:
        data = message.SerializeToString()
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def unpack_messages(data: bytes, kind: type[M]) -> tuple[int, list[M]]:
    """The header and messages written by `pack_messages`."""
    (header,) = _LENGTH.unpack_from(data, 0)
    offset = _LENGTH.size
    messages: list[M] = []
    while offset < len(data):
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        messages.append(kind.FromString(data[offset:offset + length]))
        offset += length
    return header, messages


__all__ = ["UNVERSIONED", "VERSION_TTL_SECONDS", "Cache", "Lookup", "pack_messages", "unpack_messages"]
