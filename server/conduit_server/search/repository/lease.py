"""A Redis lease: a lock with a short time to live, renewed by a heartbeat while its holder works.

A holder that crashes stops renewing, so its lease expires within `ttl_seconds` and another
can take it; a holder that loses its lease (expired during a stall, or Redis lost it) is
cancelled and sees `LeaseLost` rather than go on beside a second holder (docs/decisions/0023).
Renewal and release are compare-and-set on the holder's token: nobody renews or deletes a lease
that is not theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis

from conduit_server.runtime.errors import FailedPrecondition
from conduit_server.runtime.tasks import cancel_until_done

log = logging.getLogger("conduit.search.lease")

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class LeaseLost(FailedPrecondition):
    """The lease expired or vanished while its holder was still working."""

    def __init__(self, key: str) -> None:
        super().__init__(f"lost the lease {key} while working", reason="LEASE_LOST")


class Lease:
    def __init__(self, redis: aioredis.Redis, key: str, *, ttl_seconds: float = 30.0, owner: str = "") -> None:
        self.redis = redis
        self.key = key
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self.token = f"{owner or 'holder'}:{uuid.uuid4().hex}"
        self.renewals = 0

    async def acquire(self) -> bool:
        return bool(await self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))

    async def renew(self) -> bool:
        renewed: Any = await self.redis.eval(_RENEW, 1, self.key, self.token, str(self.ttl_ms))
        if renewed:
            self.renewals += 1
        return bool(renewed)

    async def release(self) -> None:
        await self.redis.eval(_RELEASE, 1, self.key, self.token)

    @contextlib.asynccontextmanager
    async def held(self, busy: FailedPrecondition) -> AsyncIterator[Lease]:
        """Hold the lease around the body, renewing it every third of its TTL; `busy` is raised when
        another holder has it. The body is cancelled (and `LeaseLost` raised) if a renewal fails."""
        if not await self.acquire():
            raise busy
        body = asyncio.current_task()
        lost = asyncio.Event()

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(self.ttl_ms / 3000)
                try:
                    renewed = await self.renew()
                except Exception as error:  # noqa: BLE001 - Redis away: retried on the next beat
                    log.warning("renewing %s failed: %r", self.key, error)
                    continue
                if not renewed:
                    log.error("lease %s expired while held: cancelling its holder", self.key)
                    lost.set()
                    if body is not None:
                        body.cancel()
                    return

        beating = asyncio.create_task(heartbeat(), name=f"lease-heartbeat-{self.key}")
        try:
            yield self
        except asyncio.CancelledError:
            if lost.is_set() and body is not None:
                body.uncancel()  # our own cancellation, turned into an error
                raise LeaseLost(self.key) from None
            raise
        finally:
            await cancel_until_done(beating)  # renew() may swallow one cancellation: it is repeated
            with contextlib.suppress(Exception):  # an expired lease needs no release; Redis away: it expires
                await self.release()
