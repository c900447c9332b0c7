"""The retry engine: one operation, its budget, its attempts and the decision after each failure.

An *operation* is one logical call (a unary call with its retries, every page
of a pager, every reconnect of a watch). It has one **budget** (`deadline`,
seconds, set with `with_options(deadline=...)`) that all its attempts, waits
and pages spend together; each **attempt** also has its own timeout (the
method's default from the contract, or `timeout=`), cut to what the budget
has left. A `DeadlineExceeded` says which of the two ran out (`.budget` is
`"operation"` or `"attempt"`) and how much was spent.

After a failed attempt (`Operation.failed`):
- codes outside the method's generated `retry_codes` stop;
- an `ErrorInfo` reason marked `do_not_retry` in the contract, or a
  `QuotaFailure` detail, stops;
- RESOURCE_EXHAUSTED retries only when the server said when (`RetryInfo`);
- `RetryInfo.retry_delay` sets the wait (capped at `RetryPolicy.max_server_delay`),
  else exponential backoff with jitter;
- a wait that would not leave the budget time for another attempt stops.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2

from conduit.client._errors import ConduitError, DeadlineExceeded

log = logging.getLogger("conduit.client")

Clock = Callable[[], float]


@dataclass(frozen=True)
class RetryPolicy:
    """How retried calls back off, and how watches back off between reconnects.

    The n-th retry waits `min(initial_backoff * multiplier**n, max_backoff)`
    seconds, less a random share of up to `jitter` of it (0.5: between half
    and all of it), so that clients do not retry in lockstep. A `RetryInfo`
    from the server replaces the computed delay, capped at `max_server_delay`.
    Retries stop after `max_attempts` attempts in all.
    """

    max_attempts: int = 10
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0
    jitter: float = 0.5
    max_server_delay: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("initial_backoff must be between 0 and max_backoff")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        if self.max_server_delay < 0:
            raise ValueError("max_server_delay must not be negative")

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """The wait before retry number `retry` (0-based), jitter applied."""
        base = min(self.initial_backoff * self.multiplier ** retry, self.max_backoff)
        draw = (rng or _rng).random()
        return base * (1 - self.jitter * draw)


_rng = random.Random()  # noqa: S311 - jitter needs no cryptographic randomness

NO_RETRY = RetryPolicy(max_attempts=1)


class Budget:
    """The time an operation may spend in all (None: unbounded), started when made."""

    def __init__(self, seconds: float | None, *, clock: Clock = time.monotonic) -> None:
        if seconds is not None and seconds <= 0:
            raise ValueError("deadline must be positive")
        self.seconds = seconds
        self._clock = clock
        self.started = clock()

    def spent(self) -> float:
        return self._clock() - self.started

    def remaining(self) -> float | None:
        return None if self.seconds is None else self.seconds - self.spent()

    def attempt_timeout(self, per_attempt: float | None) -> tuple[float | None, str]:
        """The timeout of the next attempt and which limit sets it (`attempt` or `operation`)."""
        remaining = self.remaining()
        if remaining is None or (per_attempt is not None and per_attempt <= remaining):
            return per_attempt, "attempt"
        return remaining, "operation"

    def error(self, method: str, *, attempts: int, cause: ConduitError | None = None) -> DeadlineExceeded:
        spent = self.spent()
        error = DeadlineExceeded(
            f"operation budget of {self.seconds:g}s ran out in {method} after {spent:.3f}s "
            f"and {attempts} attempt(s)", budget="operation", spent=spent, limit=self.seconds,
            attempts=attempts)
        if cause is not None:
            error.__cause__ = cause
        return error


def retry_delay(error: ConduitError, *, retry: int, policy: RetryPolicy, remaining: float | None,
                retry_codes: frozenset[grpc.StatusCode] | None = None,
                rng: random.Random | None = None) -> float | None:
    """Seconds to wait before the next attempt after `error`, or None to stop. `retry` counts retries done."""
    return decide(error, retry=retry, policy=policy, remaining=remaining, retry_codes=retry_codes, rng=rng)[0]


_DEFAULT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})


def decide(error: ConduitError, *, retry: int, policy: RetryPolicy, remaining: float | None,
           retry_codes: frozenset[grpc.StatusCode] | None = None,
           rng: random.Random | None = None) -> tuple[float | None, str]:
    """(seconds to wait or None to stop, why), the one retry rule of the SDK."""
    stop = _stop(error, retry=retry, policy=policy,
                 retry_codes=_DEFAULT_CODES if retry_codes is None else retry_codes)
    if stop is not None:
        return None, stop
    if error.retry_after is not None and error.code in _DEFAULT_CODES:
        delay = min(error.retry_after, policy.max_server_delay)
        why = f"{error.code.name}, server asked for {error.retry_after:g}s"
    else:
        delay = policy.backoff(retry, rng)
        why = error.code.name + (f" [{error.reason}]" if error.reason else "")
    if remaining is not None and delay >= remaining:
        return None, f"a wait of {delay:.3f}s would pass the operation budget"
    return delay, why


def _stop(error: ConduitError, *, retry: int, policy: RetryPolicy,
          retry_codes: frozenset[grpc.StatusCode]) -> str | None:
    """Why `error` must not be retried, or None."""
    if error.code not in retry_codes:
        return f"{error.code.name} is not retried for this method"
    if error.do_not_retry:
        return f"reason {error.reason} says do not retry"
    if error.detail(error_details_pb2.QuotaFailure) is not None:
        return "a quota is exhausted (QuotaFailure)"
    if retry + 1 >= policy.max_attempts:
        return f"{policy.max_attempts} attempts made"
    if error.code == grpc.StatusCode.RESOURCE_EXHAUSTED and error.retry_after is None:
        return "RESOURCE_EXHAUSTED without RetryInfo (a local limit)"
    return None
