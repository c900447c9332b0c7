"""Retries of idempotent calls: a small loop, bounded by attempts and by the call's deadline.

Written out rather than delegated to gRPC's service config so that the rules
read in one place and tests can drive them: which errors retry
(`retry_delay`), and the loop that applies them (sync and async twins).
"""

# ruff: noqa: ASYNC109 - `timeout` is the gRPC deadline of the call, not a local wait

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from conduit.client._errors import ConduitError, DeadlineExceeded, from_rpc_error

T = TypeVar("T")

log = logging.getLogger("conduit.client")


@dataclass(frozen=True)
class RetryPolicy:
    """How idempotent calls are retried, and how watches back off between reconnects.

    The n-th retry waits `min(initial_backoff * multiplier**n, max_backoff)`
    seconds, less a random share of up to `jitter` of it (0.5: between half
    and all of it), so that clients do not retry in lockstep. A `RetryInfo`
    from the server replaces the computed delay. Retries stop after
    `max_attempts` attempts in all, or when the next wait would pass the
    call's deadline. The defaults ride out a service restart of several
    seconds within the default 10 s deadline.
    """

    max_attempts: int = 10
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("initial_backoff must be between 0 and max_backoff")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """The wait before retry number `retry` (0-based), jitter applied."""
        base = min(self.initial_backoff * self.multiplier ** retry, self.max_backoff)
        draw = (rng or _rng).random()
        return base * (1 - self.jitter * draw)


_rng = random.Random()  # noqa: S311 - jitter needs no cryptographic randomness

NO_RETRY = RetryPolicy(max_attempts=1)


def retry_delay(error: ConduitError, *, retry: int, policy: RetryPolicy, remaining: float | None,
                rng: random.Random | None = None) -> float | None:
    """Seconds to wait before retrying an idempotent call after `error`, or None to give up.

    UNAVAILABLE retries with backoff; RESOURCE_EXHAUSTED only when the server
    said when (RetryInfo): without it, it is usually a local limit such as
    message size, which a retry cannot fix. `retry` counts retries done.
    """
    if retry + 1 >= policy.max_attempts:
        return None
    if error.retry_after is not None and error.code in (grpc.StatusCode.RESOURCE_EXHAUSTED,
                                                         grpc.StatusCode.UNAVAILABLE):
        delay = error.retry_after
    elif error.code == grpc.StatusCode.UNAVAILABLE:
        delay = policy.backoff(retry, rng)
    else:
        return None
    if remaining is not None and delay >= remaining:
        return None
    return delay


def call_with_retry(attempt: Callable[[float], T], *, idempotent: bool, policy: RetryPolicy,
                    timeout: float, method: str = "",
                    clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep) -> T:
    """Run `attempt(seconds_left)` until it succeeds or may not be retried; raise typed errors.

    `timeout` bounds all attempts and waits together, as one deadline.
    """
    deadline = clock() + timeout
    retry = 0
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            raise DeadlineExceeded(f"deadline of {timeout:g}s exceeded while retrying {method}")
        try:
            return attempt(remaining)
        except grpc.RpcError as exc:
            error = from_rpc_error(exc)
            delay = (retry_delay(error, retry=retry, policy=policy, remaining=deadline - clock())
                     if idempotent else None)
            if delay is None:
                raise error from exc
        log.debug("retrying %s in %.3fs after %s", method, delay, error.code.name)
        sleep(delay)
        retry += 1


async def acall_with_retry(attempt: Callable[[float], Awaitable[T]], *, idempotent: bool,
                           policy: RetryPolicy, timeout: float, method: str = "",
                           clock: Callable[[], float] = time.monotonic) -> T:
    """The async twin of `call_with_retry`."""
    deadline = clock() + timeout
    retry = 0
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            raise DeadlineExceeded(f"deadline of {timeout:g}s exceeded while retrying {method}")
        try:
            return await attempt(remaining)
        except grpc.RpcError as exc:
            error = from_rpc_error(exc)
            delay = (retry_delay(error, retry=retry, policy=policy, remaining=deadline - clock())
                     if idempotent else None)
            if delay is None:
                raise error from exc
        log.debug("retrying %s in %.3fs after %s", method, delay, error.code.name)
        await asyncio.sleep(delay)
        retry += 1
