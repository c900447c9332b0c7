"""The dispatcher: leases due messages from the queue, signs and sends them, records what happened.

At least once: a message is marked delivered only after a 2xx answer was recorded, and a lease
that outlives its worker (a crash) expires so another worker retries it. The queue hands out only
the first pending message of each endpoint, so an endpoint receives its messages in order and one
at a time; a failing message holds back later ones of its endpoint only, until it is delivered or
dead-lettered. Each send runs in its own task under a process-wide cap, so a slow receiver holds
one slot for at most the request timeout and never delays another endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from conduit_server.runtime.tasks import cancel_until_done
from conduit_server.webhooks.domain import signing
from conduit_server.webhooks.domain.ports import Claimed, DeliveryQueue, Outcome, Sender
from conduit_server.webhooks.domain.schedule import RetrySchedule
from conduit_server.webhooks.domain.sealing import SealedSecretError, Sealer
from conduit_server.webhooks.domain.targets import Resolver, TargetPolicy, TargetRefused

log = logging.getLogger("conduit.webhooks.delivery")


@dataclass
class DeliveryCounters:
    delivered: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    # Seconds between queueing and a successful delivery, of the last one (the delivery lag).
    last_lag_seconds: float = 0.0
    observers: list[Callable[[Claimed, Outcome, bool], None]] = field(default_factory=list)


class Dispatcher:
    """One worker; run one per process (any number of processes share the queue safely)."""

    def __init__(self, queue: DeliveryQueue, sender: Sender, policy: TargetPolicy, resolve: Resolver,
                 *, schedule: RetrySchedule, sealer: Sealer, worker: str, max_concurrent: int, timeout_seconds: float,
                 poll_seconds: float, claim_batch: int, clock: Callable[[], float] = time.time) -> None:
        self._queue = queue
        self._sender = sender
        self._policy = policy
        self._resolve = resolve
        self._schedule = schedule
        self._sealer = sealer
        self.worker = worker
        self._slots = asyncio.Semaphore(max_concurrent)
        self._max_concurrent = max_concurrent
        self._timeout = timeout_seconds
        # A lease outlives the request it covers: nobody else may send the message meanwhile.
        self._lease_seconds = timeout_seconds * 2 + 5
        self._poll = poll_seconds
        self._batch = claim_batch
        # Decides whether a rotated-out secret still signs (tests move it past the grace period).
        self.clock = clock
        self._wake = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self.counters = DeliveryCounters()

    def wake(self) -> None:
        """Look for due messages now (new ones were queued, or an endpoint's turn moved on)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                free = self._max_concurrent - len(self._sending)
                claimed = await self._queue.claim(self.worker, min(free, self._batch), self._lease_seconds) \
                    if free > 0 else []
            except Exception as error:  # noqa: BLE001 - PostgreSQL away: try again at the next poll
                log.warning("claiming webhook messages failed: %r", error)
                claimed = []
            for message in claimed:
                task = asyncio.create_task(self._deliver(message), name=f"webhook-{message.message_id}")
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
            if claimed and len(claimed) == self._batch:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)

    def secrets_of(self, message: Claimed) -> list[str]:
        """The current secret, and the previous one while its grace period lasts."""
        expires = message.previous_secret_expires_at
        current = self._sealer.open(message.secret, message.endpoint_id)
        if message.previous_secret and expires is not None and expires.timestamp() > self.clock():
            return [current, self._sealer.open(message.previous_secret, message.endpoint_id)]
        return [current]

    async def attempt(self, message: Claimed) -> Outcome:
        """One signed request; a refused target or any transport failure is a failed outcome."""
        started = time.perf_counter()
        try:
            target = await self._policy.check(message.url, self._resolve)
        except TargetRefused as refused:
            return Outcome(0, f"refused: {refused}", int((time.perf_counter() - started) * 1000))
        try:
            signing_secrets = self.secrets_of(message)
        except SealedSecretError as error:
            return Outcome(0, f"cannot sign: {error}", 0)
        headers = signing.headers(signing_secrets, message.message_id, int(time.time()), message.body)
        headers["content-type"] = "application/json"
        try:
            async with asyncio.timeout(self._timeout):
                return await self._sender.post(target, headers, message.body)
        except TimeoutError:
            return Outcome(0, f"no answer within {self._timeout:g}s", int((time.perf_counter() - started) * 1000))

    async def _deliver(self, message: Claimed) -> None:
        async with self._slots:
            try:
                outcome = await self.attempt(message)
                retry_in = None if outcome.succeeded else self._schedule.next_delay(message.attempts + 1)
                if not await self._queue.record(message, outcome, retry_in):
                    log.warning("lease on %s lost before its attempt was recorded", message.message_id)
                    return
            except Exception:
                # The lease expires and another attempt follows: at least once.
                log.exception("delivering %s failed", message.message_id)
                return
        self._count(message, outcome, dead=not outcome.succeeded and retry_in is None)
        self.wake()  # the endpoint's next message may be due now

    def _count(self, message: Claimed, outcome: Outcome, *, dead: bool) -> None:
        counters = self.counters
        if outcome.succeeded:
            counters.delivered += 1
            counters.last_lag_seconds = max(0.0, time.time() - message.created_at.timestamp())
        else:
            counters.failed_attempts += 1
            counters.dead_lettered += dead
            log.info("webhook %s to %s failed (attempt %d): %s", message.message_id, message.endpoint_id,
                     message.attempts + 1, outcome.error or f"HTTP {outcome.status}")
        for observe in counters.observers:
            observe(message, outcome, dead)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"webhooks-dispatcher-{self.worker}")

    async def stop(self) -> None:
        """Ends the loop and every delivery in flight (an unrecorded one is retried when its lease expires).
        A cancellation swallowed by the database driver is cancelled again (see cancel_until_done)."""
        tasks = [task for task in (self._task, *self._sending) if task is not None]
        for task in tasks:
            await cancel_until_done(task)
        self._task = None


